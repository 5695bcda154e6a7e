"""The Python API: the README's example, networks and data as Python objects, and sweetspot's
objective inside a plain Optuna study."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState
from sklearn.datasets import load_digits

import sweetspot
from sweetspot import api
from sweetspot.cli import build_parser
from sweetspot.config import config_from_dict
from sweetspot.errors import ConfigError
from tests.conftest import REPO, TINY


def readme_block(heading: str, number: int = 0, page: str = "README.md") -> str:
    """The ``number``-th python block of the section ``heading`` of ``page`` (the README, or a docs page)."""
    text = (REPO / page).read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[number]


def test_the_readme_python_example_runs_end_to_end(tmp_path, monkeypatch, tiny_config_file):
    """The README's block as it is, on the tiny study: its two numbers are the only changes."""
    monkeypatch.chdir(tmp_path)
    code = readme_block("From Python")
    assert '"studies/digits.yaml"' in code and "n_trials=25" in code
    code = code.replace('"studies/digits.yaml"', repr(str(tiny_config_file))).replace("n_trials=25", "n_trials=3")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    study, best, teacher = scope["study"], scope["best"], scope["teacher"]
    assert isinstance(study, optuna.Study)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    assert (tmp_path / "sweetspot.db").is_file()
    assert yaml.safe_load((tmp_path / "best-teacher.yaml").read_text()) == yaml.safe_load(yaml.safe_dump(best))
    first = best["teachers"][0]
    assert first["best"] and len(first["confirmed"]["teacher_seeds"]) == 3
    assert best["reference"] is not None  # the reference teacher was trained with the study
    assert isinstance(teacher, torch.nn.Module) and not teacher.training
    assert teacher(torch.rand(5, 1, 8, 8)).shape == (5, 10)  # digits are 1 x 8 x 8 images


def test_the_docs_objective_example_runs_in_a_plain_optuna_study():
    """``sweetspot.Objective`` in a study sweetspot did not make: in-memory, no sweetspot attributes."""
    code = readme_block("From Python", 1, "docs/getting-started.md")
    scope = {"optuna": optuna, "sweetspot": sweetspot, "config": config_from_dict(TINY)}
    exec(compile(code.replace("n_trials=10", "n_trials=2"), "README.md", "exec"), scope)
    study = scope["optuna_study"]
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        assert trial.values == [trial.user_attrs[m] for m in TINY.get("objectives", sweetspot.StudyConfig().objectives)]
        assert {"teacher_entropy", "label_student_val_acc", "seed"} <= set(trial.user_attrs)
    assert scope["objective"].directions == ["maximize", "maximize"]


def digits_arrays():
    """A user's dataset function: the 8x8 digits as (x, y)."""
    digits = load_digits()
    return digits.data.astype(np.float32) / 16, digits.target


def test_a_study_runs_with_a_teacher_and_a_dataset_given_as_python_objects(tmp_path):
    calls = []

    def my_teacher(input_shape, n_classes, width=16):  # a function only this process holds
        calls.append(input_shape)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), width),
                                   torch.nn.ReLU(), torch.nn.Linear(width, n_classes))

    config = config_from_dict(TINY)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, name=lambda: digits_arrays()),
                                 teacher=dataclasses.replace(config.teacher, arch=my_teacher, options={"width": 8}))
    url = f"sqlite:///{tmp_path / 'objects.db'}"
    study = sweetspot.run_study(config, url, n_trials=2, progress=False)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and calls  # the study trained the user's own teacher
    stored = study.user_attrs["sweetspot_config"]["teacher"]["arch"]
    assert stored.startswith("python:") and "my_teacher" in stored
    best = sweetspot.export_best(study)  # the stored config names the objects, which this process holds
    teacher = sweetspot.load_teacher(best)
    assert teacher(torch.rand(3, 64)).shape == (3, 10)


def test_a_module_level_callable_keeps_its_import_path_and_other_processes_may_follow_it(tmp_path):
    config = config_from_dict(TINY)
    named = api._checked(dataclasses.replace(config, data=dataclasses.replace(config.data, name=digits_arrays)), 2)
    assert named.data.name == "tests.test_api:digits_arrays"


def test_an_object_only_this_process_holds_is_refused_for_worker_processes_before_anything_is_written(tmp_path):
    config = config_from_dict(TINY)
    config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, arch=lambda shape, n: None))
    db = tmp_path / "refused.db"
    refusal = r"^workers=2: worker processes cannot see teacher.arch \(\S*<lambda>\), a Python object"
    with pytest.raises(ConfigError, match=refusal):
        sweetspot.run_study(config, f"sqlite:///{db}", workers=2)
    assert not db.exists()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sweetspot.run_study(sweetspot.StudyConfig(), "sqlite:///x.db", workers=0),
         "workers: must be a positive integer, got 0"),
        (lambda: sweetspot.run_study({"name": "x"}, "sqlite:///x.db"), "config: must be a sweetspot.StudyConfig"),
        (lambda: sweetspot.run_study(sweetspot.StudyConfig(), "sqlite:///x.db", n_trials=0),
         "n_trials: must be a positive integer, got 0"),
        (lambda: sweetspot.run_study(sweetspot.StudyConfig(), "nosuchdb:///x.db"), "storage: "),
        (lambda: sweetspot.load_teacher({"config": {}, "teachers": []}), "'best' is not a `sweetspot export`"),
    ],
)
def test_bad_input_from_python_is_one_error_naming_the_argument(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(sweetspot.SweetspotError) as raised:
        call()
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert not (tmp_path / "x.db").exists()


def test_the_cli_takes_its_defaults_from_the_api():
    args = build_parser().parse_args(["run"])
    assert (args.heartbeat, args.grace, args.checkpoint_mb, args.keep_weights, args.checkpoint_every, args.log_dir) == (
        api.HEARTBEAT_S, api.GRACE_S, api.CHECKPOINT_MB, api.KEEP_WEIGHTS, api.CHECKPOINT_EVERY, api.LOG_DIR)


def test_every_public_name_has_a_docstring_with_an_example():
    names = [n for n in sweetspot.__all__ if n != "__version__"]
    assert {"run_study", "export_best", "load_teacher", "Objective", "load_config", "StudyConfig"} <= set(names)
    for name in names:
        doc = getattr(sweetspot, name).__doc__
        assert doc and ">>>" in doc, name


def test_a_study_runs_in_worker_processes_from_python(tmp_path):
    """``workers=2``: the config goes to the workers as a file beside their logs, the study is theirs."""
    config = config_from_dict({**TINY, "name": "two"})
    study = sweetspot.run_study(config, f"sqlite:///{tmp_path / 'two.db'}", n_trials=3, workers=2, progress=False,
                                log_dir=str(tmp_path / "logs"))
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 3
    assert yaml.safe_load((tmp_path / "logs" / "two-config.yaml").read_text()) == config.to_dict()
    from sweetspot.service.study import worker_id

    assert worker_id() not in {t.user_attrs["worker"] for t in study.trials}  # other processes ran them
    assert "sweetspot_reference" in study.user_attrs
