import optuna
import pytest

from sweetspot.config import config_from_dict
from sweetspot.errors import ConfigError, StorageError
from sweetspot.study import CONFIG_ATTR, load_study, mask_url, open_storage, open_study, resolve_storage_url
from tests.conftest import TINY


def test_resolve_storage_url_prefers_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("SWEETSPOT_STORAGE", raising=False)
    assert resolve_storage_url(None) == "sqlite:///sweetspot.db"
    monkeypatch.setenv("SWEETSPOT_STORAGE", "sqlite:///env.db")
    assert resolve_storage_url(None) == "sqlite:///env.db"
    assert resolve_storage_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_mask_url_hides_the_password():
    assert mask_url("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"
    assert "s3cret" not in mask_url("not a url bob:s3cret@host")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not-a-url", "malformed URL"),
        ("oracle://scott@host/db", "unsupported database 'oracle'"),
        ("sqlite://", "in memory"),
        ("sqlite:////no/such/dir/x.db", "directory '/no/such/dir'"),
        ("postgresql+nodriver://u@127.0.0.1/x", "no driver"),
        ("postgresql+psycopg://bob:s3cret@127.0.0.1:1/test", "cannot open 'postgresql+psycopg://bob:***@127.0.0.1:1/test'"),
    ],
)
def test_open_storage_rejects_bad_urls_with_one_masked_line(url, message):
    with pytest.raises(StorageError) as info:
        open_storage(url)
    text = str(info.value)
    assert message in text and "s3cret" not in text and "\n" not in text


def test_open_storage_must_exist_does_not_create_a_file(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(StorageError, match="no database file"):
        open_storage(f"sqlite:///{path}", must_exist=True)
    assert not path.exists()


def test_open_study_creates_with_config_and_metric_names(storage_url):
    config = config_from_dict(TINY)
    study = open_study(open_storage(storage_url), "s", config)
    again = optuna.load_study(study_name="s", storage=storage_url)
    assert again.metric_names == ["missing_class_recall", "student_val_acc"]
    assert again.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    assert again.user_attrs[CONFIG_ATTR] == config.to_dict()
    assert study.study_name == "s"


def test_open_study_refuses_a_different_config_and_writes_nothing(storage_url):
    storage = open_storage(storage_url)
    open_study(storage, "s", config_from_dict(TINY))
    before = optuna.load_study(study_name="s", storage=storage_url).user_attrs
    with pytest.raises(ConfigError, match=r"created with a different config \(distill.temperature: 9.0 -> 4.0\)"):
        open_study(storage, "s", config_from_dict(TINY | {"distill": {"withheld_classes": [3], "temperature": 4}}))
    assert optuna.load_study(study_name="s", storage=storage_url).user_attrs == before
    # only the number of trials may change between runs
    open_study(storage, "s", config_from_dict(TINY | {"n_trials": 9}))


def test_open_study_refuses_a_study_not_made_by_sweetspot(storage_url):
    optuna.create_study(study_name="foreign", storage=storage_url)
    with pytest.raises(StorageError, match="not created by sweetspot"):
        open_study(open_storage(storage_url), "foreign", config_from_dict(TINY))


def test_load_study_picks_the_only_study_or_asks_for_a_name(storage_url):
    storage = open_storage(storage_url)
    open_study(storage, "a", config_from_dict(TINY))
    assert load_study(storage, None)[0].study_name == "a"
    open_study(storage, "b", config_from_dict(TINY))
    with pytest.raises(StorageError, match=r"name the study to use \(studies in this storage: a, b\)"):
        load_study(storage, None)
    with pytest.raises(StorageError, match="no study named 'c'"):
        load_study(storage, "c")
    assert load_study(storage, "b")[1] == config_from_dict(TINY)
