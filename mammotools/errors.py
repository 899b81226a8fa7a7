"""Errors a user can act on.

Every error here is meant to be shown as one line: what was wrong (naming the file), what is
valid, and how to fix it. The CLI turns them into a message and a non-zero exit, never a
traceback.
"""

from __future__ import annotations


class MammoError(Exception):
    """Base class of the errors a user can fix; ``str(err)`` is the whole message."""


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
