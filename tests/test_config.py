from pathlib import Path

import pytest

from sweetspot.config import StudyConfig, batch_size_choices, config_diff, config_from_dict, load_config
from sweetspot.core.seeds import derive_seed
from sweetspot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_load_config_digits_yaml_is_the_builtin_default():
    # `sweetspot run` without a config must run exactly what studies/digits.yaml spells out
    assert load_config(REPO / "studies" / "digits.yaml") == StudyConfig()
    assert load_config(None) == StudyConfig()


def test_default_config_matches_the_issue():
    c = StudyConfig()
    assert c.data.name == "digits"
    assert c.teacher.arch == "mlp" and c.teacher.options == {"width": 512, "depth": 6}
    assert c.student.arch == "linear"
    assert c.distill.temperature == 9 and c.distill.alpha == 0.99
    assert batch_size_choices(c.search.batch_size) == [16, 32, 64, 128, 256, 512, 1024]
    assert c.search.epochs == (1, 100)
    # chosen by the noise table (docs/concepts/noise.md): the Table 5 mean first, then the paper's own target
    assert list(c.objectives.items()) == [("student_val_acc", "maximize"), ("missing_class_recall", "maximize")]
    assert c.distill.missing_classes == "all" and c.distill.withheld_classes == () and c.distill.loss == "hinton"


def test_missing_classes_and_loss_are_checked_in_one_line():
    good = config_from_dict({"distill": {"missing_classes": [1, 2], "loss": "paper"}})
    assert good.distill.missing_classes == (1, 2) and good.distill.loss == "paper"
    for raw, message in [
        ({"distill": {"missing_classes": "some"}}, "must be all or a list of classes, got 'some'"),
        ({"distill": {"missing_classes": [1, 1]}}, "has duplicates"),
        ({"distill": {"missing_classes": [3], "withheld_classes": [3]}}, "[3] are withheld from every student"),
        ({"distill": {"loss": "hintn"}}, "(did you mean 'hinton'?) (allowed: hinton, paper)"),
        ({"distill": {"missing_classes": []}}, "uses missing_class_recall, which needs distill.missing_classes"),
        ({"student": {"seed": "x"}}, "student.seed must be an integer"),
    ]:
        with pytest.raises(ConfigError) as caught:
            config_from_dict(raw)
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_config_stored_form_round_trips():
    c = StudyConfig()
    assert config_from_dict(c.to_dict()) == c


def test_config_fingerprint_ignores_only_run_length_and_file_location():
    a = config_from_dict({"n_trials": 3})
    b = config_from_dict({"n_trials": 50, "data": {"data_dir": "/elsewhere", "download": True}})
    assert a.fingerprint() == b.fingerprint()
    assert config_from_dict({"seed": 1}).fingerprint() != a.fingerprint()


def test_config_diff_names_dotted_keys():
    a = StudyConfig().to_dict()
    b = config_from_dict({"distill": {"temperature": 4}}).to_dict()
    assert config_diff(a, b) == ["distill.temperature: 9.0 -> 4.0"]


def test_load_config_reads_architecture_options(write_config):
    c = load_config(write_config({"teacher.dropout": 0.1}))
    assert c.teacher.options == {"width": 32, "depth": 2, "dropout": 0.1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tempreature": 9}, "unknown key 'tempreature'"),
        ({"distill.temprature": 9}, "unknown key 'distill.temprature' (did you mean 'temperature'?)"),
        ({"distill.alpha": 1.5}, "distill.alpha must be within [0, 1], got 1.5"),
        ({"distill.alpha": -0.1}, "distill.alpha must be within [0, 1]"),
        ({"distill.temperature": 0}, "distill.temperature must be > 0"),
        ({"distill.temperature": -2}, "distill.temperature must be > 0"),
        ({"distill.withheld_classes": [3, 3]}, "has duplicates"),
        ({"distill.labels_per_class": 0}, "distill.labels_per_class must be >= 1 or null, got 0"),
        ({"distill.transfer": "held-out"}, "distill.transfer: unknown value 'held-out' (did you mean 'heldout'?) "
                                           "(allowed: train, heldout)"),
        ({"distill.heldout_fraction": 1.0}, "distill.heldout_fraction must be between 0 and 1 (exclusive), got 1.0"),
        ({"search.epochs": [0, 10]}, "search.epochs must be positive"),
        ({"search.epochs": [10, 2]}, "low <= high"),
        ({"search.batch_size": [0, 64]}, "search.batch_size must be positive"),
        ({"search.batch_size": [-8, 64]}, "search.batch_size must be positive"),
        ({"search.batch_size": [33, 63]}, "contains no power of two"),
        ({"search.batch_size": 64}, "search.batch_size must be a list"),
        ({"search.epochs": [1, 2, 3]}, "list of 2 values"),
        ({"student.epochs": 0}, "student.epochs must be >= 1"),
        ({"student.lr": 0}, "student.lr must be a positive number"),
        ({"teacher.optimizer": "adamm"}, "unknown value 'adamm' (did you mean 'adam'?)"),
        ({"objectives": {"student_acc": "maximize"}}, "did you mean 'student_val_acc'?"),
        ({"objectives": {"teacher_entropy": "max"}}, "allowed: maximize, minimize"),
        ({"sampler": "cmaes"}, "sampler: unknown value 'cmaes'"),
        ({"n_trials": "many"}, "n_trials must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"data.val_fraction": 1.2}, "data.val_fraction must be between 0 and 1"),
        ({"distill": "hot"}, "distill must be a mapping"),
        (
            {"distill.withheld_classes": [], "objectives": {"student_withheld_acc": "maximize"}},
            "needs distill.withheld_classes",
        ),
    ],
)
def test_load_config_rejects_bad_values_with_one_line(write_config, changes, message):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(changes))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_config_rejects_invalid_yaml_with_its_position(write_config):
    with pytest.raises(ConfigError, match=r"invalid YAML at line 3"):
        load_config(write_config(raw="name: x\nseed: [1, 2\n"))


