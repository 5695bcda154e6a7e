"""The checkpoint folder: longest usable prefix, eviction within the budget (what serves least, then LRU), several
writers at once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import torch

from sweetspot.core.checkpoints import CheckpointStore, checkpoint_dir, path_key

CPU = torch.device("cpu")


def _state(epoch: int, size: int = 1000) -> dict:
    return {"epoch": epoch, "weights": torch.full((size,), float(epoch)), "curve": None}


def test_key_is_stable_and_depends_on_every_part():
    parts = {"batch_size": 64, "seed": 3, "teacher": {"arch": "mlp", "width": 32}}
    assert path_key(parts) == path_key(dict(reversed(list(parts.items()))))
    assert path_key(parts) != path_key(parts | {"seed": 4})
    assert path_key(parts) != path_key(parts | {"teacher": {"arch": "mlp", "width": 33}})


def test_load_takes_the_longest_prefix_not_longer_than_the_run(tmp_path: Path):
    store = CheckpointStore(tmp_path, 2**30)
    for epoch in (2, 5, 9):
        store.save("k", epoch, _state(epoch))
    store.save("other", 4, _state(4))
    assert store.load("k", 8, CPU)["epoch"] == 5
    assert store.load("k", 9, CPU)["epoch"] == 9
    assert store.load("k", 1, CPU) is None
    assert store.load("k", 4, CPU, accept=lambda s: s["epoch"] != 2) is None
    assert store.load("missing", 100, CPU) is None


def test_an_unreadable_or_vanished_checkpoint_is_skipped(tmp_path: Path):
    store = CheckpointStore(tmp_path, 2**30)
    store.save("k", 2, _state(2))
    (tmp_path / "k-00003.ckpt").write_bytes(b"not a checkpoint")
    assert store.load("k", 5, CPU)["epoch"] == 2
    assert torch.equal(store.load("k", 5, CPU)["weights"], torch.full((1000,), 2.0))


def test_eviction_removes_the_least_recently_used_first(tmp_path: Path):
    one = len(_bytes(tmp_path))
    store = CheckpointStore(tmp_path / "store", budget_bytes=int(2.5 * one))
    store.save("a", 1, _state(1))
    store.save("b", 1, _state(1))
    _age(store.root, "a-00001.ckpt", 100)
    _age(store.root, "b-00001.ckpt", 50)
    assert store.load("a", 1, CPU) is not None  # a is now the most recently used
    store.save("c", 1, _state(1))  # over budget: b (least recently used) goes
    names = sorted(p.name for p in store.root.glob("*.ckpt"))
    assert names == ["a-00001.ckpt", "c-00001.ckpt"]
    assert store.size() <= store.budget_bytes


def test_eviction_removes_what_serves_the_fewest_future_trials_first(tmp_path: Path):
    one = len(_bytes(tmp_path))
    store = CheckpointStore(tmp_path / "store", budget_bytes=int(3.5 * one), horizon=100)
    for epoch in (4, 5, 60):  # a trial of E epochs starts at 4 only for E = 4; at 5 for 5..59; at 60 for 60..100
        store.save("a", epoch, _state(epoch))
    _age(store.root, "a-00005.ckpt", 100)
    _age(store.root, "a-00060.ckpt", 50)
    assert store.load("a", 4, CPU)["epoch"] == 4  # the most recently used, and still the first to go
    store.save("b", 1, _state(1))
    assert sorted(p.name for p in store.root.glob("*.ckpt")) == ["a-00005.ckpt", "a-00060.ckpt", "b-00001.ckpt"]


def test_a_checkpoint_larger_than_the_budget_is_the_one_kept_last(tmp_path: Path):
    store = CheckpointStore(tmp_path, budget_bytes=10)
    store.save("a", 1, _state(1))
    store.save("b", 1, _state(1))
    assert [p.name for p in tmp_path.glob("*.ckpt")] == []  # nothing fits: nothing is kept


def _bytes(tmp_path: Path) -> bytes:
    probe = CheckpointStore(tmp_path / "probe", 2**30)
    probe.save("x", 1, _state(1))
    return (probe.root / "x-00001.ckpt").read_bytes()


def _age(root: Path, name: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(root / name, (then, then))


def _writer(root: str, worker: int, budget: int) -> None:
    store = CheckpointStore(Path(root), budget)
    for round_ in range(15):
        for epoch in (1, 2, 3):
            store.save(f"path{(worker + round_) % 3}", epoch, _state(epoch, size=20_000))
            found = store.load(f"path{round_ % 3}", 3, CPU)
            assert found is None or torch.equal(found["weights"], torch.full((20_000,), float(found["epoch"])))


def test_several_processes_writing_at_once_leave_only_whole_checkpoints_within_budget(tmp_path: Path):
    budget = 5 * 81_000  # about five of these checkpoints
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, budget)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]  # no reader saw a half-written file
    store = CheckpointStore(tmp_path, budget)
    assert 0 < store.size() <= budget
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind
    for path in tmp_path.glob("*.ckpt"):
        state = torch.load(path, weights_only=True)
        assert torch.equal(state["weights"], torch.full((20_000,), float(state["epoch"])))


def test_default_folder_is_inside_the_artifact_folder(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SWEETSPOT_CHECKPOINTS", raising=False)
    assert checkpoint_dir(tmp_path / "studies-artifacts") == tmp_path / "studies-artifacts" / "checkpoints"
    assert checkpoint_dir(tmp_path, "elsewhere") == Path("elsewhere")
    monkeypatch.setenv("SWEETSPOT_CHECKPOINTS", str(tmp_path / "env"))
    assert checkpoint_dir(tmp_path) == tmp_path / "env"
