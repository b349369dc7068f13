"""Errors that are the user's to fix: printed as one line by the CLIs, never with a traceback by default."""

from __future__ import annotations

import sys


class UserError(Exception):
    """A problem with the user's input (file, option, checkpoint) with a one-line explanation."""

    exit_code: int = 2


class ImageReadError(UserError):
    """An input image could not be read; the message names the file and the problem."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class CheckpointError(UserError):
    """A checkpoint is unreadable, unsafe, or does not match the requested model."""


class DatasetMissingError(UserError):
    """A dataset folder is missing; the message names the command that downloads it."""


class OutputPathError(UserError):
    """An output file cannot be written: missing or read-only folder, unsupported format, disk error."""


class OutputExistsError(OutputPathError):
    """The output file already exists and overwriting was not requested."""


def report_user_error(prog: str, exc: UserError) -> int:
    """Print ``<prog>: error: <message>`` to stderr (the one format of every CLI); return the exit code."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return exc.exit_code


class InvalidArgumentError(UserError, ValueError):
    """An argument of the Python API (or a CLI option) has a value that cannot be used as given.

    A :class:`ValueError` too, so that API callers can catch it the usual way.
    """
