"""Benchmarks that must keep running where no GPU is: their --tiny paths, on the CPU."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_paper_table5_tiny_runs_the_whole_path_and_prints_the_mean_row(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "paper_table5.py"), "--tiny", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("machine: ") and "calibrating study: 3 trials" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert table[0] == "| teacher | T=3 | T=6 | T=9 | T=12 | T=15 | T=20 |"
    teachers = [line.split(" | ")[0][2:] for line in table[1:]]
    assert teachers[:2] == ["small", "large"] and teachers[2].startswith("calibrated (trial ")
    assert "| paper's small | 83.4 | 78.6 | 72.3 |" in out
    assert (tmp_path / "missing-class.csv").stat().st_size > 0


def _table5(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "benchmarks" / "paper_table5.py"), "--tiny", "--teachers", "small", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_paper_table5_seeds_run_apart_and_combined_give_the_one_run_table(tmp_path):
    both = _table5("--teacher-seeds", "2", "--out", str(tmp_path / "both"))
    assert both.returncode == 0, both.stderr
    for i in (0, 1):
        apart = _table5("--teacher-seeds", "2", "--seed-indices", str(i), "--out", str(tmp_path / f"seed{i}"))
        assert apart.returncode == 0, apart.stderr
        assert "1 teachers x 1 seeds x 6 temperatures" in apart.stdout
    combined = _table5("--combine", str(tmp_path / "seed0" / "missing-class.csv"),
                       str(tmp_path / "seed1" / "missing-class.csv"), "--out", str(tmp_path / "combined"))
    assert combined.returncode == 0, combined.stderr
    for name in ("missing-class.csv", "missing-class.md"):
        assert (tmp_path / "combined" / name).read_text() == (tmp_path / "both" / name).read_text()
    assert "over 2 teacher seeds per teacher" in (tmp_path / "combined" / "missing-class.md").read_text()
    assert both.stdout.split("Table 5 mean row")[1] == combined.stdout.split("Table 5 mean row")[1]

    twice = _table5("--combine", str(tmp_path / "seed0" / "missing-class.csv"),
                    str(tmp_path / "seed0" / "missing-class.csv"), "--out", str(tmp_path / "twice"))
    assert twice.returncode == 1 and twice.stderr.strip().splitlines() == [
        "--combine: the files share a teacher seed; combine runs of different --seed-indices"]
    assert not (tmp_path / "twice").exists()
    beyond = _table5("--teacher-seeds", "2", "--seed-indices", "2", "--out", str(tmp_path / "beyond"))
    assert beyond.returncode == 2 and "--seed-indices: each must be 0 to 1 (--teacher-seeds 2)" in beyond.stderr
    assert "Traceback" not in beyond.stderr and not (tmp_path / "beyond").exists()


def test_table5_ablation_tiny_its_recipe_is_paper_table5s_row_and_variants_are_paired(tmp_path):
    table5 = _table5("--temperatures", "9", "4.5", "--out", str(tmp_path / "table5"))
    assert table5.returncode == 0, table5.stderr
    assert "| teacher | T=9 | T=4.5 |" in table5.stdout and "| paper's small | 72.3 | - |" in table5.stdout
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table5_ablation.py"), "--tiny", "--variants",
                             "recipe", "hinton", "teacher-epochs-2", "--out", str(tmp_path / "ablation")],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "table5" / "missing-class.csv") as handle:
        at_9 = {r["class"]: r["student_acc_on_class"] for r in csv.DictReader(handle) if r["temperature"] == "9"}
    with open(tmp_path / "ablation" / "ablation.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the ablation's recipe is the table's T = 9 column, class by class
    assert {r["class"]: r["student_acc_on_class"] for r in rows if r["variant"] == "recipe"} == at_9
    assert [r["variant"] for r in rows[::10]] == ["recipe", "hinton", "teacher-epochs-2"]
    table = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")]
    lines = {cells[0][2:]: cells for cells in table}
    assert lines["recipe"][2] == "1" and lines["recipe"][4] == "0.0"  # one seed; the recipe against itself
    hinton = [float(r["student_acc_on_class"]) for r in rows if r["variant"] == "hinton"]
    recipe = [float(v) for v in at_9.values()]
    assert lines["hinton"][4] == f"{100 * (sum(hinton) - sum(recipe)) / 10:.1f}"

    # the recipe taken from the table instead of trained again: the same rows and table
    reused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table5_ablation.py"), "--tiny", "--variants",
                             "recipe", "--recipe-from", str(tmp_path / "table5" / "missing-class.csv"), "--out",
                             str(tmp_path / "reused")], capture_output=True, text=True, timeout=600, check=False)
    assert reused.returncode == 0, reused.stderr
    assert "teacher seed 0, recipe" not in reused.stdout  # not trained
    assert (tmp_path / "reused" / "ablation.csv").read_text().splitlines() == (
        tmp_path / "ablation" / "ablation.csv").read_text().splitlines()[:11]

    # variants run apart, the recipe added when they are put together: the same table
    apart = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table5_ablation.py"), "--tiny", "--variants",
                            "hinton", "--out", str(tmp_path / "apart")], capture_output=True, text=True, timeout=600,
                           check=False)
    assert apart.returncode == 0, apart.stderr
    assert "| hinton | " in apart.stdout and " | - | " in apart.stdout  # no recipe: no difference

    # a run's own recipe is kept; --recipe-from fills in only the seeds without one
    other = tmp_path / "other.csv"  # another table, its recall marked
    with open(tmp_path / "table5" / "missing-class.csv") as handle:
        table_rows = [{**r, "student_acc_on_class": "0.123456"} for r in csv.DictReader(handle)]
    with open(other, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table_rows[0]))
        writer.writeheader()
        writer.writerows(table_rows)
    for source, own in (("ablation", True), ("apart", False)):
        kept = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table5_ablation.py"), "--combine",
                               str(tmp_path / source / "ablation.csv"), "--recipe-from", str(other), "--out",
                               str(tmp_path / f"kept-{source}")], capture_output=True, text=True, timeout=600,
                              check=False)
        assert kept.returncode == 0, kept.stderr
        with open(tmp_path / f"kept-{source}" / "ablation.csv") as handle:
            recipe = [r["student_acc_on_class"] for r in csv.DictReader(handle) if r["variant"] == "recipe"]
        assert len(recipe) == 10 and (recipe == list(at_9.values())) is own and ({"0.123456"} == set(recipe)) is not own
    combined = subprocess.run([sys.executable, str(REPO / "benchmarks" / "table5_ablation.py"), "--combine",
                               str(tmp_path / "apart" / "ablation.csv"), "--recipe-from",
                               str(tmp_path / "table5" / "missing-class.csv"), "--out", str(tmp_path / "combined")],
                              capture_output=True, text=True, timeout=600, check=False)
    assert combined.returncode == 0, combined.stderr
    assert [line for line in combined.stdout.splitlines() if line.startswith("| hinton")] == [
        line for line in result.stdout.splitlines() if line.startswith("| hinton")]


def test_dataset_memory_prints_what_a_loaded_dataset_holds_and_says_what_is_missing(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dataset_memory.py"), "--datasets", "digits",
                             "cifar10", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["digits"][1:4] == ["1797", "1x8x8", "float32"]
    assert float(rows["digits"][4]) == round(1797 * 64 * 4 / 2**20 + 1797 * 8 / 2**20 + 2 * 64 * 4 / 2**20, 1)
    assert rows["cifar10"][1:3] == ["not", "here"]


def test_dataset_memory_holds_a_byte_dataset_as_bytes():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dataset_memory.py"), "--datasets", "mnist",
                             "--stand-ins"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[2].split()
    assert row[:5] == ["mnist", "(stand-in)", "70000", "1x28x28", "uint8"]
    # images a byte each, labels 8 bytes each, two input-shaped float32 statistics
    assert float(row[5]) == round((70000 * 784 + 70000 * 8 + 2 * 784 * 4) / 2**20, 1)


def test_a_short_soak_on_postgres_meets_its_target(postgres_url):
    """benchmarks/soak.py shortened: 2 workers, one SIGKILLed, every connection terminated each second
    for 12 s (while the workers start, open the study and take their first trials: CI once caught
    both workers opening the storage, and they died of it), no restart."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--url", postgres_url, "--workers", "2", "--trials",
         "30", "--kills", "1", "--terminations", "12", "--terminate-every", "1", "--chaos-window", "7",
         "--no-restart"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIGKILL worker" in result.stdout  # the chaos happened
    assert sum(map(int, re.findall(r"terminated (\d+) connections", result.stdout))) > 0, result.stdout
    tally = json.loads(result.stdout.strip().splitlines()[-2])
    assert tally["finished"] == 30 and tally["running"] == 0 and tally["duplicates"] == 0
    assert tally["retries_faithful"] and tally["ended_by_itself"]


