"""The per-item work of export-qupath, make-crops and augment on a Dask cluster.

Every worker must run in an environment with mammotools installed and see the same files at the
same paths (inputs and ``--out`` on storage all of them mount; give absolute paths). Each item is
one task; the results come back to this process, which writes the records' manifest as a local
run does. Dask retries a task whose worker died on another worker; a task it gives up on
(``KilledWorker``) is reported as that item's failure, and a rerun completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mammotools.errors import InputError

CONNECT_SECONDS = 20
INSTALL = "pip install 'mammotools[cluster]' (dask's distributed package)"


def connect(address: str) -> Any:
    """A Dask client of the scheduler at ``address`` with at least one worker, or one clear error."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(f"--scheduler {address}: running on a Dask cluster needs dask: {INSTALL}") from None
    try:
        client = Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            f"--scheduler {address}: no Dask scheduler answers there ({exc.__class__.__name__}); start one "
            "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or leave out --scheduler"
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS * 3)
    except TimeoutError:
        client.close()
        raise InputError(
            f"--scheduler {address}: the scheduler has no workers; start some with `dask worker {address}`"
        ) from None
    return client


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
    runner's, so that a cluster task is what a local worker runs."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    with connect(address) as client:
        client.run(init_worker, 1)  # one OpenCV thread per worker process, as in the local pool
        futures = {client.submit(call_checked, fn, item, *args, pure=False): item for item in items}
        try:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    result, error = future.result()
                except KilledWorker:
                    result, error = None, "its Dask worker was lost more than once; run the same command again to complete it"
                done(item, result, error)
        except BaseException:
            client.cancel(list(futures))
            raise
