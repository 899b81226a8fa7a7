"""The per-item work of export-qupath, make-crops and augment on a Dask cluster.

Every worker must run in an environment with mammotools installed and see the same files at the
same paths (inputs and ``--out`` on storage all of them mount; give absolute paths). Each item is
one task; the results come back to this process, which writes the records' manifest as a local
run does. Dask retries a task whose worker died on another worker; a task it gives up on
(``KilledWorker``) is reported as that item's failure, and a rerun completes it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any

from mammotools.errors import InputError, ResourceError

CONNECT_SECONDS = 20
NO_WORKERS_SECONDS = 300  # a run whose cluster has had no worker this long stops (workers gone, jobs ended)
POLL_SECONDS = 5
INSTALL = "pip install 'mammotools[cluster]' (dask's distributed package)"


class WorkerProblem(Exception):
    """Raised in a task for a fault of the worker, not of the item (a run's files missing or
    changed there): it stops the run, where an item's own error fails only that item."""


def connect(address: str) -> Any:
    """A Dask client of the scheduler at ``address`` with at least one worker, or one clear error."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(f"--scheduler {address}: running on a Dask cluster needs dask: {INSTALL}") from None
    no_scheduler = (
        f"--scheduler {address}: no Dask scheduler answers there; start one (`dask scheduler`, then "
        "`dask worker ADDRESS --nthreads 1` on each machine) or leave out --scheduler"
    )
    result: list[Any] = []

    def start() -> None:  # in a thread: a server that is not a Dask scheduler may never answer
        try:
            result.append(Client(address, timeout=CONNECT_SECONDS))
        except Exception as exc:  # whatever the other end did, it is not a scheduler
            result.append(exc)

    thread = threading.Thread(target=start, name="dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_SECONDS * 2)
    if not result or isinstance(result[0], Exception):
        raise InputError(no_scheduler) from None
    client = result[0]
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS * 3)
    except TimeoutError:
        client.close()
        raise InputError(
            f"--scheduler {address}: the scheduler has no workers; start some with `dask worker {address} --nthreads 1`"
        ) from None
    import mammotools

    try:
        with _quiet_dask():
            versions = client.run(_workers_version)
    except Exception as exc:  # a worker that cannot import mammotools cannot unpickle the call
        client.close()
        raise InputError(
            f"--scheduler {address}: a Dask worker cannot run mammotools ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); install mammotools {mammotools.__version__} on every worker: {INSTALL}"
        ) from None
    other = {w: v for w, v in versions.items() if v != mammotools.__version__}
    if other:
        client.close()
        worker, version = next(iter(other.items()))
        raise InputError(
            f"--scheduler {address}: worker {worker} runs mammotools {version}, this command {mammotools.__version__} "
            f"({len(other)} worker(s) differ); install the same version everywhere"
        )
    return client


def _workers_version() -> str:
    """On a worker: the mammotools it runs (a worker without it fails to unpickle this)."""
    import mammotools

    return mammotools.__version__


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own log lines (a lost scheduler logs dozens) kept from the terminal during a run:
    what went wrong is said in one line by run_on_cluster."""
    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    loggers = [logging.getLogger(n) for n in names]  # dask's config gives some of them levels of their own
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


def check_scheduler(address: str) -> None:
    """Refuse an unreachable scheduler, or one without workers, before anything is written."""
    connect(address).close()


def run_on_cluster(
    address: str,
    fn: Callable[..., Any],
    items: Sequence[Any],
    args: tuple,
    done: Callable,
    call_checked: Callable[..., tuple[Any, str | None]],
    init_worker: Callable[[int], None],
) -> None:
    """Run ``fn(item, *args)`` for every item on the cluster at ``address``; ``done(item, result,
    error)`` in this process as each finishes. ``call_checked`` and ``init_worker``: the
    runner's, so that a cluster task is what a local worker runs.

    Stops with one line (what is complete is kept) when a task raises :class:`WorkerProblem`,
    when the scheduler is lost, or when the cluster has had no worker for NO_WORKERS_SECONDS."""
    from distributed import wait
    from distributed.scheduler import KilledWorker

    def lost(exc: BaseException) -> ResourceError:
        return ResourceError(
            f"--scheduler {address}: the Dask scheduler was lost mid-run ({exc.__class__.__name__}); what is complete "
            "is kept: restart the cluster and run the same command again"
        )

    with connect(address) as client, _quiet_dask():
        client.run(init_worker, 1)  # one OpenCV thread per worker process, as in the local pool
        futures = {client.submit(call_checked, fn, item, *args, pure=False): item for item in items}
        pending, idle = set(futures), 0.0
        try:
            while pending:
                try:
                    try:
                        finished = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
                    except TimeoutError:
                        finished = set()
                    workers = finished or client.scheduler_info().get("workers")
                except (OSError, CancelledError) as exc:  # CommClosedError and the like: the scheduler is gone
                    raise lost(exc) from None
                for future in finished:
                    pending.discard(future)
                    if future.status == "cancelled":
                        raise lost(CancelledError())
                    try:
                        result, error = future.result()
                    except KilledWorker:
                        result, error = None, "its Dask worker was lost more than once; run the same command again to complete it"
                    except WorkerProblem as exc:
                        raise ResourceError(f"{exc} (the run stopped; what was complete is kept)") from None
                    except (OSError, CancelledError) as exc:
                        if future.status == "error":  # the task's own exception: a full disk on the worker
                            raise
                        raise lost(exc) from None  # fetching the result failed: the scheduler is gone
                    done(futures[future], result, error)
                idle = 0.0 if workers else idle + POLL_SECONDS
                if idle >= NO_WORKERS_SECONDS:
                    raise ResourceError(
                        f"--scheduler {address}: no Dask worker for {NO_WORKERS_SECONDS} s ({len(pending)} item(s) not "
                        "done); what is complete is kept: start workers and run the same command again"
                    )
        except BaseException:
            try:
                client.cancel(list(pending))
            except Exception:  # the scheduler may be gone already
                pass
            raise
