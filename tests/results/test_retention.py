"""A study's disk: teacher weights of the best K trials only, the rest deleted and retrained on demand."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from sweetspot.results.retention import keep_best_weights, ranked
from sweetspot.service.artifacts import WEIGHTS_FILE, fetch_teacher_weights
from sweetspot.service.optuna_internals import artifact_ids, retired_files


def _trial(values: list[float], x: int) -> optuna.trial.FrozenTrial:
    return create_trial(values=values, params={"x": x}, distributions={"x": IntDistribution(0, 100)})


def test_ranked_puts_each_front_in_the_export_order_before_the_next():
    study = optuna.create_study(directions=["maximize", "maximize"])
    for x, values in enumerate([[0.5, 0.5], [0.9, 0.1], [0.4, 0.4], [0.1, 0.9], [0.5, 0.5], [0.3, 0.45]]):
        study.add_trial(_trial(values, x))
    study.add_trial(create_trial(state=TrialState.FAIL))
    # front 1: 1 (0.9), 0 and 4 (0.5, ties by number), 3 (0.1); front 2: 2 (0.4), 5 (0.3)
    assert [t.number for t in ranked(study, study.trials)] == [1, 0, 4, 3, 2, 5]
    assert [t.number for t in ranked(study, study.trials, first=2)] == [1, 0, 4, 3]  # one front is enough


def test_with_one_objective_a_trial_never_climbs_back_into_the_best_k():
    """More trials push a trial down a one-objective ranking, never up: its deleted weights are never
    wanted back. With several objectives a trial can climb (a new trial that dominates two trials
    ahead of it sends both behind it): then `sweetspot teacher` retrains it (the CLI test below)."""
    rng = __import__("random").Random(0)
    for direction in ("maximize", "minimize"):
        study = optuna.create_study(direction=direction)
        before: dict[int, int] = {}
        for x in range(60):
            study.add_trial(_trial([rng.random()], x))
            position = {t.number: i for i, t in enumerate(ranked(study, study.trials))}
            assert all(position[n] >= p for n, p in before.items())
            before = position


def test_weights_outside_the_best_k_are_deleted_once_and_read_back_as_none(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'w.db'}")
    study = optuna.create_study(storage=storage, directions=["maximize"])
    store = FileSystemArtifactStore(tmp_path / "artifacts")
    (tmp_path / "artifacts").mkdir()
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(b"w" * 100)
    picture = tmp_path / "soft-labels.png"
    picture.write_bytes(b"\x89PNG")
    for x in range(5):
        trial = study.ask()
        upload_artifact(artifact_store=store, file_path=str(weights), study_or_trial=trial)
        upload_artifact(artifact_store=store, file_path=str(picture), study_or_trial=trial)
        study.tell(trial, float(x))
    assert keep_best_weights(study, store, 2) == [0, 1, 2]
    assert keep_best_weights(study, store, 2) == []  # gone already
    assert len(list((tmp_path / "artifacts").iterdir())) == 2 + 5  # two teachers, every picture
    trials = study.trials
    # retired, not dangling: the trials list only the files that exist, here and in a fresh process's read
    fresh = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 'w.db'}").trials
    for listing in (trials, fresh):
        assert [len(artifact_ids(t, WEIGHTS_FILE)) for t in listing] == [0, 0, 0, 1, 1]
        assert all((tmp_path / "artifacts" / a).is_file() for t in listing for a in artifact_ids(t))
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study.study_name))
    assert sorted(r["trial"] for r in retired_files(attrs).values()) == [0, 1, 2]
    # a worker that died after deleting a file, before forgetting its record: the next call retires it
    (tmp_path / "artifacts" / artifact_ids(trials[3], WEIGHTS_FILE)[0]).unlink()
    assert keep_best_weights(study, store, 1) == [3]
    assert [len(artifact_ids(t, WEIGHTS_FILE)) for t in study.trials] == [0, 0, 0, 0, 1]
    assert fetch_teacher_weights(store, storage, trials[4], tmp_path / "4.pt") is not None
    assert fetch_teacher_weights(store, storage, trials[0], tmp_path / "0.pt") is None


@pytest.mark.parametrize("keep", [2, 0])
def test_a_study_keeps_the_best_k_teachers_and_retrains_the_others(cli, tiny_config_file, storage_url, tmp_path,
                                                                   artifacts_in_tmp, keep):
    code, _, err = cli("run", tiny_config_file, "--storage", storage_url, "--trials", "5",
                       "--keep-weights", str(keep), "--no-progress")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    store, storage = FileSystemArtifactStore(artifacts_in_tmp), optuna.storages.RDBStorage(storage_url)
    held = [t.number for t in study.trials if fetch_teacher_weights(store, storage, t, tmp_path / f"{t.number}.pt")]
    assert len(held) <= keep and set(held) <= {t.number for t in ranked(study, study.trials)[:keep]}
    retired = retired_files(storage.get_study_system_attrs(storage.get_study_id_from_name("tiny")))
    assert retired and all(r["filename"] == WEIGHTS_FILE for r in retired.values())  # so some were deleted
    assert [t.number for t in study.trials if artifact_ids(t, WEIGHTS_FILE)] == held  # listed exactly while held
    assert not {r["trial"] for r in retired.values()} & set(held)
    assert cli("export", "--storage", storage_url, "--out", tmp_path / "best.yaml")[0] == 0
    exported = [t["trial"] for t in yaml.safe_load((tmp_path / "best.yaml").read_text())["teachers"]]
    gone = next((n for n in exported if n not in held), None)
    if gone is not None:  # a front trial without weights: retrained from its recipe, and checked
        code, out, err = cli("teacher", tmp_path / "best.yaml", "--trial", str(gone), "--storage", storage_url,
                             "--out", tmp_path / "t.pt")
        assert code == 0 and "retrained from its recipe" in out, err

