import pytest
import torch
from optuna.artifacts import get_all_artifact_meta

from sweetspot.config import StudyConfig
from sweetspot.core.models import mlp
from sweetspot.errors import FileError
from sweetspot.service.artifacts import (
    SOFT_LABELS_FILE,
    WEIGHTS_FILE,
    artifact_dir,
    fetch_teacher_weights,
    load_weights,
    open_artifact_store,
    save_trial_artifacts,
)
from sweetspot.service.study import open_storage, open_study, queue_trials


def test_artifact_dir_flag_then_environment_then_beside_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("SWEETSPOT_ARTIFACTS", raising=False)
    assert artifact_dir(f"sqlite:///{tmp_path}/runs/s.db") == tmp_path / "runs" / "s-artifacts"
    assert str(artifact_dir("sqlite:///s.db")) == "s-artifacts"
    assert str(artifact_dir("postgresql+psycopg://u:p@h/db")) == "sweetspot-artifacts"
    monkeypatch.setenv("SWEETSPOT_ARTIFACTS", str(tmp_path / "env"))
    assert artifact_dir("sqlite:///s.db") == tmp_path / "env"
    assert artifact_dir("sqlite:///s.db", str(tmp_path / "flag")) == tmp_path / "flag"


def test_open_artifact_store_names_a_folder_it_cannot_create(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileError, match="cannot create the artifact folder"):
        open_artifact_store(tmp_path / "file" / "store")


def test_trial_artifacts_round_trip_through_a_real_store(storage_url, tmp_path):
    storage = open_storage(storage_url)
    study = open_study(storage, "s", StudyConfig())
    queue_trials(study, 2)
    trial = study.ask()
    store = open_artifact_store(tmp_path / "store")
    torch.manual_seed(0)
    teacher = mlp((4,), 3, width=5, depth=1)
    save_trial_artifacts(store, trial, teacher, torch.full((3, 3), 1 / 3), ["a", "b", "c"], 9)
    study.tell(trial, [0.5, 0.5])
    frozen = study.trials[0]
    assert {m.filename for m in get_all_artifact_meta(frozen, storage=storage)} == {WEIGHTS_FILE, SOFT_LABELS_FILE}
    path = fetch_teacher_weights(store, storage, frozen, tmp_path / "w.pt")
    state = load_weights(path)
    assert all(torch.equal(state[k], v) for k, v in teacher.state_dict().items())
    other = study.ask()
    study.tell(other, [0.1, 0.1])
    assert fetch_teacher_weights(store, storage, study.trials[1], tmp_path / "none.pt") is None
