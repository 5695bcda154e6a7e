"""Files written whole or not at all: a reader never sees half of one, a failed step leaves none.

No torch, no Optuna: checkpoints, dataset downloads, exports and the CLI all use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sweetspot.errors import FileError


def _plain_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file (0o666 less the umask), read once at import:
    the umask can only be read by setting it."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


PLAIN_FILE_MODE = _plain_file_mode()


@contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` to write, renamed to ``path`` when the block ends without
    an error and removed otherwise: never a half-written file, even with several writers."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileError(f"directory {str(directory)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise FileError(f"cannot write in {str(directory)!r} ({exc.strerror})") from exc
    os.close(fd)
    try:
        os.chmod(tmp, PLAIN_FILE_MODE)  # mkstemp's 0o600 would hide an export or a shared dataset from the group
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def folders_undone_on_error(*folders: Path) -> Iterator[None]:
    """Whichever of ``folders`` (and their parents) the block creates are removed again, if still empty,
    when it ends in an error: a refused command leaves no folder behind."""
    missing = {p.absolute() for folder in folders for p in (folder, *folder.absolute().parents) if not p.exists()}
    try:
        yield
    except BaseException:
        for folder in sorted(missing, key=lambda p: len(p.parts), reverse=True):  # the deepest first
            with suppress(OSError):  # not empty, or never made
                folder.rmdir()
        raise


def write_atomically(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