def test_load_config_rejects_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_rejects_a_non_mapping(write_config):
    with pytest.raises(ConfigError, match="must be a mapping, got list"):
        load_config(write_config(raw="- 1\n- 2\n"))


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    seeds = {derive_seed(0, i) for i in range(100)}
    assert len(seeds) == 100
    assert derive_seed(0, 1) != derive_seed(1, 1)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "cifar10"])
def test_dataset_study_configs_load_and_name_the_papers_networks(name):
    from sweetspot.core.models import check_net

    config = load_config(REPO / "studies" / f"{name}.yaml")
    assert config.data.name == name and config.teacher.arch == f"paper-{name}-large" and config.student.arch == "linear"
    assert config.search.batch_size == (32, 8192) and config.search.epochs == (1, 50)
    check_net("teacher", config.teacher)


def test_augmentation_is_for_the_teacher_and_for_images(write_config, cli, tmp_path, monkeypatch):
    code, _, err = cli("trial", write_config({"student.augment": "flip-crop"}), "--batch-size", "8", "--epochs", "1")
    assert code == 2 and "student.augment only the teacher trains on augmented images" in err
    code, _, err = cli("trial", write_config({"teacher.augment": "mirror"}), "--batch-size", "8", "--epochs", "1")
    assert code == 2 and "teacher.augment" in err and "flip-crop" in err and err.count("\n") == 1
    (tmp_path / "flat_data.py").write_text(
        "import numpy as np\n\n\ndef load():\n    return np.random.rand(200, 5), np.arange(200) % 4\n"
    )
    monkeypatch.setenv("SWEETSPOT_IMPORTS", "flat_data")
    monkeypatch.syspath_prepend(str(tmp_path))
    changes = {"teacher.augment": "flip-crop", "data.name": "flat_data:load", "distill.withheld_classes": []}
    config = write_config(changes)
    code, _, err = cli("trial", config, "--batch-size", "8", "--epochs", "1")
    assert code == 2 and "teacher.augment: flip-crop needs images (C, H, W)" in err and err.count("\n") == 1


def _literal_fields():
    """Every (dotted key, allowed values) of the schema whose type is a Literal."""
    import dataclasses
    import typing

    from sweetspot.config import schema

    sections = {"": schema.StudyConfig, "teacher.": schema.NetConfig, "student.": schema.StudentConfig,
                "distill.": schema.DistillConfig, "early_stop.": schema.EarlyStopConfig}
    for prefix, cls in sections.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if typing.get_origin(hints[f.name]) is typing.Literal:
                yield prefix + f.name, typing.get_args(hints[f.name])


@pytest.mark.parametrize("key, allowed", list(_literal_fields()))
def test_every_choice_is_declared_once_and_refused_with_what_it_allows(key, allowed):
    raw: dict = {}
    *parents, last = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = "qqqqqq"  # close to no choice: no did-you-mean
    with pytest.raises(ConfigError) as refused:
        config_from_dict(raw, source="f.yaml")
    assert str(refused.value) == f"f.yaml: {key}: unknown value 'qqqqqq' (allowed: {', '.join(allowed)})"


def test_the_cli_offers_the_schemas_choices():
    import typing

    from sweetspot.cli import build_parser
    from sweetspot.config.schema import KdLoss

    loss = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions if a.dest == "loss")
    assert tuple(loss.choices) == typing.get_args(KdLoss)


def test_the_schemas_docstring_examples_hold():
    import doctest

    from sweetspot.config import schema

    result = doctest.testmod(schema)
    assert result.attempted >= 4 and result.failed == 0
