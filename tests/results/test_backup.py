"""`sweetspot copy` between real databases: the copy reads back identically, or is not there."""

from __future__ import annotations

import optuna
import pytest

from sweetspot.service.optuna_internals import queue_storage, read_note
from sweetspot.service.study import open_storage
from tests.conftest import break_connection


@pytest.fixture
def pg_study(cli, tiny_config_file, postgres_url, study_name, tmp_path):
    """A finished 3-trial study on PostgreSQL, its artifacts in their own folder."""
    code, _, err = cli("run", tiny_config_file, "--storage", postgres_url, "--study", study_name, "--trials", "3",
                       "--artifacts", tmp_path / "pg-artifacts", "--no-progress")
    assert code == 0, err
    return study_name


def _notes(url: str, name: str) -> list[str]:
    study = optuna.load_study(study_name=name, storage=url)
    storage = queue_storage(optuna.load_study(study_name=name, storage=open_storage(url)))
    study_id = storage.get_study_id_from_name(name)
    attrs = storage.get_study_system_attrs(study_id)
    return [read_note(attrs, storage.get_trial_id_from_study_id_trial_number(study_id, t.number)) for t in study.trials]


def test_a_postgres_study_copied_to_sqlite_reads_back_identically(cli, pg_study, postgres_url, tmp_path, monkeypatch):
    monkeypatch.delenv("SWEETSPOT_ARTIFACTS")  # the copy's artifact folder by default: beside its SQLite file
    archive = f"sqlite:///{tmp_path / 'archive.db'}"
    code, out, err = cli("copy", "--from", postgres_url, "--to", archive, "--study", pg_study,
                         "--artifacts", tmp_path / "pg-artifacts")
    assert code == 0, err
    assert f"copied study {pg_study!r} to {pg_study!r}" in out and "3 trials, 3 trial notes, 6 artifact files" in out
    a = optuna.load_study(study_name=pg_study, storage=postgres_url)
    b = optuna.load_study(study_name=pg_study, storage=archive)
    assert b.user_attrs == a.user_attrs and b.directions == a.directions and b.metric_names == a.metric_names
    assert [(t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in b.trials] == [
        (t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in a.trials]
    notes = _notes(postgres_url, pg_study)
    assert all(notes) and _notes(archive, pg_study) == notes  # each trial's note on the same trial
    # report and export of the copy are those of the original, but for the storage they name
    for storage, tag in ((postgres_url, "pg"), (archive, "sqlite")):
        assert cli("report", "--storage", storage, "--study", pg_study, "--out", tmp_path / f"report-{tag}")[0] == 0
        assert cli("export", "--storage", storage, "--study", pg_study, "--out", tmp_path / f"{tag}.yaml")[0] == 0
    masked = {"pg": "postgresql+psycopg://postgres@127.0.0.1:5432/test", "sqlite": archive}

    def read(tag: str, name: str) -> str:
        return (tmp_path / name).read_text().replace(masked[tag], "STORAGE")

    assert read("sqlite", "sqlite.yaml") == read("pg", "pg.yaml")
    assert read("sqlite", "report-sqlite/report.html") == read("pg", "report-pg/report.html")
    # the teacher weights come from the copy's own artifact folder, beside the SQLite file
    assert len(list((tmp_path / "archive-artifacts").iterdir())) == 6
    code, out, err = cli("teacher", tmp_path / "sqlite.yaml", "--storage", archive, "--out", tmp_path / "t.pt")
    assert code == 0 and "fetched from the artifact store" in out, err


def test_a_copy_is_refused_in_one_line_and_writes_nothing(cli, pg_study, postgres_url, tmp_path):
    archive = f"sqlite:///{tmp_path / 'archive.db'}"
    copy = ("copy", "--from", postgres_url, "--to", archive, "--study", pg_study,
            "--artifacts", tmp_path / "pg-artifacts")
    assert cli(*copy)[0] == 0
    code, _, err = cli(*copy)
    assert code == 2 and "already has a study named" in err and err.count("\n") == 1
    code, _, err = cli("copy", "--from", f"sqlite:///{tmp_path / 'none.db'}", "--to", archive)
    assert code == 2 and err.startswith("sweetspot copy: error: --from: no database file") and err.count("\n") == 1
    code, _, err = cli("copy", "--from", postgres_url, "--to", archive, "--study", "nope")
    assert code == 2 and "--study: no study named 'nope'" in err
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, _, err = cli("copy", "--from", postgres_url, "--to", other, "--study", pg_study,
                       "--artifacts", tmp_path / "elsewhere")
    assert code == 2 and "is not in" in err and err.count("\n") == 1  # its artifact files are not where it says
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'other.db'}") == []  # the half-made copy is gone


def test_a_copy_cut_short_by_the_database_is_removed(pg_study, postgres_url, tmp_path, monkeypatch):
    import sweetspot.service.retry
    from sweetspot.errors import StorageError
    from sweetspot.results.backup import copy_study
    from sweetspot.service.retry import Retry

    monkeypatch.setattr(sweetspot.service.retry, "STORAGE_RETRY", Retry(pause=0.01))
    target = open_storage(f"sqlite:///{tmp_path / 'archive.db'}")
    inserts = [0]

    def third_trial(statement: str, parameters) -> bool:  # and every try of it: the copy cannot finish
        if statement.lstrip().upper().startswith("INSERT INTO TRIALS"):
            inserts[0] += 1
            return inserts[0] >= 3
        return False

    break_connection(target.engine, third_trial, times=10**6)
    monkeypatch.setattr(optuna.storages._rdb.storage, "time", __import__("types").SimpleNamespace(sleep=lambda s: 0))
    with pytest.raises(StorageError, match="failed and was removed from the destination"):
        copy_study(open_storage(postgres_url), pg_study, target, pg_study)
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'archive.db'}") == []


