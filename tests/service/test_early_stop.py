"""Early stops: the entropy floor, the accuracy ceiling and Optuna's pruners prune a trial with its
reason, change nothing for the trials they do not stop, and give the same answer on a shared path."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from sweetspot.config import EarlyStopConfig, config_from_dict
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.trial import prepare
from sweetspot.errors import ConfigError
from sweetspot.service.early_stop import rule_reason
from sweetspot.service.objective import Objective
from tests.conftest import TINY

CPU = torch.device("cpu")
# the tiny teacher at batch 32 crosses an entropy of 0.985 at T=9 and a validation accuracy of 0.9
# after about 5-6 epochs (both fall/rise every epoch); the tests read the epoch off the stored curve
BASE = TINY | {"search": {"batch_size": [32, 256], "epochs": [1, 12]}}


def _study(raw: dict, trials: list[tuple[int, int]], store: CheckpointStore | None = None) -> optuna.Study:
    config = config_from_dict(raw)
    splits = prepare(config, CPU)
    from sweetspot.service.early_stop import make_pruner

    study = optuna.create_study(directions=list(config.objectives.values()), pruner=make_pruner(config.early_stop))
    for batch, epochs in trials:
        study.enqueue_trial({"batch_size": batch, "epochs": epochs})
    study.optimize(Objective(config, splits, checkpoints=store), n_trials=len(trials))
    return study


def test_rule_reason_names_the_figure_the_epoch_and_the_bound():
    rule = EarlyStopConfig(entropy_floor=0.5, accuracy_ceiling=0.9)
    assert rule_reason(rule, {"epoch": 3, "entropy": 0.6, "accuracy": 0.8}, 9.0) is None
    assert rule_reason(rule, {"epoch": 3, "entropy": 0.4, "accuracy": 0.8}, 9.0) == (
        "teacher entropy at T=9 fell to 0.4000 after epoch 3, below early_stop.entropy_floor 0.5")
    assert "above early_stop.accuracy_ceiling 0.9" in rule_reason(
        rule, {"epoch": 4, "entropy": 0.6, "accuracy": 0.95}, 9.0
    )


def test_entropy_floor_prunes_the_trial_and_leaves_the_others_unchanged():
    with_rule = _study(BASE | {"early_stop": {"entropy_floor": 0.985}}, [(32, 10), (32, 3)])
    stopped, kept = with_rule.trials
    assert stopped.state == TrialState.PRUNED
    curve = stopped.user_attrs["teacher_curve"]
    assert 3 < len(curve) < 10 and [p["epoch"] for p in curve] == list(range(1, len(curve) + 1))
    assert (
        all(p["entropy"] >= 0.985 for p in curve[:-1]) and curve[-1]["entropy"] < 0.985
    )  # stopped at the first epoch below
    assert stopped.user_attrs["pruned_reason"] == (
        f"teacher entropy at T=9 fell to {curve[-1]['entropy']:.4f} after epoch {len(curve)}, "
        "below early_stop.entropy_floor 0.985"
    )
    assert stopped.user_attrs["teacher_epochs"] == {"trained": len(curve), "reused": 0}
    assert kept.state == TrialState.COMPLETE
    plain = _study(BASE, [(32, 3)]).trials[0]  # the same trial without any rule
    drop = ("time_s", "teacher_curve", "worker")
    assert {k: v for k, v in kept.user_attrs.items() if k not in drop} == {
        k: v for k, v in plain.user_attrs.items() if k not in drop
    }
    assert kept.values == plain.values


def test_accuracy_ceiling_prunes_an_over_trained_teacher():
    (trial,) = _study(BASE | {"early_stop": {"accuracy_ceiling": 0.9}}, [(32, 12)]).trials
    curve = trial.user_attrs["teacher_curve"]
    assert trial.state == TrialState.PRUNED and len(curve) < 12
    assert all(p["accuracy"] <= 0.9 for p in curve[:-1]) and curve[-1]["accuracy"] > 0.9
    assert f"after epoch {len(curve)}, above early_stop.accuracy_ceiling 0.9" in trial.user_attrs["pruned_reason"]


def test_a_shared_path_stops_at_the_same_epoch_for_the_same_reason(tmp_path: Path):
    store = CheckpointStore(tmp_path, 2**30)
    first, second = _study(BASE | {"early_stop": {"entropy_floor": 0.985}}, [(32, 10), (32, 8)], store).trials
    assert first.state == second.state == TrialState.PRUNED
    assert second.user_attrs["pruned_reason"] == first.user_attrs["pruned_reason"]
    stop = len(first.user_attrs["teacher_curve"])
    assert stop <= 8 and second.user_attrs["teacher_epochs"] == {
        "trained": 0,
        "reused": stop,
    }  # replayed from the stored curve
    assert second.user_attrs["teacher_curve"] == first.user_attrs["teacher_curve"]


def test_optunas_median_pruner_prunes_on_the_teacher_curve_of_a_single_objective_study():
    raw = BASE | {
        "objectives": {"student_val_acc": "maximize"},
        "early_stop": {"pruner": "median", "curve": "teacher_entropy"},
    }
    startup = [(256, 4), (128, 4), (256, 3), (128, 3), (256, 2)]  # MedianPruner waits for 5 finished trials
    study = _study(raw, [*startup, (32, 6)])
    assert [t.state for t in study.trials[:5]] == [TrialState.COMPLETE] * 5
    last = study.trials[5]
    assert last.state == TrialState.PRUNED
    assert last.user_attrs["pruned_reason"].startswith("Optuna's median pruner after epoch")
    assert last.intermediate_values  # reported to Optuna (and shown by optuna-dashboard)
    assert len(study.trials[0].intermediate_values) == 4  # every epoch of every trial is reported


def test_a_pruner_on_a_multi_objective_study_is_refused():
    with pytest.raises(ConfigError, match=r"early_stop.pruner needs a single objective \(this study has 2"):
        config_from_dict(BASE | {"early_stop": {"pruner": "median"}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("entropy_floor", 1.5, "early_stop.entropy_floor must be between 0 and 1"),
        ("accuracy_ceiling", 0, "early_stop.accuracy_ceiling must be within"),
        ("pruner", "medain", "did you mean 'median'"),
        ("curve", "loss", "allowed: teacher_entropy, teacher_val_acc"),
    ],
)
def test_bad_early_stop_settings_name_what_is_allowed(key, value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(BASE | {"early_stop": {key: value}})
