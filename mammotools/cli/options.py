"""What every command shares: the options written once, progress bars, turning errors into one line.

Kept free of heavy imports: ``mammotools --help`` imports this module and nothing of numpy,
OpenCV, shapely or torch.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mammotools.defaults import DEVICES, PRECISIONS, READERS_OFFERED
from mammotools.errors import MammoError, printable

MAX_WARNINGS_SHOWN = 20

F = TypeVar("F", bound=Callable[..., Any])

# Folder options are DIRECTORY, file options FILE, options taking either PATH: one type each.
FOLDER = click.Path(file_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)
# A folder of inputs (--images): one that does not exist is named as such (exit 2), not reported
# as every image in it missing.
INPUT_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


MAX_MESSAGE = 1500  # characters of an error line: a 10 MB class name is cut, not printed


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text``, its middle cut out (saying how much) when it is longer than ``limit``; a file
    name's bytes that are not UTF-8 shown as ``\\xNN`` (printable on any terminal)."""
    text = printable(text)
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-limit // 4 :]
    return f"{head} [... {len(text) - len(head) - len(tail):,} characters cut ...] {tail}"


def _written(out: Any) -> str:
    """``"; 12 files (3.4 MB) are complete in OUT"``: what a stopped run leaves, for the message."""
    if not isinstance(out, Path) or not out.is_dir():
        return ""
    count, size = 0, 0
    for path in out.rglob("*"):
        if path.is_file() and ".tmp-" not in path.name:
            count += 1
            size += path.stat().st_size
    return f"; {count} file(s) ({size / 1e6:.1f} MB) are complete in {out}"


