"""One policy for riding out a lost database connection, used by trials, workers and the supervisor.

A server restart or a dropped connection surfaces through Optuna's storage as one of STORAGE_ERRORS;
the connection pool (``pool_pre_ping``) replaces the connection, so the same call usually succeeds a
moment later. A storage that stays down for the whole policy is a StorageError, with its cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import optuna
import sqlalchemy.exc

from sweetspot.errors import StorageError

T = TypeVar("T")
# what a lost or dropped database connection raises through Optuna's storage, or through the gRPC
# storage proxy (a proxy that is restarting, or whose own database call failed)
STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.DBAPIError, grpc.RpcError)


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only: gRPC's code and details, or the database driver's
    error (SQLAlchemy keeps it in ``orig``) wherever it is in the chain: Optuna's StorageInternalError
    says only that "an exception is raised during the commit, e.g. exceeding max length"."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        details = (exc.details() or "").strip().splitlines()
        return f"storage proxy: {exc.code().name}: {details[0] if details else 'no details'}"
    driver = next((e for e in _chain(exc) if isinstance(e, sqlalchemy.exc.DBAPIError)), exc)
    return (str(getattr(driver, "orig", None) or driver).strip().splitlines() or [type(driver).__name__])[0]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors it was raised from or while handling (a short chain; bounded against a cycle)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


@dataclass(frozen=True)
class Retry:
    """``attempts`` tries in all, pausing ``pause`` x the number of failures so far between them
    (1 + 2 + 3 + 4 + 5 = 15 s of waiting by default: long enough for a pooled connection to be
    replaced, short enough that a database that is really gone is reported)."""

    attempts: int = 6
    pause: float = 1.0

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, tried again after each storage error; the last error is raised
        as it is once the attempts run out, so that an outer loop may retry a larger step."""
        return self.call_if(lambda exc: isinstance(exc, STORAGE_ERRORS), fn, *args, **kwargs)

    def call_if(self, retryable: Callable[[Exception], bool], fn: Callable[..., T], /, *args: Any,
                **kwargs: Any) -> T:
        """``call``, tried again only after an error for which ``retryable`` holds."""
        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not retryable(exc):
                    raise
                failures += 1
                if failures >= self.attempts:
                    raise
                self.wait(failures)

    def wait(self, failures: int) -> None:
        time.sleep(self.pause * failures)

    def give_up(self, failures: int, exc: BaseException) -> None:
        """For a loop that retries a whole step itself (a worker's trial): raise StorageError
        once ``failures`` in a row reach the attempts, else wait."""
        if failures >= self.attempts:
            raise StorageError(f"database unreachable after {failures} tries: {first_line(exc)}") from exc
        self.wait(failures)


STORAGE_RETRY = Retry()


def with_retries(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` under the default policy."""
    return STORAGE_RETRY.call(fn, *args, **kwargs)


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is a connection that the server dropped
    (SQLAlchemy marks it ``connection_invalidated``), as opposed to a wrong host, password or database."""
    return any(getattr(e, "connection_invalidated", False) for e in _chain(exc))


def through_disconnects(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` under the default policy, tried again only after a dropped
    connection: for opening a storage, where a wrong URL must be reported at once, not after 15 s,
    but a worker that starts while the server drops connections must not die of it."""
    return STORAGE_RETRY.call_if(_dropped_while_opening, fn, *args, **kwargs)


def _dropped_while_opening(exc: Exception) -> bool:
    """A dropped connection among what opening a storage raises: SQLAlchemy's errors and Optuna's."""
    opening_errors = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
    return isinstance(exc, opening_errors) and is_disconnect(exc)
