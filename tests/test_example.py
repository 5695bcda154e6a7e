"""examples/own-model: a user's own teacher, student and dataset function, end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

import sweetspot.trusted_imports
from sweetspot.core.datasets import load_imported
from sweetspot.errors import DataError
from tests.conftest import REPO, run_console_script

EXAMPLE = REPO / "examples" / "own-model"


@pytest.fixture
def example(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the example (its modules under their own names), as the working directory, with
    nothing trusted yet and a study short enough for a test."""
    monkeypatch.setattr(sweetspot.trusted_imports, "_trusted_paths", set())
    monkeypatch.setattr(sweetspot.trusted_imports, "_allowed_packages", set())
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "own-model"
    shutil.copytree(EXAMPLE, folder)
    study = yaml.safe_load((folder / "study.yaml").read_text())
    study["search"] = {"batch_size": [64, 512], "epochs": [1, 3]}
    study["student"]["epochs"] = 5
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    monkeypatch.chdir(folder)
    return folder


def test_the_example_runs_exports_and_loads_in_the_users_own_code(cli, example):
    url = "sqlite:///own-model.db"
    path = [p for p in sys.path if p not in ("", ".")]  # as in the `sweetspot` script: no working directory
    code, _, err = cli("run", "study.yaml", "--storage", url, "--trials", "3", "--no-progress")
    assert code == 0, err
    sweetspot.trusted_imports._trusted_paths.clear()  # what `run` vouched for, and put on the import path,
    sys.path[:] = path  # ends with its process: export starts from the working directory alone
    for module in ("my_nets", "my_data"):
        sys.modules.pop(module, None)
    allow = ("--allow-import", "my_nets", "--allow-import", "my_data")
    code, _, err = cli("export", "--storage", url, "--out", "own-teacher.yaml", *allow)
    assert code == 0, err
    code, _, err = cli("teacher", "own-teacher.yaml", "--out", "own-teacher.pt", "--storage", url, *allow)
    assert code == 0, err
    script = (
        "import torch; from sweetspot import load_teacher; "
        "t = load_teacher('own-teacher.yaml', 'own-teacher.pt', allow_imports=['my_nets']); "
        "print(type(t[1][0]).__name__, tuple(t(torch.rand(4, 1, 8, 8)).shape))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=example)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Conv2d", "(4,", "10)"]  # the user's own network, answering 10 classes


def test_the_next_commands_that_run_prints_work_as_printed(example, tmp_path):
    """Issue 20: the `next: sweetspot export ...` line lacked the --allow-import its config's import
    paths need (and the --storage the run was given), and failed as printed. Run from the folder above
    the config's, as from a checkout's root: its modules import only with PYTHONPATH."""
    cwd, config = example.parent, "own-model/study.yaml"
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # not the default: the command must name it
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SWEETSPOT_IMPORTS": ""}

    def printed(line: str, result: subprocess.CompletedProcess) -> str:
        assert result.returncode == 0, result.stderr
        return next(x for x in result.stdout.splitlines() if line in x).partition(line)[2].strip()

    queued = run_console_script("run", config, "--storage", storage, "--trials", "2", "--workers", "0", cwd=cwd,
                                env=env)
    worker = subprocess.run(printed("start workers with: ", queued) + " --no-progress", shell=True, cwd=cwd,
                            env=os.environ | env, capture_output=True, text=True, timeout=600)
    ran = run_console_script("run", config, "--storage", storage, "--trials", "1", "--no-progress", cwd=cwd, env=env)
    export = printed("next: ", ran)
    assert "--allow-import my_data" in export and "--allow-import my_nets" in export and storage in export
    done = subprocess.run(export, shell=True, cwd=cwd, env=os.environ | env, capture_output=True, text=True,
                          timeout=600)
    assert worker.returncode == 0 and "ran 2 trials" in worker.stdout, worker.stderr
    assert done.returncode == 0 and (cwd / "best-teacher.yaml").is_file(), done.stderr


