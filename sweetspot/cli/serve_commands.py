"""`sweetspot dashboard` and `sweetspot storage-proxy`: long-running servers over a storage."""

from __future__ import annotations

import argparse
import sys

from sweetspot import api
from sweetspot.cli.command import Command
from sweetspot.cli.options import FLAGS, positive_int
from sweetspot.errors import ConfigError, StorageError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class Dashboard(Command):
    name = "dashboard"
    help = "browse the studies in optuna-dashboard"
    groups = ("storage", "common")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: 127.0.0.1; optuna-dashboard has no "
                            "authentication, so 0.0.0.0 only on a trusted network)")
        parser.add_argument("--port", type=positive_int, default=8080, help="port (default: 8080)")

    def take_action(self, args: argparse.Namespace) -> int:
        import socket

        from optuna_dashboard import run_server

        from sweetspot import assembly
        from sweetspot.service.study import mask_url, study_names

        storage, url = assembly.open_storage(args.storage, FLAGS, must_exist=True)
        names = study_names(storage)
        if not names:
            raise ConfigError(f"--storage: {mask_url(url)} holds no study yet; make one with: sweetspot run")
        store = assembly.artifact_store(url, args.artifacts, FLAGS)
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            try:
                probe.bind((args.host, args.port))
            except OSError as exc:
                raise ConfigError(
                    f"--host/--port: cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port"
                ) from exc
        if args.host not in LOCAL_HOSTS:
            print(
                "warning: optuna-dashboard has no authentication; "
                f"anyone who can reach {args.host}:{args.port} can read and "
                "change these studies",
                file=sys.stderr,
            )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"optuna-dashboard for {mask_url(url)} ({len(names)} studies: {', '.join(names)})\n"
            f"open http://{shown}:{args.port}/ "
            "(Ctrl-C stops it)",
            flush=True,
        )
        assembly.quiet_optuna()
        # the database itself: optuna-dashboard upgrades an RDB storage's schema flags
        run_server(storage.backend, host=args.host, port=args.port, artifact_store=store)
        return 0


class StorageProxy(Command):
    name = "storage-proxy"
    help = "serve a storage to many workers over gRPC (Optuna's storage proxy); workers use --storage grpc://HOST:PORT"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--storage", metavar="URL",
                            help="the database to serve (default: $SWEETSPOT_STORAGE, else sqlite:///sweetspot.db)")
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: 127.0.0.1; no authentication: 0.0.0.0 only on a "
                            "trusted network)")
        parser.add_argument("--port", type=positive_int, default=13000, help="port (default: 13000)")
        parser.add_argument("--heartbeat", type=positive_int, default=api.HEARTBEAT_S, metavar="S",
                            help="how often its workers beat, and it checks for stale trials "
                            f"(default: {api.HEARTBEAT_S})")
        parser.add_argument("--grace", type=positive_int, default=api.GRACE_S, metavar="S",
                            help=f"a trial silent this long is failed and queued again (default: {api.GRACE_S})")

    def take_action(self, args: argparse.Namespace) -> int:
        import signal
        import threading

        from sweetspot import assembly
        from sweetspot.service.proxy import serve
        from sweetspot.service.study import Heartbeat, mask_url, resolve_storage_url

        url = resolve_storage_url(args.storage)
        if url.startswith("grpc://"):
            raise StorageError("--storage: a storage proxy serves a database, not another proxy")
        storage, url = assembly.open_storage(args.storage, FLAGS, heartbeat=Heartbeat(args.heartbeat, args.grace))
        assembly.quiet_optuna()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop.set())
        print(f"serving {mask_url(url)} at grpc://{args.host}:{args.port} (workers: --storage grpc://{args.host}:"
              f"{args.port}); Ctrl-C stops", flush=True)
        try:
            serve(storage, args.host, args.port, stop)
        except OSError as exc:
            raise StorageError(f"--host/--port: {exc}") from exc
        return 0
