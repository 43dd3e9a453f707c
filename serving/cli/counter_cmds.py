"""``yuedu acquisition decide | checkout | cancel | expire | load``: the bookstore counter from a shell.

Library imports happen inside the commands so that ``yuedu --help`` stays instant.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.errors import fail

DB_HELP = "Ledger database URL (SQLAlchemy), or a path taken as a SQLite file."
POLICY_HELP = "Programme policy TOML (default: the shipped acquisition/default_policy.toml)."


def _open(db_url: str, policy_path: Path | None, data: Path | None, *, load: bool):
    """Policy, database and (with ``data``) holdings; loads reference data when asked or when empty."""
    from sqlalchemy import func, select

    from acquisition.db import ReaderRow, init_db, load_data_dir
    from acquisition.funds import policy_lines
    from acquisition.holdings import Holdings
    from acquisition.policy import PolicyError, load_policy

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        fail(str(exc))
    db = init_db(db_url)
    holdings = Holdings()
    if data is not None:
        try:
            with db.session_scope() as s:
                empty = not s.scalar(select(func.count()).select_from(ReaderRow))
            if load or empty:
                load_data_dir(db, data, budgets=policy_lines(policy))
            holdings = Holdings.from_data_dir(data)
        except FileNotFoundError as exc:
            fail(str(exc))
    return policy, db, holdings


def load_cmd(
    data: Path = typer.Option(..., "--data", help="Data directory (features.schema tables)."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
) -> None:
    """Load readers, bookstores and budget lines (policy's, else the data's) into the ledger."""
    _open(db, policy, data, load=True)
    typer.echo(f"loaded {data} into {db}")


def decide_cmd(
    reader: str = typer.Option(..., "--reader", help="Reader card id."),
    isbn: str = typer.Option(..., "--isbn", help="ISBN as scanned."),
    price: float = typer.Option(..., "--price", help="Price, yuan."),
    bookstore: str = typer.Option(..., "--bookstore", help="Bookstore code."),
    data: Path | None = typer.Option(None, "--data", help="Data directory (holdings; loaded if the ledger is empty)."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    title: str | None = typer.Option(None, "--title"),
    author: str | None = typer.Option(None, "--author"),
    pub_year: int | None = typer.Option(None, "--pub-year", help="Publication year."),
    clc_class: str | None = typer.Option(None, "--clc", help="CLC class, e.g. I247."),
    category: str = typer.Option("general", "--category", help="general, textbook, comic, ..."),
    channel: str = typer.Option("counter", "--channel", help="counter or online."),
    key: str | None = typer.Option(None, "--key", help="Idempotency key (default: a new one)."),
    at: datetime | None = typer.Option(
        None, "--at", help="Decide as of this time (the operator's clock for a replay; default now)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Decide one "you choose, I buy" request at once and print the decision."""
    import uuid

    from pydantic import ValidationError
    from rich.console import Console

    from acquisition.counter import CounterService, PurchaseRequestIn

    pol, database, holdings = _open(db, policy, data, load=False)
    try:
        request = PurchaseRequestIn(
            reader_id=reader, bookstore_id=bookstore, isbn=isbn, price=price, title=title, author=author,
            pub_year=pub_year, clc_class=clc_class, category=category, channel=channel,
        )  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"request: {'.'.join(map(str, err['loc']))}: {err['msg']}")
    # the operator's --at is the service clock (as a replay's is); a request's own time never decides
    clock = (lambda: at) if at is not None else datetime.now
    service = CounterService(database, pol, holdings, clock=clock)
    decision = service.decide(request, key or uuid.uuid4().hex, actor="cli")
    if as_json:
        typer.echo(json.dumps(decision.model_dump(), ensure_ascii=False))
        return
    console = Console()
    colour = "green" if decision.eligible else "red"
    console.print(f"[bold {colour}]{'APPROVED' if decision.eligible else 'DECLINED'}[/] request {decision.request_id}")
    if decision.reason_codes:
        console.print("reasons: " + ", ".join(decision.reason_codes))
    console.print(decision.message)
    if decision.budget_reservation_id:
        console.print(f"reservation: {decision.budget_reservation_id}")


def _transition(name: str, request_id: str, db: str, policy: Path | None, at: datetime | None) -> None:
    from acquisition.counter import CounterService
    from acquisition.holdings import Holdings

    pol, database, _ = _open(db, policy, None, load=False)
    # a refusal (acquisition.errors.CounterError) stops the command with exit code 1 (serving.cli.errors)
    getattr(CounterService(database, pol, Holdings()), name)(request_id, actor="cli", now=at)
    typer.echo(f"{name}: {request_id} done")


def checkout_cmd(
    request_id: str = typer.Argument(..., help="Request id from the decision."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    at: datetime | None = typer.Option(None, "--at", help="Time of the checkout (default now)."),
) -> None:
    """The reader leaves with the book: confirm the reservation (money becomes committed)."""
    _transition("checkout", request_id, db, policy, at)


def cancel_cmd(
    request_id: str = typer.Argument(..., help="Request id from the decision."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    at: datetime | None = typer.Option(None, "--at", help="Time of the cancellation (default now)."),
) -> None:
    """Cancel a reserved or pending request (reserved money is released)."""
    _transition("cancel", request_id, db, policy, at)


def expire_cmd(
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    at: datetime | None = typer.Option(None, "--at", help="Expire reservations timed out by this time (default now)."),
) -> None:
    """Release every reservation whose timeout has passed."""
    from acquisition.counter import CounterService
    from acquisition.holdings import Holdings

    pol, database, _ = _open(db, policy, None, load=False)
    n = CounterService(database, pol, Holdings()).expire_reservations(at, actor="cli")
    typer.echo(f"released {n} expired reservations")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the counter commands to the shared ``acquisition`` group."""
    group = ensure_registered(app)
    group.command("load")(load_cmd)
    group.command("decide")(decide_cmd)
    group.command("checkout")(checkout_cmd)
    group.command("cancel")(cancel_cmd)
    group.command("expire")(expire_cmd)