def test_the_example_runs_with_two_workers_on_postgres(example, postgres_url, study_name, tmp_path):
    result = run_console_script(
        "run", "study.yaml", "--storage", postgres_url, "--study", study_name, "--workers", "2", "--trials", "4",
        "--log-dir", tmp_path / "logs", cwd=example,
    )
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name=study_name, storage=postgres_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({t.user_attrs["worker"] for t in trials}) == 2


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("np.zeros((10, 8, 8), np.uint8)", "must return (x, y) or (x_train, y_train, x_test, y_test), optionally "
         "followed by the class names, got a ndarray"),
        ("(np.zeros((10, 8, 8), np.uint8), np.arange(9))", "y must be one label per example (10)"),
        ("(np.zeros((10, 8), np.int32), np.arange(10))", "x must be uint8 or floating point, got int32"),
        ("(np.zeros((10, 8)), np.arange(10) * 1.0)", "y must be integers 0 to C - 1, got float64"),
        ("(np.zeros((10, 8)), np.arange(10) - 1)", "y must be integers 0 to C - 1, got int64 from -1"),
        ("(np.zeros((10, 8)), np.arange(10) * 2)", "classes [1, 3, 5, 7, 9] have no example"),
        ("(np.zeros((4, 8)), np.arange(4), np.zeros((2, 9)), np.arange(2))", "different example shapes"),
        ("(np.full((4, 8), np.nan), np.arange(4))", "has values that are not finite"),
        ("(np.zeros((4, 8)), np.arange(4), 'abcd')", "class names (its last value) must be a list of strings, got str"),
        ("(np.zeros((4, 8)), np.arange(4), [1, 2, 3, 4])", "must be a list of strings, got list"),
        ("(np.zeros((4, 8)), np.arange(4), ['a', 'b', 'c'])", "3 class names for 4 classes (labels 0 to 3)"),
    ],
    ids=["not-a-pair", "labels-short", "int-inputs", "float-labels", "negative-label", "missing-classes",
         "test-shape", "nan", "names-a-string", "names-not-strings", "names-too-few"],
)
def test_a_bad_dataset_function_is_one_line(tmp_path, monkeypatch, request, returned, message):
    name = "bad_data_" + request.node.callspec.id.replace("-", "_")
    (tmp_path / f"{name}.py").write_text(f"import numpy as np\n\n\ndef load():\n    return {returned}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(sweetspot.trusted_imports.IMPORTS_ENV, name)
    with pytest.raises(DataError) as caught:
        load_imported(f"{name}:load")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_class_too_small_to_split_is_one_line(cli, write_config, tmp_path, monkeypatch):
    (tmp_path / "tiny_data.py").write_text(
        "import numpy as np\n\n\ndef load():\n    return np.random.rand(41, 8), np.r_[np.arange(40) % 2, 2]\n"
    )
    config = write_config({"data.name": "tiny_data:load", "distill.withheld_classes": []})
    code, _, err = cli("trial", config, "--batch-size", "32", "--epochs", "1")
    assert code == 2 and "cannot carve a test split from 'tiny_data:load' by class" in err and err.count("\n") == 1


def test_uint8_images_stay_bytes_and_are_standardised_per_batch(example, monkeypatch):
    from sweetspot.config import DataConfig
    from sweetspot.core.splits import load_splits
    from sweetspot.errors import ConfigError

    monkeypatch.syspath_prepend(str(example))
    with pytest.raises(ConfigError, match="is not allowed here"):
        load_imported("my_data:digits_images")  # importable, but nothing vouches for it yet
    sweetspot.trusted_imports.allow(["my_data"])
    raw = load_imported("my_data:digits_images")
    assert raw.x_train.shape == (1797, 1, 8, 8) and raw.x_train.dtype == np.uint8
    assert raw.n_classes == 10 and raw.x_test is None and raw.class_names is None
    splits = load_splits(DataConfig(name="my_data:digits_images"), 0)
    assert splits.x_train.stored.dtype == torch.uint8 and splits.x_train.dtype == torch.float32
    # the per-channel statistics of x / 255 on the training split, and batches standardised with them
    train = torch.from_numpy(raw.x_train.astype(np.float32) / 255.0)[_rows_of(raw.x_train, splits.x_train.stored)]
    assert torch.allclose(splits.input_mean.flatten()[0], train.mean(), atol=1e-6)
    assert torch.allclose(splits.input_std.flatten()[0], train.std(unbiased=False), atol=1e-6)
    assert torch.equal(splits.x_train[:], (train - splits.input_mean) / splits.input_std)
    batch = torch.tensor([[4, 0, 9], [1, 1, 2]])  # S x B, as stacked teachers index it
    assert torch.equal(splits.x_train[batch], splits.x_train[:][batch])
    assert torch.equal(splits.x_train.take(batch[0])[:], splits.x_train[batch[0]])


def _rows_of(x: np.ndarray, held: torch.Tensor) -> torch.Tensor:
    """Where each held example is in ``x`` (the splits shuffle; digits has a few duplicates, any match does)."""
    position = {row.tobytes(): i for i, row in enumerate(x)}
    return torch.tensor([position[row.tobytes()] for row in held.numpy()])


def test_a_dataset_function_names_its_classes(tmp_path, monkeypatch):
    from sweetspot.config import DataConfig
    from sweetspot.core.splits import class_name, load_splits

    (tmp_path / "named_data.py").write_text(
        "import numpy as np\n\n\ndef load():\n"
        "    return np.random.rand(60, 4), np.arange(60) % 3, ['ant', 'bee', 'cow']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sweetspot.trusted_imports.allow(["named_data"])
    assert load_imported("named_data:load").class_names == ("ant", "bee", "cow")
    load_splits(DataConfig(name="named_data:load", test_fraction=0.2, val_fraction=0.2), 0)
    assert [class_name("named_data:load", k) for k in range(3)] == ["ant", "bee", "cow"]


def test_a_worker_with_other_code_or_data_is_refused_and_writes_nothing(cli, example):
    from sweetspot.service.study import PROVENANCE_ATTR

    x, y = _digits()
    np.save("digits_x.npy", x)
    np.save("digits_y.npy", y)
    Path("file_data.py").write_text(
        "import numpy as np\n\n\ndef load():\n    return np.load('digits_x.npy'), np.load('digits_y.npy')\n"
    )
    study_file = yaml.safe_load(Path("study.yaml").read_text())
    study_file["data"]["name"] = "file_data:load"
    Path("study.yaml").write_text(yaml.safe_dump(study_file))
    url = "sqlite:///own-model.db"
    assert cli("run", "study.yaml", "--storage", url, "--trials", "1", "--no-progress")[0] == 0
    recorded = optuna.load_study(study_name="own-model", storage=url).user_attrs[PROVENANCE_ATTR]
    assert set(recorded) == {"data", "my_nets:small_cnn", "my_nets:tiny_student", "file_data:load"}

    Path("my_nets.py").write_text(Path("my_nets.py").read_text() + "\n# edited on one machine only\n")
    sys.modules.pop("my_nets", None)
    code, _, err = cli("run", "study.yaml", "--storage", url, "--trials", "1", "--no-progress")
    assert code == 2 and "was run with other code (my_nets:small_cnn) and code (my_nets:tiny_student)" in err
    assert err.count("\n") == 1

    Path("my_nets.py").write_text(Path("my_nets.py").read_text().replace("\n# edited on one machine only\n", ""))
    sys.modules.pop("my_nets", None)
    x = np.load("digits_x.npy")
    x[0, 0, 0] ^= 1  # one pixel of one image
    np.save("digits_x.npy", x)
    from sweetspot.core.splits import load_splits

    load_splits.cache_clear()
    code, _, err = cli("run", "study.yaml", "--storage", url, "--trials", "1", "--no-progress")
    assert code == 2 and "was run with other data: blake2b:" in err and err.count("\n") == 1
    assert len(optuna.load_study(study_name="own-model", storage=url).trials) == 1  # nothing written


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.round(bunch.images * (255 / 16)).astype(np.uint8), bunch.target
