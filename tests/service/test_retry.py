"""retry.py: the one policy for lost database connections."""

import optuna
import pytest

from sweetspot.errors import StorageError
from sweetspot.service.retry import Retry


def test_retry_rides_out_a_lost_connection_but_not_forever():
    calls = []

    def flaky(value):
        calls.append(value)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("server closed the connection unexpectedly")
        return value

    assert Retry(attempts=5, pause=0.01).call(flaky, 7) == 7 and calls == [7, 7, 7]

    def always_down():
        calls.append("down")
        raise optuna.exceptions.StorageInternalError("down")

    # the last error as it is, so that an outer loop (a worker's) may retry the whole step
    with pytest.raises(optuna.exceptions.StorageInternalError):
        Retry(attempts=2, pause=0.01).call(always_down)
    assert calls.count("down") == 2


def test_retry_leaves_other_errors_alone():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug, not a connection")

    with pytest.raises(ValueError):
        Retry(attempts=5, pause=0.01).call(broken)
    assert calls == [1]


def test_give_up_names_the_storage_and_keeps_the_cause():
    policy = Retry(attempts=2, pause=0.01)
    error = optuna.exceptions.StorageInternalError("could not connect to server")
    policy.give_up(1, error)  # waits, does not raise
    with pytest.raises(StorageError, match="database unreachable after 2 tries: could not connect to server") as caught:
        policy.give_up(2, error)
    assert caught.value.__cause__ is error


def test_a_storage_proxy_error_is_its_code_and_first_line_of_details():
    import grpc

    from sweetspot.service.retry import first_line

    class Unavailable(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "failed to connect to all addresses\nmore"

    assert first_line(Unavailable()) == "storage proxy: UNAVAILABLE: failed to connect to all addresses"


def test_first_line_of_optunas_commit_error_is_the_drivers(postgres_url):
    """Optuna wraps a dropped connection as "An exception is raised during the commit ... e.g.
    exceeding max length" (and, after its own retry of a query, as SQLAlchemy's PendingRollbackError):
    the line shown is the driver's."""
    import sqlalchemy

    from sweetspot.service.retry import first_line
    from tests.conftest import break_connection

    engine = sqlalchemy.create_engine(postgres_url)
    break_connection(engine, lambda statement, parameters: True)
    try:
        with engine.connect() as connection:
            try:
                connection.exec_driver_sql("SELECT 1")
            except sqlalchemy.exc.OperationalError:
                connection.exec_driver_sql("SELECT 2")  # as Optuna's _get_trials does: PendingRollbackError
    except sqlalchemy.exc.PendingRollbackError as pending:
        try:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from pending
        except optuna.exceptions.StorageInternalError as wrapped:
            assert first_line(wrapped) == "the connection is closed"
    else:
        pytest.fail("the second statement should have met the invalidated connection")
    engine.dispose()
    assert first_line(optuna.exceptions.StorageInternalError("no cause\nmore")) == "no cause"
