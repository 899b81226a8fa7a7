"""Running one function over many items: in this process, in a pool of worker processes, or on a
Dask cluster the user names (``--scheduler tcp://HOST:8786`` or ``MAMMOTOOLS_SCHEDULER``).

Used by every per-image command (export-qupath, make-crops, augment). A user-fixable failure of
one item (:class:`~mammotools.errors.MammoError`) is reported for that item and the others go
on; any other exception is a bug (or the machine failing: a full disk) and stops the run. On a
cluster, a worker lost mid-item costs that item only: Dask gives it to another worker, and
where it cannot, the item is reported failed and a rerun completes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mammotools.errors import MammoError, ResourceError


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a per-item run: ``complete`` of its ``total`` items are complete (kept; the same
    command finishes the rest). A KeyboardInterrupt, so cleanup written for Ctrl-C runs as before."""

    def __init__(self, complete: int, total: int, failed: int = 0) -> None:
        super().__init__(complete, total, failed)
        self.complete, self.total, self.failed = complete, total, failed


Done = Callable[[Any, Any, "str | None"], None]  # (item, result, error message or None)

# A worker process starts a fresh interpreter that imports numpy, OpenCV, rasterio and shapely:
# about 1 s on a 2-core machine. Below this much work per worker, extra processes cost more
# than they save (3 small sample images: 2.8 s with one process per core, 0.5 s with one).
MIN_SECONDS_PER_WORKER = 2.0


def choose_workers(requested: int, items: int, seconds: float) -> int:
    """How many processes to run: ``requested`` (at most one per item), or for ``requested == 0``
    as many as the work is worth: one per ``MIN_SECONDS_PER_WORKER`` of estimated ``seconds``,
    at most one per CPU core and one per item, at least one."""
    if requested > 0:
        return max(1, min(requested, items))
    return max(1, min(usable_cores(), items, int(seconds / MIN_SECONDS_PER_WORKER)))


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, container CPU sets), else all of them."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on macOS or Windows
        return os.cpu_count() or 1


PARENT_CHECK_SECONDS = 1.0


def _end_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as the process that started it is gone (killed with
    -9, it cannot stop its workers itself; they would run on, orphaned, for the whole queue)."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:  # re-parented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def init_worker(threads: int = 1, parent: int = 0) -> None:
    """Set OpenCV's thread count (1 per worker process, so N workers use N cores; 0 = default);
    in a worker (``parent``: the main process's id), end it when the main process dies, and
    leave Ctrl-C to the main process (see :func:`_ctrl_c_to_main_only`)."""
    import cv2

    if threads > 0:
        cv2.setNumThreads(threads)
    if parent:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _end_with_parent(parent)


@contextlib.contextmanager
def _ctrl_c_to_main_only() -> Iterator[None]:
    """Start worker processes with Ctrl-C (SIGINT) ignored: the terminal sends it to every process
    of the command, and a worker still importing its modules would print a KeyboardInterrupt
    traceback each. An ignored signal stays ignored across the exec that starts a worker; the main
    process takes Ctrl-C again as soon as they are started, stops the queue, and the workers
    finish the items they hold (written whole), so the user sees one line."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    # Blocked as well as ignored: Linux keeps a blocked signal pending even while it is ignored, so
    # a Ctrl-C during the start is not lost; it reaches the main process once its handler is back.
    blocking = hasattr(signal, "pthread_sigmask")
    if blocking:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        if blocking:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def call_checked(fn: Callable[..., Any], item: Any, *args: Any) -> tuple[Any, str | None]:
    """``(fn(item, *args), None)``, or ``(None, message)`` for a user-fixable error."""
    try:
        return fn(item, *args), None
    except MammoError as exc:
        return None, str(exc)


SCHEDULER_ENV = "MAMMOTOOLS_SCHEDULER"
_scheduler: str | None = None


@contextlib.contextmanager
def use_scheduler(address: str | None) -> Iterator[None]:
    """Run the per-item work of the block on the Dask cluster at ``address`` (None: the local
    default, or ``MAMMOTOOLS_SCHEDULER`` when it is set)."""
    global _scheduler
    before, _scheduler = _scheduler, address
    try:
        yield
    finally:
        _scheduler = before


def scheduler_address() -> str | None:
    """The Dask scheduler the work goes to, or None for this machine."""
    return _scheduler or os.environ.get(SCHEDULER_ENV) or None


def run_all(fn: Callable[..., Any], items: Sequence[Any], args: tuple, workers: int, done: Done) -> None:
    """Call ``fn(item, *args)`` for each item; ``done(item, result, error)`` after each.

    ``fn`` must be a module-level function (it is pickled to worker processes).
    """
    address = scheduler_address()
    if address and items:
        from mammotools.cluster import run_on_cluster

        run_on_cluster(address, fn, items, args, done, call_checked, init_worker)
        return
    if workers <= 1 or len(items) <= 1:
        init_worker(threads=0)
        for item in items:
            result, error = call_checked(fn, item, *args)
            done(item, result, error)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: workers start clean (no inherited OpenCV/OpenMP thread state), on every platform.
    ctx = multiprocessing.get_context("spawn")
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=(1, os.getpid())) as pool:
        with _ctrl_c_to_main_only():  # the first `workers` submissions start the processes
            futures = {pool.submit(call_checked, fn, item, *args): item for item in items[:workers]}
        futures |= {pool.submit(call_checked, fn, item, *args): item for item in items[workers:]}
        reported: set[Any] = set()
        try:
            for fut in as_completed(futures):
                result, error = fut.result()
                reported.add(fut)
                done(futures[fut], result, error)
        except BrokenProcessPool:
            raise ResourceError(
                "a worker process was killed (out of memory, or by a signal); what is complete is kept: run the same "
                "command again, with fewer --workers if memory is short"
            ) from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            # items the workers finished while the pool wound down (Ctrl-C) are complete too: counted
            for fut, item in futures.items():
                if fut not in reported and fut.done() and not fut.cancelled() and fut.exception() is None:
                    done(item, *fut.result())
            raise


@dataclass
class Outcome:
    """What a run did to its items (by name)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete from an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, message)


def run_tracked(
    fn: Callable[..., Any],
    todo: Sequence[Any],
    args: tuple,
    workers: int,
    outcome: Outcome,
    name_of: Callable[[Any], str],
    on_item: Callable[[str], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
) -> None:
    """:func:`run_all`, recording each item in ``outcome`` and reporting progress."""

    def done(item: Any, result: Any, error: str | None) -> None:
        name = name_of(item)
        if error is not None:
            outcome.failed.append((name, error))
        else:
            outcome.done.append(name)
            if on_result is not None:
                on_result(result)
        if on_item is not None:
            on_item(name)

    before = len(outcome.done) + len(outcome.skipped) + len(outcome.failed)
    try:
        run_all(fn, todo, args, workers, done)
    except KeyboardInterrupt:  # Ctrl-C: say how far the run got (the CLI's one line)
        complete = len(outcome.done) + len(outcome.skipped)
        raise Interrupted(complete, before + len(todo), len(outcome.failed)) from None