def _gain(tmp_path: Path, out: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "benchmarks" / "student_gain.py"), "--tiny", "--students", "linear", "mlp",
               "--labels", "10", "all", "--out", str(tmp_path / out), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_student_gain_tiny_pairs_every_teacher_with_the_baselines_and_picks_the_studies_best(tmp_path):
    import optuna

    both = _gain(tmp_path, "both")
    assert both.returncode == 0, both.stderr
    with open(tmp_path / "both" / "student-gain.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    teachers = ["reference", "over-trained", "sweetspot-mcr", "sweetspot-student", "labels only", "label smoothing"]
    cells = {(r["student"], r["labels_per_class"]) for r in rows}
    assert cells == {("linear", "10"), ("linear", "all"), ("mlp", "10"), ("mlp", "all")}
    assert len(rows) == len(cells) * 2 * len(teachers)
    for r in rows:
        if r["teacher"] in teachers[:4]:
            assert float(r["temperature"]) in (1, 2, 4, 9) and float(r["alpha"]) in (0.5, 0.9, 0.99)
    score = {(r["student"], r["labels_per_class"], r["teacher"], r["seed_index"]): float(r["test_acc"]) for r in rows}
    # labels are scarce: the labels-only student learns less from 10 per class than from all of them
    assert all(score[("linear", "10", "labels only", i)] < score[("linear", "all", "labels only", i)] for i in "01")
    # the paired difference in the table is the mean of the per-seed differences
    gains = [score[("linear", "all", "sweetspot-mcr", i)] - score[("linear", "all", "reference", i)] for i in "01"]
    line = next(x for x in both.stdout.splitlines() if x.startswith("| linear | all | train | 2 |"))
    assert f"{100 * sum(gains) / 2:.1f} ± " in line.split(" | ")[11]
    # the sweetspot teacher ranked by missing_class_recall is the probe study's best trial by it
    storage = f"sqlite:///{tmp_path / 'both' / 'work' / 'studies' / 'studies.db'}"
    study = optuna.load_study(study_name="probe-train-all", storage=storage)
    best = max(study.trials, key=lambda t: (t.user_attrs["missing_class_recall"], t.user_attrs["student_val_acc"],
                                            -t.number))
    mcr = next(r for r in rows if r["teacher"] == "sweetspot-mcr" and r["labels_per_class"] == "all")
    assert (int(mcr["batch_size"]), int(mcr["epochs"])) == (best.params["batch_size"], best.params["epochs"])
    reference = next(r for r in rows if r["teacher"] == "reference")
    over = next(r for r in rows if r["teacher"] == "over-trained")
    assert int(reference["epochs"]) <= int(over["epochs"]) == 6  # the search's largest

    # the cheap predictors read the run's teachers back from its checkpoints and correlate them
    predictors = subprocess.run([sys.executable, str(REPO / "benchmarks" / "teacher_predictors.py"), "--tiny",
                                 "--seeds", "2", "--rows", str(tmp_path / "both" / "student-gain.csv"), "--work",
                                 str(tmp_path / "both" / "work"), "--students", "linear"], capture_output=True,
                                text=True, timeout=600, check=False)
    assert predictors.returncode == 0, predictors.stderr
    table = [x for x in predictors.stdout.splitlines() if x.startswith("| linear | all | train | 8 |")]
    assert len(table) == 1 and len(table[0].split(" | ")) == 10
    cells = [x for x in predictors.stdout.splitlines() if x.startswith("| ") and " | train | " in x]
    assert cells and all(x.startswith("| linear |") for x in cells)  # --students keeps one student's rows
    assert "Reaches |rho| >= 0.8" in predictors.stdout

    # seeds run apart and combined give the same rows and table (sharing the first run's studies and teachers)
    def apart(out: str, *args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(REPO / "benchmarks" / "student_gain.py"), "--tiny", "--students", "linear",
                   "--labels", "all", "--seeds", "2", "--out", str(tmp_path / out),
                   "--work", str(tmp_path / "both" / "work"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    assert apart("seed0", "--seed-indices", "0").returncode == 0
    assert apart("seed1", "--seed-indices", "1").returncode == 0
    combined = apart("combined", "--combine", str(tmp_path / "seed0" / "student-gain.csv"),
                     str(tmp_path / "seed1" / "student-gain.csv"))
    assert combined.returncode == 0, combined.stderr
    with open(tmp_path / "combined" / "student-gain.csv", newline="") as handle:
        together = sorted(tuple(r.items()) for r in csv.DictReader(handle))
    linear_all = [r for r in rows if (r["student"], r["labels_per_class"]) == ("linear", "all")]
    assert together == sorted(tuple(r.items()) for r in linear_all)
    assert line in combined.stdout


def test_same_trials_tells_identical_runs_from_different_ones(tmp_path):
    """benchmarks/same_trials.py, the check behind "the default study gives the same trials after the move"."""
    import sweetspot
    from sweetspot.config import config_from_dict
    from tests.conftest import TINY

    urls = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        urls[run] = f"sqlite:///{tmp_path / run}.db"
        sweetspot.run_study(config_from_dict({**TINY, "seed": seed}), urls[run], n_trials=2, progress=False,
                            artifacts=str(tmp_path / f"{run}-artifacts"))

    def compare(x: str, y: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "benchmarks" / "same_trials.py"), urls[x], urls[y],
                               "--study", "tiny"], capture_output=True, text=True, timeout=300, check=False)

    same = compare("a", "b")
    assert same.returncode == 0 and same.stdout.splitlines()[-1] == "identical"
    other = compare("a", "c")
    assert other.returncode == 1 and other.stdout.splitlines()[-1].startswith("differ: trial 0: params")