def test_a_study_with_more_trials_than_keep_weights_copies_what_it_kept(cli, tiny_config_file, tmp_path, monkeypatch):
    """Issue 20: retention deleted the weights of the trials outside the best K, and copy refused the
    study for the files it still listed. Now a retired file is listed nowhere, the copy says how many
    there were, and every file the copy lists is there."""
    from optuna.artifacts import get_all_artifact_meta

    monkeypatch.delenv("SWEETSPOT_ARTIFACTS")  # both artifact folders by default: beside their SQLite files
    monkeypatch.chdir(tmp_path)
    source, archive = f"sqlite:///{tmp_path / 'studies.db'}", f"sqlite:///{tmp_path / 'copy.db'}"
    code, _, err = cli("run", tiny_config_file, "--storage", source, "--trials", "4", "--keep-weights", "1",
                       "--no-progress")
    assert code == 0, err
    code, out, err = cli("copy", "--from", source, "--to", archive)
    assert code == 0, err
    # 4 pictures and the one kept teacher; the 3 others retired
    assert "4 trials, 4 trial notes, 5 artifact files" in out and "3 teacher weights were retired" in out
    assert len(list((tmp_path / "copy-artifacts").iterdir())) == 5
    from sweetspot.service.optuna_internals import retired_files  # (new with the fix)

    for url, folder in ((source, "studies-artifacts"), (archive, "copy-artifacts")):
        study = optuna.load_study(study_name="tiny", storage=url)
        storage = queue_storage(optuna.load_study(study_name="tiny", storage=open_storage(url)))
        listed = {t.number: [m.filename for m in get_all_artifact_meta(t, storage=storage)] for t in study.trials}
        assert sorted(map(sorted, listed.values())) == [["soft-labels.png"]] * 3 + [["soft-labels.png", "teacher.pt"]]
        assert all((tmp_path / folder / m.artifact_id).is_file() for t in study.trials
                   for m in get_all_artifact_meta(t, storage=storage))  # nothing listed is missing
        retired = retired_files(storage.get_study_system_attrs(storage.get_study_id_from_name("tiny")))
        assert sorted(r["trial"] for r in retired.values()) == [n for n, files in listed.items() if len(files) == 1]
        notes = _notes(url, "tiny")
        assert [("Teacher weights retired" in note) for note in notes] == [len(listed[n]) == 1 for n in listed]
    # the copy exports, and its teachers come back: fetched where kept, retrained where retired
    assert cli("export", "--storage", archive, "--out", tmp_path / "best.yaml")[0] == 0
    for trial in optuna.load_study(study_name="tiny", storage=archive).trials:
        code, out, err = cli("teacher", tmp_path / "best.yaml", "--storage", archive, "--trial", str(trial.number),
                             "--out", tmp_path / f"t{trial.number}.pt")
        if code == 0:  # the export's front trials
            kept = len(listed[trial.number]) == 2
            assert ("fetched from the artifact store" if kept else "retrained from its recipe") in out, out
