"""Errors a user can act on.

Every error here is meant to be shown as one line: what was wrong (naming the file), what is
valid, and how to fix it. The CLI turns them into a message and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name shown as ``\\xNN``.

    Python keeps each byte of a file name that is not UTF-8 as a lone surrogate
    (``b"\\xff.png"`` -> ``"\\udcff.png"``, PEP 383), which no UTF-8 stream, JSON or CSV file
    accepts: messages show the byte instead, as ``ls -b`` does."""

    def byte(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(byte, text)


class MammoError(Exception):
    """Base class of the errors a user can fix; ``str(err)`` is the whole message (a file name
    that is not UTF-8 shown by its bytes, see :func:`printable`, so that it can be printed and
    written into a CSV or JSON file)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(printable(a) if isinstance(a, str) else a for a in args))


class InputError(MammoError, ValueError):
    """A user's file or option is wrong (bad format, unknown class, size mismatch...)."""


class MissingFileError(MammoError, FileNotFoundError):
    """A file the user pointed to, or that a project refers to, does not exist."""

    def __str__(self) -> str:  # FileNotFoundError would otherwise print "[Errno ...]"
        return str(self.args[0]) if self.args else "file not found"


class ResourceError(MammoError):
    """The machine cannot do what was asked as asked (GPU memory): the whole run stops, saying what to lower."""


class TrainingFailed(MammoError):
    """Training cannot go on (the loss became NaN or infinite): the stage stops, keeping no such weights."""
