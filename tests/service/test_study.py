import optuna
import pytest

from sweetspot.config import config_from_dict
from sweetspot.errors import ConfigError, StorageError
from sweetspot.service.study import CONFIG_ATTR, load_study, mask_url, open_storage, open_study, resolve_storage_url
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
    assert again.metric_names == ["student_val_acc", "missing_class_recall"]
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


def _nth_statement(k: int):
    """A ``when`` for breaking_new_engines: the k-th statement (from 0) run inside the block."""
    count = [0]

    def when(statement, parameters):
        count[0] += 1
        return count[0] == k + 1

    return when


def _statements(step) -> int:
    """How many statements ``step()`` runs on the database."""
    import sqlalchemy.engine
    import sqlalchemy.event

    seen = []

    def count(*args):
        seen.append(1)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    try:
        step()
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    return len(seen)


def test_opening_rides_out_a_connection_dropped_at_any_statement(postgres_url, study_name, quick_retries):
    """A worker that starts while the server drops connections (the soak's terminations caught
    two workers opening the storage, and both died of it) opens the storage and the study anyway:
    the connection is dropped in turn before each statement that opening runs."""
    from tests.conftest import breaking_new_engines

    config = config_from_dict(TINY)
    open_storage(postgres_url)  # a fresh database's first opening also creates the schema: count a later one
    opening = _statements(lambda: open_storage(postgres_url))
    assert opening > 0
    for k in range(opening):
        with breaking_new_engines(_nth_statement(k)) as left:
            open_storage(postgres_url)
        assert left == [0], k  # the break happened, and opening survived it

    storage = open_storage(postgres_url)

    def create():
        open_study(storage, study_name, config)

    def check_created():
        stored = optuna.load_study(study_name=study_name, storage=storage)
        assert stored.user_attrs[CONFIG_ATTR] == config.to_dict()
        assert stored.metric_names == ["student_val_acc", "missing_class_recall"]

    creating = _statements(create)
    check_created()
    for k in range(creating):
        optuna.delete_study(study_name=study_name, storage=storage)
        with breaking_new_engines(_nth_statement(k)) as left:
            create()
        assert left == [0], k
        check_created()

    for step in (lambda: open_study(storage, study_name, config), lambda: load_study(storage, study_name)):
        for k in range(_statements(step)):
            with breaking_new_engines(_nth_statement(k)) as left:
                opened = step()
            assert left == [0], k
            assert (opened if isinstance(opened, optuna.Study) else opened[0]).study_name == study_name


def test_only_a_dropped_connection_counts_as_one(postgres_url):
    """is_disconnect, on real errors: a dropped connection (also behind Optuna's StorageInternalError)
    is tried again; a server that is not there is reported at once."""
    import sqlalchemy

    from sweetspot.service.retry import is_disconnect
    from tests.conftest import break_connection

    with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
        sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test").connect()
    assert not is_disconnect(refused.value)

    engine = sqlalchemy.create_engine(postgres_url)
    break_connection(engine, lambda statement, parameters: True)
    with pytest.raises(sqlalchemy.exc.OperationalError) as dropped, engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert is_disconnect(dropped.value)
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from dropped.value
    except optuna.exceptions.StorageInternalError as wrapped:
        assert is_disconnect(wrapped)
    engine.dispose()
