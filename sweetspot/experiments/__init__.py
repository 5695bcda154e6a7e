"""The paper's experiments as commands: each writes a CSV, a markdown table and a PNG figure.

Teachers come from ``--teacher`` specs (an architecture with explicit batch size and epochs) and
from an export (``--export``: its best teacher, the one a study calibrated). Students, transfer
sets and the temperature come from the config. Seeds are fixed, so repeated runs agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sweetspot.experiments import examples_per_class, kd_vs_ls, missing_class, penultimate, temperature
from sweetspot.experiments.common import Setup, TeacherSpec, Tick, parse_teacher, teacher_from_export


@dataclass(frozen=True)
class Experiment:
    work: Callable[[Setup], int]  # units of work, for the progress bar
    run: Callable[[Setup, Path, Tick], list[Path]]  # writes the outputs, returns their paths
    takes_classes: bool  # whether --classes means something to it
    takes_temperatures: bool = False  # whether --temperatures does


EXPERIMENTS: dict[str, Experiment] = {
    temperature.NAME: Experiment(temperature.work, temperature.run, False),
    missing_class.NAME: Experiment(missing_class.work, missing_class.run, True, takes_temperatures=True),
    examples_per_class.NAME: Experiment(examples_per_class.work, examples_per_class.run, False),
    penultimate.NAME: Experiment(penultimate.work, penultimate.run, True),
    kd_vs_ls.NAME: Experiment(kd_vs_ls.work, kd_vs_ls.run, False),
}

__all__ = ["EXPERIMENTS", "Experiment", "Setup", "TeacherSpec", "parse_teacher", "teacher_from_export"]