def os_error_line(exc: OSError, out: Any = None) -> str:
    """One line for a failure of the machine rather than of the input: a full disk, a read-only
    or forbidden folder, a lost mount."""
    import errno

    where = exc.filename or (out if out is not None else "a file")
    if exc.filename:  # name the file being written, not its hidden temporary (.NAME.tmp-PID)
        import re

        path = Path(str(exc.filename))
        real = re.fullmatch(r"\.(.+)\.tmp-(?:old-)?\d+", path.name)
        where = path.with_name(real.group(1)) if real else path
    reason = exc.strerror or exc.__class__.__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        from mammotools.files import disk_full

        inside = out is not None and str(Path(str(where)).resolve()).startswith(str(Path(out).resolve()))
        # A copy names its source on failure, so a file outside --out is blamed only when its own disk is full
        # (make-crops records split.csv beside the dataset).
        if out is None or (not inside and disk_full(Path(str(where)).parent)):
            return f"{where}: {reason}; free some space on that disk and run the same command again"
        return (
            f"--out {out}: {reason}{_written(out)}; free some space (or choose an --out on another disk) and run the "
            "same command again: it keeps what is complete and writes the rest"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        folder = Path(str(where)).parent
        return (
            f"{where}: {reason}; make {folder} writable, or choose an --out you can write to "
            "(a dataset's split.csv is written beside it: work on a copy you can write to)"
        )
    return f"{where}: {reason} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)}); check the disk or mount and run again"


def user_errors(fn: F) -> F:
    """Turn the library's user-facing errors, and failures of the machine (a full disk, a
    read-only folder), into one clear line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MammoError as exc:
            raise click.ClickException(shorten(str(exc))) from None
        except OSError as exc:
            raise click.ClickException(shorten(os_error_line(exc, kwargs.get("out")))) from None

    return wrapper  # type: ignore[return-value]


def stops_cleanly(unit: str | Callable[[dict[str, Any]], str]) -> Callable[[F], F]:
    """Ctrl-C of a per-item command: one line saying how many items (``unit``: "image") are complete
    and that the same command finishes the rest (exit status 130), not click's bare "Aborted!"."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from mammotools.runner import Interrupted

            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt as exc:
                out, name = kwargs.get("out"), unit if isinstance(unit, str) else unit(kwargs)
                if isinstance(exc, Interrupted):
                    done = f"{exc.complete} of {exc.total} {name}(s) are complete"
                    done += f", {exc.failed} failed" if exc.failed else ""
                else:  # stopped before or outside the per-item work: the records say what is complete
                    records = Path(out) / "records" if out is not None else None
                    count = sum(1 for _ in records.glob("*.json")) if records is not None and records.is_dir() else 0
                    done = f"{count} {name}(s) are complete"
                where = f" in {out}" if out is not None else ""
                click.echo(f"\nStopped: {done}{where}; run the same command again to finish the rest.", err=True)
                raise SystemExit(130) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def stops_saying(message: str) -> Callable[[F], F]:
    """Ctrl-C of a command that is not per item (benchmark, evaluate, the importers): ``message``
    (what is kept and how to go on) and exit status 130, not click's bare "Aborted!"."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                click.echo(f"\nStopped: {message}", err=True)
                raise SystemExit(130) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def one_writer(fn: F) -> F:
    """Hold ``--out``'s lock while the command runs: a second run into the same folder is refused
    (naming the process that writes there) instead of racing it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mammotools.files import output_lock

        out = kwargs.get("out")
        if out is None:
            return fn(*args, **kwargs)
        with output_lock(Path(out)):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Refuse nan and inf, which FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: give a finite number")
    return value


class InputSizeType(click.ParamType):
    """``256`` (a square input) or ``1024x1400`` (height x width) -> (height, width)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).lower().replace(" ", "").split("x")
        sides = [int(p) for p in parts] if all(p.isascii() and p.isdigit() for p in parts) else []
        if len(sides) not in (1, 2) or min(sides, default=0) < 16:
            self.fail(f"{value!r}: give a side in px (e.g. 256) or HEIGHTxWIDTH (e.g. 1024x1400), each at least 16", param, ctx)
        return (sides[0], sides[-1])


INPUT_SIZE = InputSizeType()


def input_size_values(values: dict[str, Any]) -> None:
    """Turn a parsed ``input_size`` (height, width) in ``values`` into the settings input_size / input_width."""
    shape = values.pop("input_size", None)
    if shape is not None:
        values["input_size"] = shape[0]
        values["input_width"] = shape[1] if shape[1] != shape[0] else 0


def budget_option(help_text: str) -> Callable[[F], F]:
    """``--budget MINUTES`` (the setting budget_minutes), checked by :func:`budget_minutes`; one
    definition for train and benchmark, each saying what its budget covers."""
    return click.option(
        "--budget", "budget_minutes", type=float, callback=budget_minutes, metavar="MINUTES",
        help=f"{help_text}  [0 < x <= a year]",
    )  # fmt: skip


def budget_minutes(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """--budget: minutes, finite and > 0."""
    if value is not None and not (math.isfinite(value) and 0 < value <= 525_600):
        raise click.BadParameter(f"{value}: give the minutes of training, a number > 0 and at most a year (e.g. 20)")
    return value


def class_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``FROM=TO`` values -> (from, to) pairs."""
    pairs = []
    for v in values:
        src, sep, dst = v.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise click.BadParameter(f"{v!r}: write it as 'FROM=TO', e.g. 'Mass=Tumor'")
        pairs.append((src.strip(), dst.strip()))
    return tuple(pairs)


reader_option = click.option(
    "--reader",
    type=click.Choice(READERS_OFFERED),
    default=READERS_OFFERED[0],
    help="auto: a project's data.qpdata read directly, else its GeoJSON exports; qpdata or geojson: only those; "
    "paquo: through a local QuPath.",
)

classes_option = click.option(
    "--classes",
    "classes_file",
    type=FILE,
    help="Class table JSON (list of {name, label, color, rank, smooth, aliases}); default: the paper's 14 regions.",
)

workers_option = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes; 0 = as many as the work is worth (at most one per usable CPU core).  [default: 0]",
    show_default=False,
)


def device_option(default: str | None = DEVICES[0]) -> Callable[[F], F]:
    """``--device``: train passes None (the run's config decides) and shows the same default."""
    return click.option(
        "--device",
        type=click.Choice(DEVICES),
        default=default,
        show_default=False,
        help=f"auto: a GPU when there is one.  [default: {DEVICES[0]}]",
    )


precision_option = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help=f"auto: bf16 (or fp16) on a GPU, fp32 on the CPU.  [default: {PRECISIONS[0]}]",
)

# One name per meaning: --workers is always worker processes of the per-item work (export-qupath,
# make-crops, augment); training's loader processes are --loader-workers, predict's decoding
# threads --decode-threads, windows per sliding-window pass --window-batch (train's --batch-size is
# images per step). The old spellings still work, unlisted (see alias).
loader_workers_option = click.option(
    "--loader-workers",
    "workers",
    type=click.IntRange(min=0),
    help="Data loader processes feeding training (0: load in the training process).  [default: one per spare core, at most 8]",
)


def window_batch_option(default: int | None, default_text: str) -> Callable[[F], F]:
    """``--window-batch``: windows per forward pass of the sliding window (evaluate, predict)."""
    return click.option(
        "--window-batch",
        "batch_size",
        type=click.IntRange(min=1),
        default=default,
        show_default=False,
        help="Windows per forward pass of the sliding window; bounds the memory (windows under 256 px are packed by "
        f"pixels).  [default: {default_text}]",
    )


