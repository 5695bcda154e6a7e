"""Copying a study between storages: a backup, an archive, a study to share as one SQLite file.

Optuna's ``copy_study`` copies the study's system attributes as they are, but optuna-dashboard keys
each trial's note by the trial's database id, which differs in the copy: the notes would be lost or,
worse, shown on another trial. Here the trials are copied in order (the same numbers), the study's
attributes without the trial notes, then each trial's note under its new id, and the artifact files
the trials refer to (teacher weights, soft-label pictures) into the destination's artifact folder.
A copy that fails half-way is deleted: the destination holds the whole study or none of it.
Teacher weights that retention retired (disk.py) are neither listed by their trials nor copied; the
study's record of them, and each trial's note saying so, come with the copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweetspot.errors import FileError, StorageError
from sweetspot.service.optuna_internals import TRIAL_NOTE_KEY, artifact_ids, read_note, retired_files, write_note
from sweetspot.service.retry import STORAGE_ERRORS, first_line, with_retries


@dataclass(frozen=True)
class Copied:
    """What ``copy_study`` copied: trials, trial notes, artifact files, and trials left RUNNING; and
    how many files the study had retired before (``--keep-weights``), which no copy can have."""

    trials: int
    notes: int
    artifacts: int
    running: int
    retired: int = 0


def copy_study(
    source: optuna.storages.BaseStorage,
    name: str,
    target: optuna.storages.BaseStorage,
    target_name: str,
    artifacts: tuple[Path, Path] | None = None,
) -> Copied:
    """Copy study ``name`` from ``source`` into ``target`` as ``target_name`` (which must not exist
    there), with its notes, and the artifact files from ``artifacts[0]`` to ``artifacts[1]`` unless
    the folders are the same."""
    if target_name in {s.study_name for s in target.get_all_studies()}:
        raise StorageError(f"the destination already has a study named {target_name!r}; give another with --to-study")
    study = optuna.load_study(study_name=name, storage=source)
    source_id = source.get_study_id_from_name(name)
    trials = study.get_trials(deepcopy=False)
    system_attrs = source.get_study_system_attrs(source_id)
    copy = optuna.create_study(study_name=target_name, storage=target, directions=study.directions)
    try:
        copy_id = target.get_study_id_from_name(target_name)
        for key, value in system_attrs.items():
            if not TRIAL_NOTE_KEY.match(key):
                target.set_study_system_attr(copy_id, key, value)
        for key, value in study.user_attrs.items():
            copy.set_user_attr(key, value)
        notes = 0
        for trial in trials:
            copied_id = target.create_new_trial(copy_id, template_trial=trial)
            note = read_note(system_attrs, source.get_trial_id_from_study_id_trial_number(source_id,
                                                        trial.number))
            if note:
                write_note(target, copy_id, copied_id, note)
                notes += 1
        files = _copy_artifacts(trials, *artifacts) if artifacts else 0
    except (*STORAGE_ERRORS, FileError, OSError) as exc:
        _remove(target, target_name, exc)
        raise StorageError(f"copy of {name!r} failed and was removed from the destination: {first_line(exc)}") from exc
    except BaseException as exc:
        _remove(target, target_name, exc)
        raise
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return Copied(len(trials), notes, files, running, len(retired_files(system_attrs)))


def _remove(target: optuna.storages.BaseStorage, name: str, cause: BaseException) -> None:
    """Delete a half-made copy; if the destination cannot take even that, say what is left there."""
    try:
        with_retries(optuna.delete_study, study_name=name, storage=target)
    except STORAGE_ERRORS as exc:
        raise StorageError(
            f"copy failed ({first_line(cause)}) and the half-made study {name!r} could not be removed from the "
            f"destination ({first_line(exc)}); delete it with: optuna delete-study --study-name {name} --storage URL"
        ) from exc


def _copy_artifacts(trials: list[optuna.trial.FrozenTrial], source: Path, target: Path) -> int:
    """The artifact files the trials refer to, from one artifact folder to another; none if they
    are one folder. A file the source lacks is an error naming it (the copy would not read back)."""
    if source.resolve() == target.resolve():
        return 0
    ids = [(t.number, artifact_id) for t in trials for artifact_id in artifact_ids(t)]
    target.mkdir(parents=True, exist_ok=True)
    for number, artifact_id in ids:
        found = source / artifact_id
        if not found.is_file():
            raise FileError(
                f"artifact {artifact_id} of trial {number} is not in {str(source)!r} (pass --artifacts DIR)"
            )
        shutil.copy2(found, target / artifact_id)
    return len(ids)
