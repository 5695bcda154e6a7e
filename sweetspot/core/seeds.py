"""Every seed of a study, derived in one place from the study seed: trials, teacher paths, students, samplers.

Each is a pure function of what it must depend on and nothing else, which is what lets trials share
teacher paths and compare teachers on common random numbers.
"""

from __future__ import annotations

import struct

import numpy as np

from sweetspot.config import StudyConfig


def derive_seed(*entropy: int) -> int:
    """A 31-bit seed that is a pure function of ``entropy``: (seed, trial number) for a trial,
    (seed, trials so far, 1) for a sampler. Independent streams, reproducible anywhere."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0] & 0x7FFFFFFF)


def path_seed(config: StudyConfig, batch_size: int, lr: float) -> int:
    """The seed of a teacher's path: a function of what defines the path and nothing else
    (not the epochs, not the trial number), so that trials differing only in epochs walk one path
    and a longer one can continue a shorter one's checkpoint."""
    lr_bits = int.from_bytes(struct.pack("<d", lr), "little")
    return derive_seed(config.seed, 2, batch_size, lr_bits)


def student_seed(config: StudyConfig) -> int:
    """The seed of every student of every trial of a study: a function of the study seed and
    ``student.seed`` only, so that trials differ in their teacher and nothing else (common random
    numbers: the same initial weights, dropout masks and batch order)."""
    return derive_seed(config.seed, 3, config.student.seed)