overlap_option = click.option(
    "--overlap",
    type=click.FloatRange(0, 1, max_open=True),
    help="Sliding-window overlap of neighbouring windows.  [default: the run's, 0.5]",
)


def alias(old: str, name: str, type: Any) -> Callable[[F], F]:
    """Keep an earlier spelling ``old`` of the parameter ``name`` working, unlisted in --help: it
    counts where the new spelling is not given."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from click.core import ParameterSource

            value = kwargs.pop(f"alias_{name}", None)
            source = click.get_current_context().get_parameter_source(name)
            if value is not None and source in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                kwargs[name] = value
            return fn(*args, **kwargs)

        return click.option(old, f"alias_{name}", type=type, hidden=True)(wrapper)  # type: ignore[return-value]

    return decorate


def example(*commands: str) -> str:
    """A command's epilog: its example command lines, kept whole (never rewrapped)."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in commands)


def cluster_option(fn: F) -> F:
    """``--scheduler``: run the command's per-image work on a Dask cluster (paths made absolute,
    since the workers may run elsewhere)."""

    @click.option(
        "--scheduler",
        envvar="MAMMOTOOLS_SCHEDULER",
        help="Run the per-image work on a Dask cluster: its scheduler's address (tcp://HOST:8786; also the "
        "MAMMOTOOLS_SCHEDULER variable). Inputs and --out must be on storage every worker sees.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, scheduler: str | None = None, **kwargs: Any) -> Any:
        from mammotools.runner import use_scheduler

        if scheduler:
            from mammotools.cluster import check_scheduler

            try:
                check_scheduler(scheduler)  # before anything is written
            except MammoError as exc:
                raise click.ClickException(shorten(str(exc))) from None
            kwargs = {k: v.resolve() if isinstance(v, Path) else v for k, v in kwargs.items()}
        with use_scheduler(scheduler or None):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


overwrite_option = click.option("--overwrite", is_flag=True, help="Replace outputs made earlier from other inputs or settings.")


PLAIN_QUIET_SECONDS, PLAIN_EVERY_SECONDS = 10.0, 60.0  # without a terminal: see Progress


class Progress:
    """(on_plan, on_item) callbacks drawing a progress bar on stderr; ``close()`` ends it.

    Where stderr is not a terminal (a log file, CI, a job queue) click's bar shows only its label,
    so a plain line says how far the run is instead: at each further 10% of the items once 10 s
    have passed since the last line, and at least every minute (a run of a few seconds prints none)."""

    def __init__(self, label: str, unit: str = "", skipped: str = "already complete, skipped") -> None:
        self.label, self.unit, self.skipped = label, unit, skipped
        self.bar: Any = None
        self.plain = not sys.stderr.isatty()
        self.total = self.count = 0
        self.last_time, self.last_share = 0.0, 0.0

    def on_plan(self, todo: int, done: int) -> None:
        if done:
            click.echo(f"{done} {self.skipped}", err=True)
        label = f"{self.label} {todo}{self.unit}"
        if self.plain:
            click.echo(label, err=True)
            self.total, self.last_time = todo, time.monotonic()
            return
        bar = click.progressbar(length=todo, label=label, file=sys.stderr, show_pos=True, show_eta=True)
        self.bar = bar.__enter__()

    def on_item(self, name: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if not self.plain or not self.total:
            return
        self.count += 1
        now, share = time.monotonic(), self.count / self.total
        quiet = now - self.last_time
        if (share - self.last_share >= 0.1 - 1e-9 and quiet >= PLAIN_QUIET_SECONDS) or quiet >= PLAIN_EVERY_SECONDS:
            click.echo(f"{self.label} {self.count} of {self.total}{self.unit} done ({share:.0%})", err=True)
            self.last_time, self.last_share = now, share

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def report_warnings(warnings: list[str], out: Path) -> None:
    """The first MAX_WARNINGS_SHOWN warnings on stderr, then how many more and where they are."""
    for w in warnings[:MAX_WARNINGS_SHOWN]:
        click.echo(shorten(f"warning: {w}"), err=True)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        click.echo(f"... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings (see {out}/records/*.json)", err=True)


def report_failures(failed: list[tuple[str, str]]) -> None:
    """One line per failed item on stderr; exit status 1 if any failed."""
    for name, message in failed:
        click.echo(shorten(f"failed: {name}: {message}"), err=True)
    if failed:
        raise SystemExit(1)
