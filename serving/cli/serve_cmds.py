"""``yuedu serve`` (the HTTP service under uvicorn) and ``yuedu token issue`` (reader / bookstore tokens)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI
    from rich.console import Console

    from serving.settings import Settings

token_app = typer.Typer(help="Access tokens for readers' apps and bookstore terminals.", no_args_is_help=True)

#: What ``yuedu demo --out DIR`` leaves behind and ``yuedu serve --demo DIR`` serves.
DEMO_LAYOUT = {"data": "data", "db": "yuedu.db", "model": "model", "tokens": "demo_tokens.json"}


def _demo_settings(demo: Path) -> tuple[dict, dict]:
    """Settings overrides for a demo directory, and its token file.

    ``yuedu demo`` writes ``demo_tokens.json`` as ``{"secret_key", "reader": {"reader_id", "token"},
    "bookstore": {"bookstore_id", "token"}, "staff": {"login", "password", "token"}, "admin": {"token"}}``;
    the service signs with that key and accepts that staff login, so the printed tokens work. When the
    file is absent (a hand-made directory) one is written in the same form. The clock is the demo's
    (``serving.cli.demo.DEMO_NOW``), inside the sample city's last budget month.
    """
    import polars as pl

    from serving.cli.demo import DEMO_NOW
    from serving.security import issue_token

    data = demo / DEMO_LAYOUT["data"]
    tokens_path = demo / DEMO_LAYOUT["tokens"]
    info = json.loads(tokens_path.read_text()) if tokens_path.exists() else {}
    if "secret_key" not in info:
        key = os.environ.get("YUEDU_SECRET_KEY") or secrets.token_hex(32)
        reader = pl.read_parquet(data / "readers.parquet", columns=["reader_id"])["reader_id"].sort()[0]
        store = pl.read_parquet(data / "bookstores.parquet", columns=["bookstore_id"])["bookstore_id"].sort()[0]
        ttl = 30 * 24 * 3600
        password = secrets.token_urlsafe(9)
        info = {
            "secret_key": key,
            "reader": {"reader_id": reader, "token": issue_token("reader", reader, key, ttl)},
            "bookstore": {"bookstore_id": store, "token": issue_token("bookstore", store, key, ttl)},
            "staff": {"login": "staff", "password": password, "token": issue_token("staff", "staff", key, ttl)},
            "admin": {"token": issue_token("admin", "admin", key, ttl)},
        }
        tokens_path.write_text(json.dumps(info, indent=2))
        tokens_path.chmod(0o600)
    overrides = {
        "data_dir": data,
        "db_url": f"sqlite:///{(demo / DEMO_LAYOUT['db']).resolve()}",
        "model_dir": demo / DEMO_LAYOUT["model"],
        "secret_key": info["secret_key"],
        "today": DEMO_NOW.date().isoformat(),
    }
    staff = info.get("staff") or {}
    if staff.get("login") and staff.get("password") and not os.environ.get("YUEDU_STAFF_USERS"):
        overrides["staff_users"] = f"{staff['login']}:{staff['password']}"
    return overrides, info


def _serve_overrides(console: Console, options: dict[str, object], demo: Path | None) -> tuple[dict[str, object], dict]:
    """Settings overrides from the ``serve`` options (a demo directory's first, explicit options win),
    and the demo's token file (empty without ``--demo``). Exits 2 on contradictory or missing input."""
    if options.get("model_dir") is not None and options.get("model_alias") is not None:
        console.print("[red]--model and --alias exclude each other[/red]")
        raise typer.Exit(2)
    overrides: dict[str, object] = {}
    info: dict = {}
    if demo is not None:
        missing = [p for p in ("data", "model") if not (demo / DEMO_LAYOUT[p]).exists()]
        if missing:
            console.print(f"[red]{demo} lacks {', '.join(missing)}[/red]: build it with `make demo` first")
            raise typer.Exit(2)
        overrides, info = _demo_settings(demo)
    overrides.update({key: value for key, value in options.items() if value is not None})
    return overrides, info


def _create_app_or_exit(console: Console, settings: Settings, *, workers: int = 1) -> FastAPI | None:
    """The application for ``settings`` (None with several workers: they build their own, and this only
    prepares the database); a ledger that cannot be opened is one red line and exit code 2."""
    from sqlalchemy.exc import DBAPIError

    from serving.app import create_app

    try:
        _reset_served_model(settings, load_reference=workers > 1)
        return create_app(settings) if workers == 1 else None
    except ModuleNotFoundError as exc:
        # e.g. postgresql:// without its driver installed
        console.print(f"[red]cannot open the ledger {settings.db_url.split('@')[-1]!r}: {exc}[/red]")
        console.print("PostgreSQL needs a driver: pip install 'psycopg[binary]' and a postgresql+psycopg:// URL")
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        # e.g. a PostgreSQL server that is down or refuses the login: one line, no traceback
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        console.print(f"[red]cannot connect to the ledger {settings.db_url.split('@')[-1]!r}: {reason}[/red]")
        raise typer.Exit(2) from None


def _print_demo_credentials(console: Console, info: dict, overrides: dict[str, object]) -> None:
    """The demo's staff login (when the service accepts it) and one bearer token per role."""
    staff = (info.get("staff") or {}).get("login"), (info.get("staff") or {}).get("password")
    if all(staff) and overrides.get("staff_users"):
        console.print(f"staff page login (user / password): {staff[0]} / {staff[1]}", soft_wrap=True)
    for who in ("reader", "bookstore", "staff", "admin"):
        entry = info.get(who) or {}
        if entry.get("token"):
            subject = entry.get("reader_id") or entry.get("bookstore_id") or entry.get("login") or who
            # soft_wrap: a token broken over two lines cannot be copied
            console.print(f"{who} ({subject}): Authorization: Bearer {entry['token']}", soft_wrap=True)


def _check_serve_options(today: str | None, data: Path | None, model: Path | None) -> None:
    """Refuse bad ``serve`` options in one line before anything starts."""
    from datetime import date

    from serving.cli.errors import fail

    if today is not None:
        try:
            date.fromisoformat(today)
        except ValueError:
            fail(f"--today {today!r}: not an ISO date (YYYY-MM-DD)")
    if data is not None and not data.is_dir():
        fail(f"--data {data}: no such directory")
    if model is not None and not (model / "model.json").is_file():
        fail(f"--model {model}: not a model directory (no model.json; build one with `yuedu train`)")


def _worker_environment(settings: Settings) -> dict[str, str]:
    """``YUEDU_*`` variables that make every worker process build exactly ``settings``."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"YUEDU_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _reset_served_model(settings: Settings, *, load_reference: bool = False) -> int:
    """Start a server run on the configured model: bump the shared served-model generation with no
    model directory, so that a reload an admin asked for in an earlier run is not inherited. With
    ``load_reference`` also create the tables and load the reference data (once, before workers fork)."""
    from datetime import datetime

    from acquisition.db import init_db
    from serving.live_store import LiveStore
    from serving.state import _load_reference_data

    db = init_db(settings.db_url)
    try:
        if load_reference:
            _load_reference_data(db, Path(settings.data_dir))
        return LiveStore(db).bump_generation(None, datetime.now())
    finally:
        db.dispose()


def _serve_workers(
    console: Console,
    settings: Settings,
    info: dict,
    overrides: dict[str, object],
    host: str,
    port: int,
    log_level: str,
    workers: int,
) -> None:
    """Run ``workers`` uvicorn worker processes of one service. The database is prepared once here
    (tables, reference data, the served-model generation reset to the configured model), so the
    workers never race to create it; each worker builds its app from the environment."""
    from serving.cli.errors import fail
    from serving.workers import port_is_free, serve_workers

    if ":memory:" in settings.db_url or settings.db_url == "sqlite://":
        fail("--workers needs a database every worker can open: a SQLite file or a PostgreSQL URL")
    _create_app_or_exit(console, settings, workers=workers)
    os.environ.update(_worker_environment(settings))
    # N processes each with a BLAS / OpenMP pool as wide as the machine oversubscribe the cores (and
    # spin-waiting pools then halve the throughput): give each worker its share, unless set already
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, share)
    console.print(f"yuedu serving on http://{host}:{port} with {workers} workers (docs /docs, staff page /staff)")
    if info:
        _print_demo_credentials(console, info, overrides)
    try:
        port_is_free(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    serve_workers(workers, host, port, log_level)


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``serve`` and ``token issue`` to the ``yuedu`` app."""

    @app.command("serve")
    def serve(
        data: Path | None = typer.Option(None, "--data", help="Validated data directory (Parquet tables)."),
        db: str | None = typer.Option(
            None, "--db", help="Ledger URL: sqlite:///file.db or postgresql+psycopg://user@host/db."
        ),
        model: Path | None = typer.Option(None, "--model", help="Model directory to serve."),
        alias: str | None = typer.Option(None, "--alias", help="MLflow registry alias to serve (e.g. production)."),
        demo: Path | None = typer.Option(None, "--demo", help="Serve what `yuedu demo --out DIR` built in DIR."),
        today: str | None = typer.Option(None, "--today", help="Pretend today is this ISO date (demo data)."),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
        log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
        workers: int = typer.Option(
            1,
            "--workers",
            min=1,
            max=32,
            help="Worker processes (they share live events and reloads via the database).",
        ),
    ) -> None:
        """Start the HTTP service (OpenAPI docs at /docs, staff page at /staff)."""
        import uvicorn
        from rich.console import Console

        from serving.settings import Settings

        console = Console()
        _check_serve_options(today, data, model)
        options = {"data_dir": data, "db_url": db, "model_dir": model, "model_alias": alias, "today": today}
        overrides, info = _serve_overrides(console, options, demo)
        settings = Settings(**overrides)
        if workers > 1:
            _serve_workers(console, settings, info, overrides, host, port, log_level, workers)
            return
        application = _create_app_or_exit(console, settings)
        state = application.state.yuedu
        if state.bundle is None:
            console.print(f"[yellow]no model loaded yet[/yellow]: {state.last_reload_error}")
        console.print(f"yuedu serving on http://{host}:{port}  (docs /docs, staff page /staff)")
        if info:
            _print_demo_credentials(console, info, overrides)
        # uvicorn's own access log prints raw paths (reader ids): ours (serving.access) pseudonymises.
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)

    @token_app.command("issue")
    def issue(
        role: str = typer.Option(..., "--role", help="reader, bookstore, staff or admin."),
        subject: str = typer.Option(..., "--subject", help="Reader id, bookstore id or staff login."),
        ttl_days: float = typer.Option(30.0, "--ttl-days", help="Lifetime, days."),
        demo: Path | None = typer.Option(None, "--demo", help="Sign with the key of a demo directory."),
    ) -> None:
        """Print a signed token (signing key: YUEDU_SECRET_KEY, or the demo directory's)."""
        from serving.security import ROLES, issue_token

        if role not in ROLES:
            typer.echo(f"unknown role '{role}'; expected one of {', '.join(ROLES)}", err=True)
            raise typer.Exit(2)
        key = os.environ.get("YUEDU_SECRET_KEY")
        if demo is not None:
            key = json.loads((demo / DEMO_LAYOUT["tokens"]).read_text()).get("secret_key", key)
        if not key:
            typer.echo("set YUEDU_SECRET_KEY (the service's signing key) or pass --demo DIR", err=True)
            raise typer.Exit(2)
        typer.echo(issue_token(role, subject, key, int(ttl_days * 86400)))

    app.add_typer(token_app, name="token")
