"""The user's own networks by import path or torchvision name, and who may name an import path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import sweetspot.trusted_imports
from sweetspot.config import NetConfig, config_from_dict, load_config
from sweetspot.core.models import check_net, check_outputs
from sweetspot.errors import ConfigError
from sweetspot.experiments import parse_teacher
from tests.conftest import REPO, TINY

NETS = """
import pathlib
from torch import nn

pathlib.Path(__file__).with_suffix(".imported").touch()  # shows whether the module was ever imported


def small_cnn(input_shape, n_classes, width=8):
    c, h, w = input_shape
    conv = nn.Conv2d(c, width, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(width * h * w, n_classes))


def flat(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], n_classes))


def wrong_width(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes + 1))


def not_a_module(input_shape, n_classes):
    return "a string"


def broken(input_shape, n_classes):
    return nn.Sequential(nn.Linear(3, n_classes))


NOT_CALLABLE = 3
"""


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch):
    """Each test starts with nothing trusted, nothing allowed, and its own sys.path."""
    monkeypatch.setattr(sweetspot.trusted_imports, "_trusted_paths", set())
    monkeypatch.setattr(sweetspot.trusted_imports, "_allowed_packages", set())
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv(sweetspot.trusted_imports.IMPORTS_ENV, raising=False)


def _module(tmp_path: Path, request) -> tuple[str, Path]:
    """The NETS module under a name of its own (modules stay cached in sys.modules between tests)."""
    name = "nets_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(NETS)
    return name, folder


def _config(folder: Path, teacher: str, student: str = "linear", **teacher_options) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["teacher"] = {"arch": teacher, **teacher_options}
    data["student"] = {"arch": student, "epochs": 2}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_module_beside_the_config_imports_without_pythonpath(cli, tmp_path, monkeypatch, request):
    name, folder = _module(tmp_path, request)
    config = _config(folder, f"{name}:small_cnn", f"{name}:flat", width=4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("trial", config, "--batch-size", "64", "--epochs", "1", "--format", "json")
    assert code == 0, err
    assert '"student_val_acc"' in out and (folder / f"{name}.imported").exists()


def test_an_import_path_from_a_database_is_refused_unless_its_package_is_allowed(tmp_path, monkeypatch, request):
    name, folder = _module(tmp_path, request)
    monkeypatch.syspath_prepend(str(folder))
    stored = config_from_dict(TINY | {"teacher": {"arch": f"{name}:small_cnn"}})  # as export reads a study's config
    with pytest.raises(ConfigError, match=rf"teacher.arch: import path '{name}:small_cnn' is not allowed here"):
        check_net("teacher", stored.teacher)
    assert not (folder / f"{name}.imported").exists()  # refused before anything ran
    monkeypatch.setenv(sweetspot.trusted_imports.IMPORTS_ENV, f"other, {name}")
    check_net("teacher", stored.teacher)
    assert (folder / f"{name}.imported").exists()


def test_a_config_file_vouches_only_for_its_own_import_paths(tmp_path, request):
    name, folder = _module(tmp_path, request)
    load_config(_config(folder, f"{name}:small_cnn"))
    check_net("teacher", NetConfig(arch=f"{name}:small_cnn"))
    with pytest.raises(ConfigError, match="is not allowed here"):
        check_net("student", NetConfig(arch=f"{name}:flat"))  # same module, another callable: not in the file


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("missing_module_xyz:net", {}, "cannot import 'missing_module_xyz'"),
        ("{name}:absent", {}, "has no attribute 'absent'"),
        ("{name}:NOT_CALLABLE", {}, "is a int, not a callable"),
        ("{name}:small_cnn", {"depth": 3}, "unknown key 'depth'"),
        ("{name}:wrong_width", {}, "answers (2, 11) for 2 inputs; it must return logits of shape (2, 10)"),
        ("{name}:not_a_module", {}, "returned a str, not an nn.Module"),
        ("{name}:broken", {}, "fails on inputs of shape (1, 8, 8) with 10 classes: RuntimeError"),
        ("torchvision:resnet_nope", {}, "torchvision has no classification model 'resnet_nope'"),
        ("nope", {}, "unknown architecture 'nope'"),
    ],
)
def test_a_bad_architecture_is_one_line(cli, tmp_path, request, arch, options, message):
    name, folder = _module(tmp_path, request)
    config = _config(folder, arch.format(name=name), **options)
    code, _, err = cli("trial", config, "--batch-size", "64", "--epochs", "1")
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_torchvision_resnet18_takes_one_channel_and_small_images(shape):
    net = NetConfig(arch="torchvision:resnet18")
    check_net("teacher", net)
    check_outputs("teacher", net, torch.rand(2, *shape), 10)  # (2, 10) logits, or it raises


def test_experiment_teachers_take_import_paths_and_torchvision_names(tmp_path, monkeypatch, request):
    name, folder = _module(tmp_path, request)
    monkeypatch.chdir(folder)
    assert parse_teacher(f"mine={name}:small_cnn:64:2").arch == f"{name}:small_cnn"
    assert parse_teacher("torchvision:resnet18:128:5").arch == "torchvision:resnet18"
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        parse_teacher(f"{name}:nope:64:2")


def test_an_imported_teacher_exports_and_loads_in_a_fresh_process(cli, tmp_path, monkeypatch, request):
    name, folder = _module(tmp_path, request)
    config = _config(folder, f"{name}:small_cnn", width=4)
    url = f"sqlite:///{tmp_path / 'own.db'}"
    path = [p for p in sys.path if p not in ("", ".")]  # as in the `sweetspot` script: no working directory
    assert cli("run", config, "--storage", url, "--trials", "2", "--no-progress")[0] == 0
    sweetspot.trusted_imports._trusted_paths.clear()  # what `run` vouched for, and put on the import path,
    sys.path[:] = path  # ends with its process
    sys.modules.pop(name, None)
    monkeypatch.chdir(folder)  # export, without a config, finds the module in the working directory
    out = tmp_path / "best.yaml"
    code, _, err = cli("export", "--storage", url, "--out", out)  # the stored config vouches for nothing
    assert code == 2 and "is not allowed here" in err and f"--allow-import {name}" in err
    assert cli("export", "--storage", url, "--out", out, "--allow-import", name)[0] == 0
    assert yaml.safe_load(out.read_text())["teachers"][0]["recipe"]["arch"] == f"{name}:small_cnn"
    code, _, err = cli("teacher", out, "--out", tmp_path / "t.pt", "--storage", url, "--allow-import", name)
    assert code == 0, err
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(folder)!r})
        from sweetspot import load_teacher
        teacher = load_teacher({str(out)!r}, {str(tmp_path / 't.pt')!r}, allow_imports=[{name!r}])
        print(tuple(teacher(torch.rand(5, 1, 8, 8)).shape))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(5, 10)"
