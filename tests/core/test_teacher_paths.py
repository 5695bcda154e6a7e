"""Shared teacher paths: a trial resumed from a stored prefix ends exactly where one from scratch does."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from sweetspot.config import config_from_dict
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.teacher_paths import run_teacher
from sweetspot.core.trial import TeacherParams, prepare, run_trial
from sweetspot.service.objective import Objective
from tests.conftest import TINY

CPU = torch.device("cpu")
# dropout: the global RNG must be carried in the checkpoint too, or a resumed run would differ
DROPOUT = TINY | {"teacher": {"arch": "mlp", "width": 32, "depth": 2, "dropout": 0.2}}


@pytest.fixture(scope="module")
def tiny():
    config = config_from_dict(DROPOUT)
    return config, prepare(config, CPU)


def _science(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("time_s", "teacher_epochs")}


def test_a_resumed_trial_has_the_same_metrics_as_one_from_scratch(tiny, tmp_path: Path):
    config, splits = tiny
    store = CheckpointStore(tmp_path, 2**30)
    scratch = run_trial(config, splits, TeacherParams(64, 5), seed=7)
    short = run_trial(config, splits, TeacherParams(64, 2), seed=7, checkpoints=store)
    resumed = run_trial(config, splits, TeacherParams(64, 5), seed=7, checkpoints=store)
    assert short.metrics["teacher_epochs"] == {"trained": 2, "reused": 0}
    assert resumed.metrics["teacher_epochs"] == {"trained": 3, "reused": 2}
    assert _science(resumed.metrics) == _science(scratch.metrics)
    for a, b in zip(resumed.teacher.state_dict().values(), scratch.teacher.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    again = run_trial(config, splits, TeacherParams(64, 5), seed=7, checkpoints=store)  # the whole path is stored now
    assert again.metrics["teacher_epochs"] == {"trained": 0, "reused": 5}
    assert _science(again.metrics) == _science(scratch.metrics)


def test_paths_with_another_seed_or_batch_size_do_not_share(tiny, tmp_path: Path):
    config, splits = tiny
    store = CheckpointStore(tmp_path, 2**30)
    run_trial(config, splits, TeacherParams(64, 2), seed=7, checkpoints=store)
    assert (
        run_trial(config, splits, TeacherParams(64, 3), seed=8, checkpoints=store).metrics["teacher_epochs"]["reused"]
        == 0
    )
    assert (
        run_trial(config, splits, TeacherParams(32, 3), seed=7, checkpoints=store).metrics["teacher_epochs"]["reused"]
        == 0
    )


def _resumed_and_scratch(teacher: dict, store: CheckpointStore, first: int) -> tuple:
    """A 4-epoch trial resumed from a ``first``-epoch one, and the same trial from scratch."""
    config = config_from_dict(DROPOUT | {"teacher": DROPOUT["teacher"] | teacher})
    splits = prepare(config, CPU)
    scratch = run_trial(config, splits, TeacherParams(64, 4), seed=3)
    run_trial(config, splits, TeacherParams(64, first), seed=3, checkpoints=store)
    resumed = run_trial(config, splits, TeacherParams(64, 4), seed=3, checkpoints=store)
    assert resumed.metrics["teacher_epochs"] == {"trained": 4 - first, "reused": first}
    assert _science(resumed.metrics) == _science(scratch.metrics)
    return scratch, splits


def test_an_exponential_schedule_shares_and_stays_exact(tmp_path: Path):
    scratch, splits = _resumed_and_scratch(
        {"schedule": "exponential", "lr_decay": 0.5}, CheckpointStore(tmp_path, 2**30), 1
    )
    # the schedule changes the path: a run with a constant rate differs
    assert _science(run_trial(config_from_dict(DROPOUT), splits, TeacherParams(64, 4), seed=3).metrics) != _science(
        scratch.metrics
    )


def test_a_schedule_that_reads_the_total_epochs_trains_from_scratch(tmp_path: Path):
    config = config_from_dict(DROPOUT | {"teacher": DROPOUT["teacher"] | {"schedule": "cosine"}})
    splits = prepare(config, CPU)
    store = CheckpointStore(tmp_path, 2**30)
    run_trial(config, splits, TeacherParams(64, 2), seed=3, checkpoints=store)
    longer = run_trial(config, splits, TeacherParams(64, 4), seed=3, checkpoints=store)
    assert longer.metrics["teacher_epochs"] == {"trained": 4, "reused": 0}
    assert not list(tmp_path.glob("*.ckpt"))  # nothing stored that nobody could use
    assert _science(longer.metrics) == _science(run_trial(config, splits, TeacherParams(64, 4), seed=3).metrics)


def test_a_watched_run_replays_stored_epochs_through_the_watch(tiny, tmp_path: Path):
    config, splits = tiny
    store = CheckpointStore(tmp_path, 2**30)
    seen: list[int] = []

    def watch(point):
        seen.append(int(point["epoch"]))

    def run(epochs):
        generator = torch.Generator().manual_seed(5)
        torch.manual_seed(5)
        return run_teacher(
            config.teacher, splits, 64, epochs, 1e-3, generator, store=store, key="k", watch=watch, temperature=9.0
        )

    first = run(2)
    second = run(4)
    assert seen == [1, 2, 1, 2, 3, 4]  # epochs 1-2 replayed from the checkpoint's curve
    assert second.curve[:2] == first.curve
    assert (second.epochs_trained, second.epochs_reused) == (2, 2)


def _study_values(config, splits, epochs: list[int], store: CheckpointStore | None) -> list[dict]:
    study = optuna.create_study(directions=list(config.objectives.values()))
    for e in epochs:
        study.enqueue_trial({"batch_size": 64, "epochs": e})
    study.optimize(Objective(config, splits, checkpoints=store), n_trials=len(epochs))
    return [t.user_attrs | {"values": t.values} for t in study.trials]


def test_sharing_on_and_off_give_the_same_study(tiny, tmp_path: Path):
    config, splits = tiny
    epochs = [2, 4, 3, 4]
    on = _study_values(config, splits, epochs, CheckpointStore(tmp_path, 2**30))
    off = _study_values(config, splits, epochs, None)
    assert [t["teacher_epochs"] for t in on] == [
        {"trained": 2, "reused": 0},
        {"trained": 2, "reused": 2},
        {"trained": 1, "reused": 2},
        {"trained": 0, "reused": 4},
    ]
    assert [t["teacher_epochs"]["trained"] for t in off] == [2, 4, 3, 0]  # the last one repeats trial 1: reused whole
    assert off[3]["reused_from"] == on[3]["reused_from"] == 1
    for a, b in zip(on, off, strict=True):
        assert _science(a) == _science(b)
    assert len({t["seed"] for t in on}) == 1  # one path: the seed depends on batch size and lr, not epochs or trial


def test_checkpoints_every_epoch_let_a_shorter_trial_reuse_a_longer_ones_path(tiny, tmp_path: Path):
    config, splits = tiny
    store = CheckpointStore(tmp_path, 2**30, every=2)
    run_trial(config, splits, TeacherParams(64, 5), seed=7, checkpoints=store)
    assert store.epochs_stored(next(iter(store.root.glob("*.ckpt"))).name.rpartition("-")[0]) == [5, 4, 2]
    shorter = run_trial(config, splits, TeacherParams(64, 4), seed=7, checkpoints=store)
    assert shorter.metrics["teacher_epochs"] == {"trained": 0, "reused": 4}
    assert _science(shorter.metrics) == _science(run_trial(config, splits, TeacherParams(64, 4), seed=7).metrics)
    odd = run_trial(config, splits, TeacherParams(64, 3), seed=7, checkpoints=store)
    assert odd.metrics["teacher_epochs"] == {"trained": 1, "reused": 2}
    assert _science(odd.metrics) == _science(run_trial(config, splits, TeacherParams(64, 3), seed=7).metrics)


def test_a_watched_run_does_not_replay_a_curve_measured_at_another_temperature(tiny, tmp_path: Path):
    config, splits = tiny
    store = CheckpointStore(tmp_path, 2**30)

    def run(epochs, temperature):
        generator = torch.Generator().manual_seed(5)
        torch.manual_seed(5)
        return run_teacher(
            config.teacher,
            splits,
            64,
            epochs,
            1e-3,
            generator,
            store=store,
            key="k",
            watch=lambda point: None,
            temperature=temperature,
        )

    hot = run(2, 9.0)
    cold = run(3, 2.0)
    assert (cold.epochs_trained, cold.epochs_reused) == (3, 0)  # the T=9 curve cannot stand in for T=2
    assert cold.curve[1]["accuracy"] == hot.curve[1]["accuracy"]  # the same path...
    assert cold.curve[1]["entropy"] < hot.curve[1]["entropy"]  # ...read at a lower T
    assert (run(3, 9.0).epochs_reused, run(3, 2.0).epochs_reused) == (2, 3)


def test_a_bfloat16_teacher_is_shared_exactly_and_kept_apart_from_float32(tmp_path: Path):
    store = CheckpointStore(tmp_path, 2**30)
    scratch, splits = _resumed_and_scratch({"precision": "bfloat16"}, store, 2)
    single = run_trial(config_from_dict(DROPOUT), splits, TeacherParams(64, 4), seed=3, checkpoints=store)
    assert single.metrics["teacher_epochs"]["reused"] == 0  # float32 is another path
    assert _science(single.metrics) != _science(scratch.metrics)
    assert abs(single.metrics["teacher_val_acc"] - scratch.metrics["teacher_val_acc"]) < 0.1  # close, not equal


def test_an_augmented_teacher_resumes_exactly_and_differs_from_an_unaugmented_one(tmp_path: Path):
    """teacher.augment draws from the batch-order generator, which checkpoints carry."""
    augmented = config_from_dict(DROPOUT | {"teacher": DROPOUT["teacher"] | {"augment": "flip-crop"}})
    splits = prepare(augmented, CPU)
    store = CheckpointStore(tmp_path, 2**30)
    scratch = run_trial(augmented, splits, TeacherParams(64, 4), seed=3)
    run_trial(augmented, splits, TeacherParams(64, 2), seed=3, checkpoints=store)
    resumed = run_trial(augmented, splits, TeacherParams(64, 4), seed=3, checkpoints=store)
    assert resumed.metrics["teacher_epochs"] == {"trained": 2, "reused": 2}
    assert _science(resumed.metrics) == _science(scratch.metrics)
    plain = run_trial(config_from_dict(DROPOUT), splits, TeacherParams(64, 4), seed=3)
    assert _science(plain.metrics) != _science(scratch.metrics)
