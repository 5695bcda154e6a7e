"""A size-bounded folder of teacher checkpoints that trials of one path share.

Trials that differ only in ``epochs`` walk the same training path (same network, optimizer,
schedule, batch size, data and seed: ``path_key``). A trial saves its teacher's state where
it stopped; a later trial on the same path starts from the longest stored prefix that is not
longer than its own run, and trains only the rest.

Several workers (processes or machines mounting one folder) may read and write at once: a file
appears under its final name only when complete (written aside, then ``os.replace``), a file that
vanishes between listing and reading is skipped, and once the folder is over its size bound files
are deleted (under an advisory lock, so that two workers do not both evict): first those that can
serve the fewest future trials, then the least recently used. Files are read with
``torch.load(weights_only=True)``: no pickled code runs.

What a checkpoint can serve: a trial of ``E`` epochs starts from its path's longest checkpoint of at
most ``E`` epochs, so the checkpoint at epoch ``e`` is the start of the trials with ``E`` from ``e``
up to the path's next checkpoint (or the search space's largest ``epochs``, ``horizon``). One whose
next checkpoint is an epoch later serves one epoch count, at most: it goes before one that serves
sixty. Which counts the sampler will draw is unknown; this counts them all alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from sweetspot.core.atomic_files import atomic_file
from sweetspot.errors import FileError

CHECKPOINTS_ENV = "SWEETSPOT_CHECKPOINTS"
SUFFIX = ".ckpt"


def path_key(parts: dict[str, Any]) -> str:
    """A short stable name for everything that defines a training path (a JSON-able dict)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class CheckpointStore:
    """Teacher checkpoints in ``root`` (created if missing), at most ``budget_bytes`` in all; with
    ``every`` = k > 0 also every k-th epoch of a run, so that a shorter trial finds its own epoch."""

    def __init__(self, root: Path, budget_bytes: int, every: int = 0, horizon: int | None = None) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileError(f"cannot create the checkpoint folder {str(root)!r} ({exc.strerror})") from exc
        self.root = root
        self.budget_bytes = budget_bytes
        self.every = every
        self.horizon = horizon  # the most epochs a trial may ask for (None: unknown, e.g. experiments)

    def _path(self, key: str, epoch: int) -> Path:
        return self.root / f"{key}-{epoch:05d}{SUFFIX}"

    def epochs_stored(self, key: str) -> list[int]:
        """The epochs this path has checkpoints at, longest first."""
        found = []
        for path in self.root.glob(f"{key}-*{SUFFIX}"):
            with contextlib.suppress(ValueError):
                found.append(int(path.stem.rpartition("-")[2]))
        return sorted(found, reverse=True)

    def load(
        self, key: str, max_epoch: int, device: torch.device, accept: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any] | None:
        """The longest checkpoint of ``key`` at most ``max_epoch`` epochs long that ``accept`` takes,
        marked as recently used; ``None`` if there is none."""
        for epoch in self.epochs_stored(key):
            if epoch > max_epoch:
                continue
            path = self._path(key, epoch)
            try:
                state = torch.load(path, map_location=device, weights_only=True)
            except (FileNotFoundError, EOFError, RuntimeError, pickle.UnpicklingError):
                continue  # evicted by another worker meanwhile, or unreadable: try a shorter one
            if state.get("epoch") != epoch or not accept(state):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)  # least recently *used*: a read counts
            return state
        return None

    def save(self, key: str, epoch: int, state: dict[str, Any]) -> None:
        """Store ``state`` as ``key``'s checkpoint at ``epoch`` (kept if one is there already), then
        evict least-recently-used files until the folder fits its budget."""
        path = self._path(key, epoch)
        if path.exists():
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)
            return
        with atomic_file(path) as tmp:
            torch.save(state, tmp)
        self.evict(keep=path)

    def size(self) -> int:
        return sum(size for _, size, _ in self._files())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete checkpoints until the total is within the budget: those that serve the fewest
        future epoch counts first, then the least recently used (``keep``, the one just written,
        goes last). Returns what was deleted."""
        removed = []
        with self._lock():
            files = self._files()
            serves = self._serves([path for path, _, _ in files])
            files.sort(key=lambda f: (f[0] == keep, serves[f[0]], f[2]))
            total = sum(size for _, size, _ in files)
            for path, size, _ in files:
                if total <= self.budget_bytes:
                    break
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
                total -= size
        return removed

    def _serves(self, paths: list[Path]) -> dict[Path, float]:
        """For each checkpoint, how many epoch counts ``E`` would start from it (see the module's
        docstring); the last of a path serves up to the horizon, or without end if it is unknown."""
        by_key: dict[str, list[tuple[int, Path]]] = {}
        for path in paths:
            key, _, epoch = path.stem.rpartition("-")
            with contextlib.suppress(ValueError):
                by_key.setdefault(key, []).append((int(epoch), path))
        last_end = math.inf if self.horizon is None else self.horizon + 1
        serves: dict[Path, float] = dict.fromkeys(paths, math.inf)
        for stored in by_key.values():
            stored.sort()
            for (epoch, path), (end, _) in zip(stored, [*stored[1:], (last_end, None)]):
                serves[path] = max(0, end - epoch)
        return serves

    def _files(self) -> list[tuple[Path, int, float]]:
        out = []
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            out.append((path, stat.st_size, stat.st_mtime))
        return out

    def _lock(self) -> FileLock:
        """One evicting worker at a time (an OS file lock: also across processes and machines that
        mount the folder, where the file system supports locks)."""
        return FileLock(self.root / ".evict.lock")


def checkpoint_dir(artifacts: Path, override: str | None = None) -> Path:
    """``--checkpoints``, else ``$SWEETSPOT_CHECKPOINTS``, else ``checkpoints/`` in the study's artifact folder."""
    chosen = override or os.environ.get(CHECKPOINTS_ENV)
    return Path(chosen) if chosen else artifacts / "checkpoints"
