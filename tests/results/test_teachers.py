import pytest
import torch

from sweetspot.errors import ConfigError
from sweetspot.results.teachers import Standardize, check_figures, pick_teacher

DOC = {
    "config": {"name": "x"},
    "teachers": [
        {
            "trial": 4,
            "best": True,
            "params": {"batch_size": 32, "epochs": 2},
            "recipe": {
                "arch": "mlp",
                "options": {"width": 8},
                "optimizer": "adam",
                "lr": 0.01,
                "batch_size": 32,
                "epochs": 2,
                "seed": 7,
            },
            "metrics": {"teacher_val_acc": 0.9, "teacher_entropy": 0.5},
        },
        {
            "trial": 9,
            "best": False,
            "params": {"batch_size": 64, "epochs": 1, "temperature": 4.0},
            "recipe": {
                "arch": "mlp",
                "options": {},
                "optimizer": "adam",
                "lr": 0.001,
                "batch_size": 64,
                "epochs": 1,
                "seed": 3,
            },
            "metrics": {"teacher_val_acc": 0.8, "teacher_entropy": 0.7},
        },
    ],
}


def test_pick_teacher_takes_the_best_or_the_named_trial():
    best = pick_teacher(DOC)
    # T: the trial's searched one, else its config's (distill.temperature, 9 by default)
    assert (best.trial, best.net.options, best.net.lr, best.seed, best.temperature) == (4, {"width": 8}, 0.01, 7, 9.0)
    assert best.config.name == "x"
    assert pick_teacher(DOC, 9).temperature == 4.0
    with pytest.raises(ConfigError, match=r"^trial 5 is not in this export \(its teachers: trials 4, 9\)$"):
        pick_teacher(DOC, 5)


def test_net_from_recipe_keeps_netconfig_defaults_for_keys_an_export_lacks():
    from sweetspot.config import NetConfig
    from sweetspot.results.teachers import net_from_recipe

    recipe = DOC["teachers"][0]["recipe"]
    assert net_from_recipe(recipe) == NetConfig("mlp", {"width": 8}, "adam", 0.01)
    full = {**recipe, "schedule": "exponential", "lr_decay": 0.5, "precision": "bfloat16"}
    assert net_from_recipe(full) == NetConfig("mlp", {"width": 8}, "adam", 0.01, "exponential", 0.5, "bfloat16")


def test_check_figures_accepts_the_tolerance_and_names_what_differs():
    check_figures({"teacher_val_acc": 0.9004, "teacher_entropy": 0.5}, DOC["teachers"][0]["metrics"], 4)
    with pytest.raises(ConfigError, match=r"teacher_entropy 0.5100 \(export: 0.5000\)"):
        check_figures({"teacher_val_acc": 0.9, "teacher_entropy": 0.51}, DOC["teachers"][0]["metrics"], 4)


def test_standardize_is_part_of_the_state_dict():
    layer = Standardize(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
    assert torch.equal(layer(torch.tensor([[3.0, 6.0]])), torch.tensor([[1.0, 1.0]]))
    assert set(layer.state_dict()) == {"mean", "std"}


def test_teacher_command_retrains_or_fetches_the_same_weights(cli, tiny_config_file, storage_url, tmp_path):
    import yaml

    from sweetspot import load_teacher
    from sweetspot.core.metrics import accuracy
    from sweetspot.core.splits import load_splits

    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "3", "--no-progress")[0] == 0
    assert cli("export", "--storage", storage_url, "--out", tmp_path / "best.yaml")[0] == 0
    code, out, err = cli("teacher", tmp_path / "best.yaml", "--out", tmp_path / "retrained.pt")
    assert code == 0, err
    assert "retrained from its recipe" in out
    code, out, err = cli("teacher", tmp_path / "best.yaml", "--storage", storage_url, "--out", tmp_path / "fetched.pt")
    assert code == 0, err
    assert "fetched from the artifact store" in out
    retrained = torch.load(tmp_path / "retrained.pt", weights_only=True)
    fetched = torch.load(tmp_path / "fetched.pt", weights_only=True)
    assert retrained.keys() == fetched.keys() and all(torch.equal(retrained[k], fetched[k]) for k in retrained)
    # the written teacher takes raw inputs and scores what the export recorded
    document = yaml.safe_load((tmp_path / "best.yaml").read_text())
    splits = load_splits(pick_teacher(document).config.data, 0)
    teacher = load_teacher(tmp_path / "best.yaml", tmp_path / "fetched.pt")
    raw = splits.x_val[:] * splits.input_std + splits.input_mean
    with torch.no_grad():
        assert abs(accuracy(teacher(raw), splits.y_val) - document["teachers"][0]["metrics"]["teacher_val_acc"]) < 1e-6


def test_teacher_command_refuses_a_teacher_that_does_not_reproduce(cli, tiny_config_file, storage_url, tmp_path):
    import yaml

    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    assert cli("export", "--storage", storage_url, "--out", tmp_path / "best.yaml")[0] == 0
    document = yaml.safe_load((tmp_path / "best.yaml").read_text())
    document["teachers"][0]["metrics"]["teacher_entropy"] -= 0.1
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(document))
    code, _, err = cli("teacher", tmp_path / "edited.yaml", "--out", tmp_path / "t.pt")
    assert code == 2 and "does not reproduce the export" in err and err.count("\n") == 1
    assert not (tmp_path / "t.pt").exists() and not list(tmp_path.glob(".t.pt*"))
    code, _, err = cli("teacher", tmp_path / "missing.yaml")
    assert code == 2 and "cannot read" in err
    code, _, err = cli("teacher", tmp_path / "best.yaml", "--trial", "99")
    assert code == 2 and "trial 99 is not in this export" in err
