"""Benchmarks that must keep running where no GPU is: their --tiny paths, on the CPU."""

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
