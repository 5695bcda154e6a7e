"""The storage every sweetspot process talks to: Optuna's, with a dropped connection ridden out in one place.

``RetryingStorage`` delegates every call of Optuna's storage interface to the storage underneath
(Optuna's cache in front of sweetspot's QueueStorage, or a storage-proxy client) and tries again,
under the one policy (retry.py), every call that is safe to repeat: reads, and writes that set a value
(a second try writes the same value). The few calls that are not safe to repeat pass through once
and keep their explicit handling:

* ``create_new_study``: ``service.study.open_study`` finds the study a lost answer created;
* ``create_new_trial``: ``service.study.queue_trials`` counts its own queued trials by a token;
* ``set_trial_state_values``: QueueStorage retries it, and knows a first try's commit when it sees it
  (``optuna_internals.QueueStorage``); taking a queued trial must not be retried blindly either;
* ``delete_study``; heartbeats (``record_heartbeat``: the next beat tries again) and the stale check.

Anything else (QueueStorage's ``claim``, the engine, a proxy client's ``forget_artifact``) is read
from the storage underneath as it is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import optuna

from sweetspot.service.optuna_internals import BaseHeartbeat, cached
from sweetspot.service.retry import STORAGE_RETRY, Retry

NOT_REPEATED = frozenset({
    "create_new_study", "create_new_trial", "set_trial_state_values", "delete_study",
    "record_heartbeat", "_get_stale_trial_ids",
})


class RetryingStorage(optuna.storages.BaseStorage, BaseHeartbeat):
    """``storage`` (under Optuna's cache, if it is a database) with every call safe to repeat retried."""

    def __init__(self, storage: optuna.storages.BaseStorage, retry: Retry = STORAGE_RETRY) -> None:
        self.backend = storage  # QueueStorage, or a storage-proxy client
        self.inner = cached(storage)
        self.retry = retry

    def __getattr__(self, name: str) -> Any:
        """What Optuna's interface does not name: from the cache layer, else from the storage itself."""
        if name in ("backend", "inner", "retry"):  # not set yet (copying, unpickling)
            raise AttributeError(name)
        try:
            return getattr(self.inner, name)
        except AttributeError:
            return getattr(self.backend, name)

    # BaseHeartbeat's interface, for Optuna's heartbeat thread and stale check
    def get_heartbeat_interval(self) -> int | None:
        return self.backend.get_heartbeat_interval() if isinstance(self.backend, BaseHeartbeat) else None

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, Any], None] | None:
        return self.backend.get_heartbeat_stale_trial_callback() if isinstance(self.backend, BaseHeartbeat) else None

    def get_failed_trial_callback(self) -> Callable[[optuna.Study, Any], None] | None:
        return self.backend.get_failed_trial_callback() if isinstance(self.backend, BaseHeartbeat) else None


def _delegate(name: str) -> Callable[..., Any]:
    """The method ``name`` of Optuna's storage interface, passed to the storage underneath, retried
    unless it is NOT_REPEATED."""

    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        call = getattr(self.inner, name)
        return call(*args, **kwargs) if name in NOT_REPEATED else self.retry.call(call, *args, **kwargs)

    return functools.wraps(getattr(optuna.storages.BaseStorage, name, None) or getattr(BaseHeartbeat, name))(method)


INTERFACE = sorted(
    name for base in (optuna.storages.BaseStorage, BaseHeartbeat) for name, member in inspect.getmembers(base)
    if inspect.isfunction(member) and (not name.startswith("__")) and name not in RetryingStorage.__dict__
)
for _name in INTERFACE:
    setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()
