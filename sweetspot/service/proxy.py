"""Many workers through Optuna's gRPC storage proxy: one process holds the database connections.

``sweetspot storage-proxy --storage URL`` serves a study's storage over gRPC
(``optuna.storages.run_grpc_proxy_server``'s servicer), and a worker given ``--storage
grpc://host:port`` talks to it through ``GrpcStorageProxy``. Three things sweetspot needs beyond
Optuna's proxy, each small:

* the queue: the storage behind the proxy is sweetspot's QueueStorage, whose "no queued trial left"
  crosses the wire as OUT_OF_RANGE and becomes QueueEmpty again in the worker;
* heartbeats: Optuna's proxy has none. A proxied worker beats by setting a trial system attribute
  (``HEARTBEAT_KEY``), which the proxy writes into the heartbeat table instead, as a direct worker
  would;
* recovery: the proxy itself fails and re-queues stale trials of every study it serves
  (recovery.py), every heartbeat interval, since its workers cannot reach the heartbeat table;
* retired artifacts: a worker asks the proxy (``FORGET_KEY``) to delete a finished trial's record
  of a file that retention deleted (disk.py), which Optuna's API refuses to change.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import optuna
from optuna.storages import GrpcStorageProxy
from optuna.trial import FrozenTrial

from sweetspot.service.optuna_internals import (
    FORGET_KEY,
    QueueEmpty,
    QueueStorage,
    beat_or_log,
    experimental,
    forget_record,
    proxy_api,
)
from sweetspot.service.recovery import recover_stale
from sweetspot.service.retry import STORAGE_ERRORS, first_line
from sweetspot.service.retrying_storage import RetryingStorage

log = logging.getLogger("sweetspot.service.workers")
OptunaStorageProxyService, api_pb2, api_pb2_grpc, BaseHeartbeat = proxy_api()
HEARTBEAT_KEY = "sweetspot:heartbeat"  # a proxied worker's beat; the proxy records it as a heartbeat


class QueueService(OptunaStorageProxyService):
    """Optuna's proxy servicer, with the queue's end and heartbeats carried across."""

    def __init__(self, storage: QueueStorage, cached: optuna.storages.BaseStorage) -> None:
        super().__init__(cached)
        self.queue = storage
        self.cached = cached

    def CreateNewTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return super().CreateNewTrial(request, context)
        except QueueEmpty:
            context.abort(code=grpc.StatusCode.OUT_OF_RANGE, details="no queued trial left")

    def SetTrialSystemAttribute(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.key == HEARTBEAT_KEY:
            self.queue.record_heartbeat(request.trial_id)
            return api_pb2.SetTrialSystemAttributeReply()
        if request.key == FORGET_KEY:
            artifact_id = json.loads(request.value)
            forget_record(self.queue, self.cached, request.trial_id, artifact_id)
            return api_pb2.SetTrialSystemAttributeReply()
        return super().SetTrialSystemAttribute(request, context)


class QueueProxy(GrpcStorageProxy, BaseHeartbeat):
    """A worker's storage behind ``sweetspot storage-proxy``: the queue and heartbeats as a
    direct worker has them; stale trials are the proxy's to recover."""

    def __init__(self, *, host: str, port: int, heartbeat_interval: int | None = None) -> None:
        with experimental():
            super().__init__(host=host, port=port)
        self.heartbeat_interval = heartbeat_interval

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        try:
            return super().create_new_trial(study_id, template_trial)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise QueueEmpty from exc
            raise

    def record_heartbeat(self, trial_id: int) -> None:
        beat_or_log(lambda trial: self.set_trial_system_attr(trial, HEARTBEAT_KEY, time.time()), trial_id)

    def forget_artifact(self, trial_id: int, artifact_id: str) -> None:
        """optuna_internals.forget_artifact through the proxy, which deletes the record."""
        self.set_trial_system_attr(trial_id, FORGET_KEY, artifact_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []  # the proxy recovers stale trials (serve)

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None


def serve(storage: RetryingStorage | QueueStorage, host: str, port: int, stop: threading.Event,
          threads: int = 32) -> None:
    """Serve ``storage`` on host:port until ``stop`` is set, recovering stale trials of every study
    every heartbeat interval."""
    _check_free(host, port)  # before gRPC tries: its own failure is a C-level log line, not an exception
    # Optuna's trial cache, as load_study puts in front of a database (Optuna's docs ask for it here):
    # without it every GetTrials read the whole study, and taking a trial grew dearer with each one finished.
    # RetryingStorage holds it, and rides out the database's dropped connections for every worker at once.
    cached = storage if isinstance(storage, RetryingStorage) else RetryingStorage(storage)
    storage = cached.backend
    server = grpc.server(ThreadPoolExecutor(max_workers=threads))
    api_pb2_grpc.add_StorageServiceServicer_to_server(QueueService(storage, cached), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # gRPC's "Failed to bind"
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (in use, or not an address of this machine)")
    server.start()
    try:
        while not stop.wait(storage.heartbeat_interval or 10):
            _recover_all(cached)
    finally:
        server.stop(grace=2).wait()


def _check_free(host: str, port: int) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc


def _recover_all(storage: optuna.storages.BaseStorage) -> None:
    """One round of recovery over every study; a study deleted meanwhile is skipped, and a database
    that is restarting is tried again next round: nothing here may stop the proxy."""
    try:
        names = [summary.study_name for summary in storage.get_all_studies()]
    except STORAGE_ERRORS as exc:
        log.warning("stale-trial check failed (%s)", first_line(exc))
        return
    for name in names:
        try:
            recover_stale(optuna.load_study(study_name=name, storage=storage))
        except KeyError:
            continue  # deleted since it was listed
        except STORAGE_ERRORS as exc:
            log.warning("stale-trial check of %r failed (%s)", name, first_line(exc))
