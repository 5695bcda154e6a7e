"""What a study keeps on disk: the teacher weights of its best K trials, not of every trial.

Every finished trial uploads its teacher's weights to the artifact store (5.4 MB for the default
6 x 512 MLP), so a study of hundreds of trials would keep hundreds of teachers nobody will fetch.
After each trial, the weights of trials that are no longer among the best ``K`` are deleted. Trials
are ranked by non-dominated sorting of their objective values (the Pareto front first, then the
front of the rest, and so on), each front in the export's order. With one objective more trials
only push a trial down, so its weights are never wanted back; with several, a trial can climb back
(a new trial that dominates two trials ahead of it sends both behind it). Either way a teacher
whose weights are gone is retrained from its export recipe by `sweetspot teacher`, and checked
against the figures the study recorded, as when no artifact store was given: deleting costs time
later, never a wrong teacher. Several workers may delete at once (a file already gone is skipped).

A deleted file is *retired*, not left dangling: its record goes from the trial (``forget_artifact``),
so that optuna-dashboard offers no download that fails and ``sweetspot copy`` finds every file the
study lists; the study keeps one ``optuna_internals.RETIRED_KEY`` attribute per retired file (copied with the study),
and the trial's note says where the teacher went. Each step is safe to repeat, and a worker that
dies between them leaves a record of a missing file that the next trial's retention retires.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweetspot.results.export import best_first
from sweetspot.service.artifacts import WEIGHTS_FILE
from sweetspot.service.optuna_internals import artifact_ids, retire_record

RETIRED_NOTE = (
    "\n\n## Teacher weights retired\n\nThis trial fell out of the study's best `--keep-weights` trials, so its "
    "teacher's weights were deleted. `sweetspot teacher` retrains them from the exported recipe and checks them "
    "against the figures above.\n"
)


def ranked(study: optuna.Study, trials: list[FrozenTrial], first: int | None = None) -> list[FrozenTrial]:
    """The finished trials best first: fronts of non-dominated sorting, each in the export's
    order (``best_first``); only as many fronts as the ``first`` trials need."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    if not done:
        return []
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    values = np.array([t.values for t in done], dtype=float) * signs  # all minimised
    # dominates[i, j]: trial i is no worse than j in every objective and better in one
    dominates = (values[:, None] <= values[None]).all(axis=2) & (values[:, None] < values[None]).any(axis=2)
    left = np.ones(len(done), dtype=bool)
    out: list[FrozenTrial] = []
    while left.any() and (first is None or len(out) < first):
        front = left & ~(dominates & left[:, None]).any(axis=0)
        out += best_first(study, [done[i] for i in np.flatnonzero(front)])
        left &= ~front
    return out


def keep_best_weights(
    study: optuna.Study, store: FileSystemArtifactStore, keep: int, trials: list[FrozenTrial] | None = None
) -> list[int]:
    """Retire the teacher weights of every trial outside the best ``keep``; returns the numbers of
    the trials whose weights this call retired (another worker may have retired some already)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    best = {t.number for t in ranked(study, trials, keep)[:keep]}
    retired = []
    for trial in trials:
        if trial.number in best:
            continue
        for artifact_id in artifact_ids(trial, WEIGHTS_FILE):
            retire(study, store, trial, artifact_id)
            retired.append(trial.number)
    return retired


def retire(study: optuna.Study, store: FileSystemArtifactStore, trial: FrozenTrial, artifact_id: str) -> None:
    """Delete one file of a finished trial and its record, and say so in the study and the trial's note."""
    try:
        store.remove(artifact_id)
    except ArtifactNotFound:
        pass  # deleted before, by a worker that died before it had forgotten the record
    retire_record(study, trial, artifact_id, RETIRED_NOTE)
