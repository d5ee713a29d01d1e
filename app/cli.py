"""`aggregator` — serve, migrate, create-user, worker."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aggregator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP and WebSocket API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (default: WORKERS)")

    commands.add_parser("migrate", help="apply pending database migrations")

    create_user = commands.add_parser("create-user", help="create a user (e.g. the first admin)")
    create_user.add_argument("email")
    create_user.add_argument("--role", choices=["admin", "editor", "viewer"], default="admin")
    create_user.add_argument("--full-name", default="")
    create_user.add_argument("--password", help="default: AGGREGATOR_PASSWORD or a prompt")

    commands.add_parser("worker", help="run background jobs (ARQ; scaled mode only)")

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"aggregator: invalid settings: {exc}", file=sys.stderr)
        return 2
    handlers = {
        "serve": _serve,
        "migrate": _migrate,
        "create-user": _create_user,
        "worker": _worker,
    }
    return handlers[args.command](settings, args)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from storage.db import migrate_db

    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    asyncio.run(migrate_db(settings.database_url))
    print(f"migrations applied to {_safe_url(settings.database_url)}")
    return 0


def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    from app.auth.passwords import hash_password
    from app.auth.service import create_user, normalise_email
    from app.core.errors import Conflict
    from storage.db import close_db, init_db
    from storage.models import Role

    password = args.password or os.environ.get("AGGREGATOR_PASSWORD") or getpass.getpass()
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 2

    async def run() -> int:
        await init_db(settings.database_url)
        try:
            await create_user(
                normalise_email(args.email),
                await hash_password(password),
                args.full_name,
                Role(args.role),
            )
        except Conflict as exc:
            print(exc.detail, file=sys.stderr)
            return 1
        finally:
            await close_db()
        print(f"created {args.role} {args.email}")
        return 0

    return asyncio.run(run())


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.HOST
    port = args.port or settings.PORT
    workers = args.workers or settings.WORKERS
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        _prepare_multiprocess_metrics()
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.main import create_app

    _print_welcome(host, port)
    loader = AppLoader(factory=create_app)
    app = loader.load()
    if workers > 1:
        app.prepare(host=host, port=port, workers=workers, access_log=settings.ACCESS_LOG)
        Sanic.serve(primary=app, app_loader=loader)
    else:
        app.prepare(host=host, port=port, single_process=True, access_log=settings.ACCESS_LOG)
        Sanic.serve_single(primary=app)
    return 0


def _prepare_multiprocess_metrics() -> None:
    """prometheus_client reads this before any metric exists, i.e. before app import."""
    directory = Path(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        or Path(tempfile.gettempdir()) / f"aggregator-metrics-{os.getpid()}"
    )
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _print_welcome(host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    print(
        f"\nData Aggregator on {base}  (API docs: {base}/docs)\n"
        "First time? Register the first user — it becomes the admin:\n"
        f"  curl -s -X POST {base}/api/v1/auth/register -H 'content-type: application/json' \\\n"
        '       -d \'{"email": "admin@example.com", "password": "change-me-now"}\'\n'
        "Then log in for a token:\n"
        f"  curl -s -X POST {base}/api/v1/auth/login -H 'content-type: application/json' \\\n"
        '       -d \'{"email": "admin@example.com", "password": "change-me-now"}\'\n',
        flush=True,
    )


def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    if not settings.REDIS_URL:
        print(
            "REDIS_URL is not set: in embedded mode the server runs background jobs itself; "
            "no separate worker is needed."
        )
        return 0
    from actors.jobs.arq_queue import run_worker

    run_worker(settings)
    return 0


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    raise SystemExit(main())
