import csv

import pytest

from sweetspot.errors import ConfigError
from sweetspot.experiments import TEMPERATURES, TeacherSpec, around, parse_teacher, teacher_from_export


def test_parse_teacher_forms_and_errors():
    assert parse_teacher("64:10") == TeacherSpec("64:10", None, 64, 10)
    assert parse_teacher("large=mlp:16:100") == TeacherSpec("large", "mlp", 16, 100)
    for bad, message in [("64", "BATCH:EPOCHS"), ("a:b", "BATCH:EPOCHS"), ("0:3", "positive"), ("resnet:8:2", "unknown architecture")]:
        with pytest.raises(ConfigError, match=message):
            parse_teacher(bad)


def test_around_scales_and_clips_without_repeats():
    assert around(64, (0.25, 0.5, 1, 2, 4), 1, 200) == [16, 32, 64, 128, 200]
    assert around(1, (0.25, 0.5, 1), 1, 10) == [1]


def test_teacher_from_export_takes_the_best_recipe():
    doc = {"teachers": [{"best": False, "trial": 1, "recipe": {}},
                        {"best": True, "trial": 4, "recipe": {"arch": "mlp", "batch_size": 32, "epochs": 3, "seed": 9}}]}
    assert teacher_from_export(doc) == TeacherSpec("calibrated (trial 4)", "mlp", 32, 3, 9)


def test_entropy_vs_temperature_writes_csv_markdown_and_png(cli, tiny_config_file, storage_url, tmp_path):
    assert cli("run", tiny_config_file, "--storage", storage_url, "--trials", "2", "--no-progress")[0] == 0
    assert cli("export", "--storage", storage_url, "--out", tmp_path / "best.yaml")[0] == 0
    out = tmp_path / "results"
    code, stdout, err = cli("experiment", "entropy-vs-temperature", tiny_config_file, "--teacher", "short=256:1",
                            "--teacher", "long=32:8", "--export", tmp_path / "best.yaml", "--out", out, "--no-progress")
    assert code == 0, err
    assert "entropy-vs-temperature.csv" in stdout
    rows = list(csv.DictReader((out / "entropy-vs-temperature.csv").read_text().splitlines()))
    teachers = [r for r in rows if r["group"] == "teachers"]
    assert [r["teacher"] for r in teachers[:: len(TEMPERATURES)]][:2] == ["short", "long"]
    assert teachers[-1]["teacher"].startswith("calibrated (trial")
    for name in {r["teacher"] for r in rows}:
        curve = [float(r["entropy"]) for r in rows if r["teacher"] == name]
        assert curve == sorted(curve)  # softer with temperature
    assert {r["group"] for r in rows} == {"teachers", "batch size", "epochs"}
    assert "| short |" in (out / "entropy-vs-temperature.md").read_text()
    assert (out / "entropy-vs-temperature.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # seeds are fixed: a second run writes the same figures
    cli("experiment", "entropy-vs-temperature", tiny_config_file, "--teacher", "short=256:1", "--teacher", "long=32:8",
        "--export", tmp_path / "best.yaml", "--out", tmp_path / "again", "--no-progress")
    assert (tmp_path / "again" / "entropy-vs-temperature.csv").read_text() == (out / "entropy-vs-temperature.csv").read_text()


def test_experiment_without_teachers_or_with_a_bad_export_is_one_line(cli, tmp_path):
    code, _, err = cli("experiment", "entropy-vs-temperature")
    assert code == 2 and "name at least one teacher" in err
    (tmp_path / "bad.yaml").write_text("teachers: 3\n")
    code, _, err = cli("experiment", "entropy-vs-temperature", "--export", tmp_path / "bad.yaml")
    assert code == 2 and "not a readable `sweetspot export` file" in err
