"""One error root, so the CLI can turn any expected failure into one line and exit code 2.

The class says what kind of thing failed; the message says what, in the raising module's own terms.
The CLI names the flag or file the user gave (``assembly.given``), keeping the class and the cause.
"""

from __future__ import annotations


class SweetspotError(Exception):
    """A failure the user can fix; its message is the one line the CLI prints.

        >>> try:
        ...     sweetspot.run_study(sweetspot.StudyConfig(), workers=0)
        ... except sweetspot.SweetspotError as exc:
        ...     print(exc)
        workers: must be a positive integer, got 0
    """


class ConfigError(SweetspotError):
    """A study config or a command-line value is invalid."""


class DataError(SweetspotError):
    """A dataset cannot be loaded or split as asked."""


class StorageError(SweetspotError):
    """The study storage cannot be reached, or holds something other than what was asked for."""


class FileError(SweetspotError):
    """A file or folder cannot be read or written, or does not hold what it should."""


class TrainingDiverged(SweetspotError):
    """A loss became NaN or infinite; the trial is failed and the study goes on."""
