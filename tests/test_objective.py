import optuna
import pytest
import torch

from sweetspot.config import ENTROPY_GRID, RECORD_ATTRS, TRIAL_METRICS, config_from_dict
from sweetspot.errors import ConfigError, DataError
from sweetspot.objective import Objective
from sweetspot.trial import TeacherParams, prepare, resolve_device, run_trial
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    config = config_from_dict(TINY)
    return config, prepare(config, CPU)


def _science(metrics):
    return {k: v for k, v in metrics.items() if k != "time_s"}


def test_run_trial_stores_every_metric(tiny):
    config, splits = tiny
    metrics = run_trial(config, splits, TeacherParams(64, 2), seed=1).metrics
    assert set(metrics) == set(TRIAL_METRICS) | set(RECORD_ATTRS) - {"seed", "teacher_seeds"}  # one teacher seed
    assert list(metrics["teacher_entropy_by_T"]) == [str(t) for t in ENTROPY_GRID]
    assert metrics["teacher_entropy_by_T"]["20"] > metrics["teacher_entropy_by_T"]["1"]
    assert set(metrics["time_s"]) == {"teacher", "soft_labels", "student", "total"}
    assert all(0.0 <= metrics[k] <= 1.0 for k in TRIAL_METRICS)


def test_run_trial_twice_with_one_seed_gives_the_same_metrics(tiny):
    config, splits = tiny
    a = run_trial(config, splits, TeacherParams(32, 3), seed=7).metrics
    b = run_trial(config, splits, TeacherParams(32, 3), seed=7).metrics
    c = run_trial(config, splits, TeacherParams(32, 3), seed=8).metrics
    assert _science(a) == _science(b)
    assert _science(a) != _science(c)


def test_run_trial_more_training_lowers_entropy(tiny):
    # the paper's mechanism on a tiny net: small batches for many epochs -> confident soft labels
    config, splits = tiny
    short = run_trial(config, splits, TeacherParams(256, 1), seed=0).metrics
    long = run_trial(config, splits, TeacherParams(32, 30), seed=0).metrics
    assert long["teacher_entropy"] < short["teacher_entropy"] - 0.1
    assert long["teacher_val_acc"] > short["teacher_val_acc"]


def test_objective_records_metrics_as_user_attributes_and_returns_the_objectives(tiny):
    config, splits = tiny
    config = config_from_dict(TINY | {"search": TINY["search"] | {"repeats": True}})  # no reuse: two trainings
    study = optuna.create_study(directions=list(config.objectives.values()))
    study.optimize(Objective(config, splits), n_trials=2)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert set(TRIAL_METRICS) | set(RECORD_ATTRS) - {"teacher_seeds"} <= set(trial.user_attrs)
        assert trial.values == [trial.user_attrs[m] for m in config.objectives]
    assert study.trials[0].user_attrs["seed"] != study.trials[1].user_attrs["seed"]


def test_objective_fails_a_diverging_trial_and_the_study_goes_on():
    config = config_from_dict(
        TINY | {"teacher": {"arch": "mlp", "width": 32, "depth": 2, "optimizer": "sgd", "lr": 1e12}}
    )
    splits = prepare(config, CPU)
    study = optuna.create_study(directions=list(config.objectives.values()))
    study.optimize(Objective(config, splits), n_trials=2)  # no exception escapes
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert "teacher loss became nan" in study.trials[0].user_attrs["fail_reason"]


def test_prepare_rejects_a_batch_range_larger_than_the_training_split():
    config = config_from_dict(TINY | {"search": {"batch_size": [16, 4096], "epochs": [1, 3]}})
    with pytest.raises(ConfigError, match=r"search.batch_size: 4096 is larger than the training split \(1077 examples"):
        prepare(config, CPU)


def test_prepare_rejects_withheld_classes_not_in_the_dataset():
    config = config_from_dict(TINY | {"distill": {"withheld_classes": [3, 12]}})
    with pytest.raises(DataError, match=r"\[12\] not in the dataset"):
        prepare(config, CPU)


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda:0' is not available here"):
            resolve_device("cuda:0")


def test_objective_reuses_a_finished_trial_with_the_same_parameters_unless_repeats_are_asked():
    one_point = TINY | {"search": {"batch_size": [32, 32], "epochs": [2, 2]}}
    for repeats in (False, True):
        config = config_from_dict(one_point | {"search": one_point["search"] | {"repeats": repeats}})
        study = optuna.create_study(directions=list(config.objectives.values()))
        study.optimize(Objective(config, prepare(config, CPU)), n_trials=2)
        first, second = study.trials
        assert first.params == second.params
        if repeats:
            assert "reused_from" not in second.user_attrs
            assert second.user_attrs["seed"] != first.user_attrs["seed"]
        else:
            assert second.user_attrs["reused_from"] == 0
            assert second.values == first.values
            assert second.user_attrs["seed"] == first.user_attrs["seed"]  # an export retrains the same teacher
            assert second.user_attrs["time_s"] == first.user_attrs["time_s"]
