"""Atomic file output: write to a temporary name beside the target, then rename; and reading
back the CSV files we write.

An interrupted run therefore leaves either the whole previous file, the whole new file, or a
temporary file whose name starts with ``.`` and contains ``.tmp-`` (removed by
:func:`remove_stale_temporaries` on the next run).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from mammotools.errors import InputError

TEMP_MARKER = ".tmp-"
LOCK_DIR = "/tmp/mammotools-locks"  # the --out locks (output_lock)


def temporary_name(path: Path) -> Path:
    """Return a hidden temporary path in the same folder as ``path`` (same file system)."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")


def _commit(tmp: Path, target: Path) -> None:
    """The one step that makes a written file visible under its name (the fault-injection tests
    make it fail at chosen points)."""
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``path``.

    On an exception the temporary file (or folder) is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    _remove(tmp)
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = target.with_name(f".{target.name}{TEMP_MARKER}old-{os.getpid()}")
            os.replace(target, old)
            _commit(tmp, target)
            _remove(old)
        else:
            _commit(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def create_exclusively(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write ``data`` to ``path`` whole, unless ``path`` exists: False then (another process was
    first), and the file is left as it is. The data goes to a temporary first and is hard-linked
    into place, so the file is never seen half-written and never replaced."""
    target = Path(path)
    tmp = temporary_name(target)
    _remove(tmp)
    try:
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: the rename, after a last look
            if target.exists():
                return False
            os.replace(tmp, target)
    finally:
        _remove(tmp)
    return True


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: Path) -> int:
    """Remove temporaries left by an interrupted run anywhere under ``folder``; return count."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(f".*{TEMP_MARKER}*")]
    for p in stale:
        _remove(p)
    return len(stale)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_dead_siblings(target: Path) -> int:
    """Remove the temporaries beside ``target`` (``.NAME.tmp-PID``, ``.NAME.tmp-old-PID``) left by
    runs that were killed (their process is gone): a folder written whole by :func:`atomic_path`
    (an imported project) has its temporary outside itself. Returns how many were removed."""
    removed = 0
    for p in target.parent.glob(f".{target.name}{TEMP_MARKER}*"):
        digits = p.name.rsplit("-", 1)[-1]
        if digits.isdigit() and int(digits) != os.getpid() and not pid_alive(int(digits)):
            _remove(p)
            removed += 1
    return removed


def remove_dead_temporaries(folder: Path) -> int:
    """Remove the temporaries (``.NAME.tmp-PID``, ``.NAME.tmp-old-PID``) anywhere under ``folder``
    whose process is gone (a training run killed while writing a checkpoint leaves one of the
    checkpoint's size); a live process's are left alone. Returns how many were removed."""
    if not folder.is_dir():
        return 0
    removed = 0
    for p in folder.rglob(f".*{TEMP_MARKER}*"):
        digits = p.name.rsplit("-", 1)[-1]
        if digits.isdigit() and int(digits) != os.getpid() and not pid_alive(int(digits)):
            _remove(p)
            removed += 1
    return removed


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the lock of the output folder ``out`` for the block: a second mammotools run writing
    to the same folder on this machine is refused, naming the process that holds it. The lock is
    an advisory ``flock`` on a file in a fixed folder (``LOCK_DIR``, whatever TMPDIR says, or
    ``MAMMOTOOLS_LOCK_DIR``), shared by every user of the machine like /tmp itself; nothing is
    written into ``out``. The system releases it when the process ends, however it ends."""
    import fcntl
    import hashlib

    key = hashlib.sha1(str(Path(out).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    folder = Path(os.environ.get("MAMMOTOOLS_LOCK_DIR") or LOCK_DIR)
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o1777)  # every user's runs lock here; the sticky bit keeps each one's files its own
        lock = folder / f"{key}.lock"
        handle = open(lock, "a+")
        if lock.stat().st_uid == os.getuid():
            lock.chmod(0o666)  # another user's run into the same folder must be able to take it in turn
    except OSError as error:
        raise InputError(
            f"--out {out}: cannot take the output folder's lock in {folder} ({error.strerror}); make that folder "
            "writable, or set MAMMOTOOLS_LOCK_DIR to a folder every run on this machine can write"
        ) from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise InputError(
                f"--out {out}: another mammotools run (process {holder}) is writing there; wait for it to finish, "
                "or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)


def image_stem(name: str) -> str:
    """An image's name without its final extension: ``mammo_01.png`` -> ``mammo_01``.

    The same rule as ``pathlib.Path.stem`` (``a.ome.tif`` -> ``a.ome``) and as
    ``qupath_scripts/export_annotations.groovy``; a path's folders are dropped.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    i = base.rfind(".")
    return base[:i] if 0 < i < len(base) - 1 else base


def safe_file_name(name: str) -> str:
    """``name`` with characters illegal in file names replaced by ``_`` (the Groovy export's rule)."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]', "_", name)
    return cleaned or "_"


def read_csv_rows(path: Path, fix: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a CSV file we wrote, also after a spreadsheet saved it (BOM, CRLF)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc}); {fix}") from None


def disk_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has under 1 MB left for this user (a write that
    failed there failed for want of space)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1_000_000
