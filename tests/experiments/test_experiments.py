import csv
import math

import pytest
import torch
import yaml

from sweetspot.cli import EXPERIMENT_NAMES
from sweetspot.config import NetConfig
from sweetspot.core.training import label_smoothing_targets
from sweetspot.core.trial import teacher_seeds
from sweetspot.errors import ConfigError
from sweetspot.experiments import EXPERIMENTS, TeacherSpec, parse_teacher, teacher_from_export
from sweetspot.experiments.examples_per_class import enough
from sweetspot.experiments.kd_vs_ls import SIDE_MARGIN, side, smoothing_logits
from sweetspot.experiments.missing_class import TEMPERATURES as MISSING_TS
from sweetspot.experiments.penultimate import cluster_shape, project
from sweetspot.experiments.temperature import TEMPERATURES, around

TEACHERS = ("--teacher", "short=256:1", "--teacher", "long=32:8")


def rows_of(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def test_the_cli_names_every_experiment():
    assert EXPERIMENT_NAMES == tuple(EXPERIMENTS)


def test_parse_teacher_forms_and_errors():
    assert parse_teacher("64:10") == TeacherSpec("64:10", None, 64, 10)
    assert parse_teacher("large=mlp:16:100") == TeacherSpec("large", "mlp", 16, 100)
    assert parse_teacher("small=mlp-small:512:6").arch == "mlp-small"
    for bad, message in [
        ("64", "BATCH:EPOCHS"),
        ("a:b", "BATCH:EPOCHS"),
        ("0:3", "positive"),
        ("resnet:8:2", "unknown architecture"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_teacher(bad)


def test_around_scales_and_clips_without_repeats():
    assert around(64, (0.25, 0.5, 1, 2, 4), 1, 200) == [16, 32, 64, 128, 200]
    assert around(1, (0.25, 0.5, 1), 1, 10) == [1]


def test_teacher_from_export_takes_the_best_recipe_whole():
    recipe = {
        "dataset": "digits",
        "arch": "mlp",
        "options": {"width": 32, "depth": 2},
        "optimizer": "adamw",
        "lr": 0.003,
        "batch_size": 32,
        "epochs": 3,
        "seed": 9,
    }
    doc = {"teachers": [{"best": False, "trial": 1, "recipe": {}}, {"best": True, "trial": 4, "recipe": recipe}]}
    spec = teacher_from_export(doc, "digits")
    assert spec == TeacherSpec(
        "calibrated (trial 4)", "mlp", 32, 3, 9, NetConfig("mlp", {"width": 32, "depth": 2}, "adamw", 0.003)
    )
    with pytest.raises(ConfigError, match="calibrated on 'digits'"):
        teacher_from_export(doc, "fashion-mnist")


def test_projection_puts_the_templates_on_an_orthonormal_plane():
    generator = torch.Generator().manual_seed(1)
    templates = torch.randn(3, 16, generator=generator)
    corners = project(templates, templates)
    assert torch.allclose(corners[0], torch.zeros(2), atol=1e-5)
    assert corners[1, 1].abs() < 1e-5 and math.isclose(
        float(corners[1, 0]), float((templates[1] - templates[0]).norm()), rel_tol=1e-5
    )
    # distances between the templates are kept: they lie in the plane
    assert torch.allclose(torch.pdist(corners), torch.pdist(templates), rtol=1e-4)


def test_cluster_shape_measures_width_across_and_elongation():
    generator = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]).repeat_interleave(200, dim=0)
    labels = torch.arange(3).repeat_interleave(200)
    noise = torch.randn(600, 2, generator=generator)
    tight_width, round_shape = cluster_shape(centres + 0.1 * noise, labels)
    loose_width, _ = cluster_shape(centres + 2 * noise, labels)
    assert tight_width < 0.02 < loose_width and 1 <= round_shape < 1.3
    stretched_width, stretched = cluster_shape(
        centres + noise * torch.tensor([3.0, 0.1]), labels
    )  # long along x, thin across
    assert stretched > 10 and stretched_width < 0.02


def test_smoothing_logits_give_the_label_smoothing_targets_at_temperature():
    labels = torch.tensor([0, 3, 1])
    logits = smoothing_logits(labels, 4, 0.6, 9.0)
    assert torch.allclose(torch.softmax(logits / 9.0, dim=1), label_smoothing_targets(labels, 4, 0.6), atol=1e-6)
    assert torch.isfinite(smoothing_logits(labels, 4, 0.0, 3.0)).all()  # gamma 0 stays finite


def test_enough_is_the_smallest_count_within_a_point_of_the_full_set():
    rows = [{"examples_per_class": n, "student_acc": a} for n, a in [(5, 0.5), (10, 0.795), (20, 0.81), ("all", 0.80)]]
    assert enough(rows) == 10


def test_entropy_vs_temperature_writes_csv_markdown_and_png(cli, tiny_config_file, storage_url, tmp_path):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    assert cli("export", "--storage", storage_url, "--out", tmp_path / "best.yaml")[0] == 0
    out = tmp_path / "results"
    code, stdout, err = cli(
        "experiment", "entropy-vs-temperature", tiny_config_file, *TEACHERS, "--export", tmp_path / "best.yaml",
        "--out", out, "--no-progress",
    )
    assert code == 0, err
    assert "entropy-vs-temperature.csv" in stdout
    rows = rows_of(out / "entropy-vs-temperature.csv")
    teachers = [r for r in rows if r["group"] == "teachers"]
    names = [r["teacher"] for r in teachers[:: len(TEMPERATURES)]]
    assert names[0].startswith("calibrated (trial") and names[1:] == ["short", "long"]  # the export's teacher first
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())["teachers"][0]["recipe"]
    assert {int(r["batch_size"]) for r in rows if r["group"] == "epochs"} == {best["batch_size"]}  # its curves
    for name in {r["teacher"] for r in rows}:
        curve = [float(r["entropy"]) for r in rows if r["teacher"] == name]
        assert curve == sorted(curve)  # softer with temperature
    assert {r["group"] for r in rows} == {"teachers", "batch size", "epochs"}
    assert "| short |" in (out / "entropy-vs-temperature.md").read_text()
    assert (out / "entropy-vs-temperature.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # seeds are fixed: a second run writes the same figures
    cli(
        "experiment", "entropy-vs-temperature", tiny_config_file, *TEACHERS, "--export", tmp_path / "best.yaml",
        "--out", tmp_path / "again", "--no-progress",
    )
    assert (tmp_path / "again" / "entropy-vs-temperature.csv").read_text() == (
        out / "entropy-vs-temperature.csv"
    ).read_text()


def test_missing_class_reports_raw_and_bias_corrected_accuracy(cli, tiny_config_file, tmp_path):
    args = ("experiment", "missing-class", tiny_config_file, *TEACHERS, "--classes", "3,7", "--no-progress")
    code, stdout, err = cli(*args, "--out", tmp_path / "a")
    assert code == 0, err
    assert "missing-class.csv" in stdout
    rows = rows_of(tmp_path / "a" / "missing-class.csv")
    assert len(rows) == 2 * 2 * len(MISSING_TS) and {r["loss"] for r in rows} == {"hinton"}
    assert {(r["teacher"], r["class"]) for r in rows} == {(t, k) for t in ("short", "long") for k in ("3", "7")}
    for r in rows:
        # a raised bias only adds predictions of the missing class (never fewer correct), a lowered one removes them
        raised = float(r["bias_shift"]) > 0
        assert (float(r["corrected_acc_on_class"]) >= float(r["student_acc_on_class"])) or not raised
        assert (float(r["corrected_acc_on_class"]) <= float(r["student_acc_on_class"])) or raised
    assert any(float(r["bias_shift"]) > 0 for r in rows)
    markdown = (tmp_path / "a" / "missing-class.md").read_text()
    assert "### short" in markdown and "| **mean** |" in markdown and "T=20" in markdown
    assert (tmp_path / "a" / "missing-class.png").stat().st_size > 1000
    assert cli(*args, "--out", tmp_path / "b")[0] == 0
    assert (tmp_path / "b" / "missing-class.csv").read_text() == (tmp_path / "a" / "missing-class.csv").read_text()

    # --temperatures: those columns only, each the same students as in the full run
    code, _, err = cli(*args, "--temperatures", "20,9", "--out", tmp_path / "c")
    assert code == 0, err
    chosen = rows_of(tmp_path / "c" / "missing-class.csv")
    assert [r["temperature"] for r in chosen[:4]] == ["20", "20", "9", "9"]
    assert sorted(chosen, key=str) == sorted((r for r in rows if r["temperature"] in ("9", "20")), key=str)
    header = next(line for line in (tmp_path / "c" / "missing-class.md").read_text().splitlines() if "| T=" in line)
    assert header == "| missing class | T=20 | T=9 |"


def test_examples_per_class_ends_with_the_full_transfer_set(cli, tiny_config_file, tmp_path):
    code, _, err = cli(
        "experiment", "examples-per-class", tiny_config_file, *TEACHERS, "--withheld", "none", "--out", tmp_path,
        "--no-progress",
    )
    assert code == 0, err
    rows = rows_of(tmp_path / "examples-per-class.csv")
    for teacher in ("short", "long"):
        mine = [r for r in rows if r["teacher"] == teacher]
        assert [r["examples_per_class"] for r in mine] == [
            "5",
            "10",
            "20",
            "50",
            "100",
            "all",
        ]  # digits: ~110 per class
        assert [int(r["transfer_examples"]) for r in mine[:5]] == [50, 100, 200, 500, 1000]
        assert int(mine[-1]["transfer_examples"]) > 1000
    assert "| enough |" in (tmp_path / "examples-per-class.md").read_text()


def test_penultimate_projects_three_classes_per_teacher(cli, tiny_config_file, tmp_path):
    code, _, err = cli(
        "experiment", "penultimate", tiny_config_file, *TEACHERS, "--classes", "3,5,8", "--out", tmp_path,
        "--no-progress",
    )
    assert code == 0, err
    rows = rows_of(tmp_path / "penultimate.csv")
    assert {r["class"] for r in rows} == {"3", "5", "8"}
    assert len([r for r in rows if r["teacher"] == "short"]) == len([r for r in rows if r["teacher"] == "long"]) > 90
    assert "| short |" in (tmp_path / "penultimate.md").read_text()
    code, _, err = cli("experiment", "penultimate", tiny_config_file, *TEACHERS, "--classes", "3,5", "--out", tmp_path)
    assert code == 2 and "three different classes" in err


def test_kd_vs_ls_places_each_teacher_on_a_side(cli, tiny_config_file, tmp_path):
    code, _, err = cli("experiment", "kd-vs-ls", tiny_config_file, *TEACHERS, "--out", tmp_path, "--no-progress")
    assert code == 0, err
    rows = rows_of(tmp_path / "kd-vs-ls.csv")
    assert [r["teacher"] for r in rows] == ["short", "long"]
    for r in rows:
        assert 0 < float(r["gamma"]) <= 1
        assert math.isclose(
            float(r["withheld_gap"]), float(r["kd_withheld_acc"]) - float(r["ls_withheld_acc"]), abs_tol=1e-5
        )
        # the side is decided on the classes both students saw, never on the withheld one
        assert math.isclose(float(r["gap"]), float(r["kd_seen_acc"]) - float(r["ls_seen_acc"]), abs_tol=1e-5)
        assert r["side"] == ("KD" if float(r["gap"]) > SIDE_MARGIN else "LS")


def test_teacher_seeds_make_the_tables_means_and_sds_over_the_seeds(cli, tiny_config_file, tmp_path):
    code, _, err = cli(
        "experiment", "missing-class", tiny_config_file, *TEACHERS, "--classes", "3,7", "--teacher-seeds", "2",
        "--loss", "paper", "--out", tmp_path, "--no-progress",
    )
    assert code == 0, err
    rows = rows_of(tmp_path / "missing-class.csv")
    assert len(rows) == 2 * 2 * 2 * len(MISSING_TS) and {r["loss"] for r in rows} == {"paper"}
    for teacher in ("short", "long"):
        mine = [r for r in rows if r["teacher"] == teacher]
        # the spec's own seed first, then the seeds `export --confirm` would give the same teacher
        assert list(dict.fromkeys(int(r["teacher_seed"]) for r in mine)) == teacher_seeds(0, 2)
        first, second = ([float(r["teacher_entropy"]) for r in mine if int(r["teacher_seed"]) == s]
                         for s in teacher_seeds(0, 2))
        assert first != second  # two different teachers, not one counted twice
    # the mean row: per seed the mean over the missing classes, then mean ± sd over the seeds
    at_9 = [r for r in rows if r["teacher"] == "short" and r["temperature"] == "9"]
    per_seed = [sum(float(r["student_acc_on_class"]) for r in at_9 if r["teacher_seed"] == str(s)) / 2
                for s in teacher_seeds(0, 2)]
    mean, sd = sum(per_seed) / 2, abs(per_seed[0] - per_seed[1]) / math.sqrt(2)
    markdown = (tmp_path / "missing-class.md").read_text()
    short = markdown.split("### short")[1].split("###")[0]
    mean_row = next(line for line in short.splitlines() if line.startswith("| **mean**"))
    assert mean_row.split(" | ")[1 + MISSING_TS.index(9)] == f"**{100 * mean:.1f} ± {100 * sd:.1f}**"
    assert "mean ± sd over 2 teacher seeds" in markdown


def test_a_checkpoint_folder_keeps_the_teachers_for_the_next_experiment(cli, tiny_config_file, tmp_path):
    args = ("experiment", "kd-vs-ls", tiny_config_file, *TEACHERS, "--no-progress")
    assert cli(*args, "--out", tmp_path / "fresh")[0] == 0
    assert cli(*args, "--out", tmp_path / "kept", "--checkpoints", tmp_path / "ckpt")[0] == 0
    # keeping the teachers changes no figure
    assert (tmp_path / "kept" / "kd-vs-ls.csv").read_text() == (tmp_path / "fresh" / "kd-vs-ls.csv").read_text()
    stored = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert len(stored) == 2  # one per teacher, at its last epoch
    for path in stored:  # zero the stored teachers: a run that reads them sees uniform soft labels
        state = torch.load(path, weights_only=True)
        state["model"] = {k: torch.zeros_like(v) for k, v in state["model"].items()}
        torch.save(state, path)
    assert cli(*args, "--out", tmp_path / "reused", "--checkpoints", tmp_path / "ckpt")[0] == 0
    rows = rows_of(tmp_path / "reused" / "kd-vs-ls.csv")
    assert [float(r["teacher_entropy"]) for r in rows] == [1.0, 1.0]  # read back, not trained again
    assert [float(r["gamma"]) for r in rows] == pytest.approx([1.0, 1.0])  # all of the mass off the target


def test_the_side_needs_a_mean_gap_above_the_margin_and_above_twice_its_sd():
    assert side([0.05]) == "KD" and side([0.0]) == "LS" and side([SIDE_MARGIN]) == "LS"
    assert side([0.05, 0.06, 0.04]) == "KD"
    assert side([0.09, -0.03, 0.10]) == "unclear"  # mean 0.053, sd 0.072: within the noise
    assert side([0.02, -0.03, 0.02]) == "LS"


def test_experiment_input_errors_are_one_line(cli, tiny_config_file, tmp_path):
    code, _, err = cli("experiment", "entropy-vs-temperature")
    assert code == 2 and "name at least one teacher" in err
    (tmp_path / "bad.yaml").write_text("teachers: 3\n")
    code, _, err = cli("experiment", "entropy-vs-temperature", "--export", tmp_path / "bad.yaml")
    assert code == 2 and "--export: " in err and "is not a `sweetspot export` file" in err and err.count("\n") == 1
    for args, message in [
        (("kd-vs-ls", "--teacher", "1:x"), "--teacher: '1:x' is not [LABEL=][ARCH:]BATCH:EPOCHS"),
        (
            ("penultimate", "--teacher", "1:1", "--classes", "1,1,2"),
            "--classes: penultimate needs three different classes",
        ),
        (("kd-vs-ls", "--teacher", "1:1", "--classes", "1"), "only missing-class and penultimate"),
        (("kd-vs-ls", "--teacher", "1:1", "--temperatures", "9"), "--temperatures: only missing-class takes it"),
        (("missing-class", "--teacher", "1:1", "--temperatures", "9,0"), "must be positive temperatures"),
        (("missing-class", "--teacher", "1:1", "--temperatures", "x"), "must be positive temperatures"),
        (("missing-class", "--teacher", "1:1", "--temperatures", "inf"), "must be positive temperatures"),
        (("missing-class", "--teacher", "a=1:1", "--teacher", "a=2:1"), "same label"),
        (("missing-class", "--teacher", "1:1", "--classes", "3,12"), "classes 0 to 9"),
        (("missing-class", "--teacher", "1:1", "--classes", "none"), "classes 0 to 9"),
        (("kd-vs-ls", "--teacher", "1:1", "--withheld", "10"), "not in the dataset"),
        (("kd-vs-ls", "--teacher", "1:1", "--teacher-seeds", "0"), "--teacher-seeds"),
        (("kd-vs-ls", "--teacher", "1:1", "--loss", "t2"), "--loss: invalid choice: 't2'"),
    ]:
        code, _, err = cli("experiment", args[0], tiny_config_file, *args[1:], "--out", tmp_path)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


def test_an_experiments_student_follows_the_student_schedule_as_a_trials_does():
    """experiments.common.train_student is the trials' student training (students.train_student),
    seeded by the config: schedule, lr_decay and precision apply to both."""
    from dataclasses import replace

    from sweetspot.config import config_from_dict
    from sweetspot.core.seeds import student_seed
    from sweetspot.core.splits import transfer_indices
    from sweetspot.core.students import train_student as trials_student
    from sweetspot.core.trial import prepare
    from sweetspot.experiments.common import train_student

    config = config_from_dict({"student": {"epochs": 3}, "distill": {"withheld_classes": [3]}})
    splits = prepare(config, torch.device("cpu"))
    index = transfer_indices(splits.y_train, (3,), None, 0)
    logits = torch.randn(len(splits.y_train), 10, generator=torch.Generator().manual_seed(1))

    def weights(student_config):
        student = train_student(replace(config, student=student_config), splits, index, logits, 9.0)
        return torch.cat([p.detach().flatten() for p in student.parameters()])

    constant = weights(config.student)
    decayed = replace(config.student, schedule="exponential", lr_decay=0.01)
    assert not torch.allclose(constant, weights(decayed))  # the schedule is not ignored
    seed = student_seed(config)  # an experiment's student is seeded as a trial's students are
    torch.manual_seed(seed)
    same = trials_student(decayed, splits.x_train[index], logits[index], splits.y_train[index], 10, temperature=9.0,
                          alpha=config.distill.alpha, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(weights(decayed), torch.cat([p.detach().flatten() for p in same.parameters()]))
