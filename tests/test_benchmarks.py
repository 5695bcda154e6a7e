"""Benchmarks that must keep running where no GPU is: their --tiny paths, on the CPU."""

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
