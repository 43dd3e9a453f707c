"""``yuedu acquisition notices | mediations | place``: issue 15 §5 from a shell (deliver the readers'
notices through the policy's channel, report mediations unanswered past their promise, suggest the
branch for a returned reader-chosen copy). Thin skins over :mod:`acquisition.notices`,
:mod:`acquisition.mediation` and :mod:`acquisition.placement`; library imports inside the commands."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from serving.cli.acquisition_group import ensure_registered
from serving.cli.counter_cmds import DB_HELP, POLICY_HELP, _open

AT_HELP = "Server time to act as of (default now)."


def notices_cmd(
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    policy: Path | None = typer.Option(None, "--policy", help=POLICY_HELP),
    outbox: Path | None = typer.Option(None, "--outbox", help="Outbox file (default: the policy's [notices])."),
    limit: int = typer.Option(500, "--limit", min=1, max=100_000, help="Notices sent at most."),
    at: datetime | None = typer.Option(None, "--at", help=AT_HELP),
) -> None:
    """Render and send the queued notices to readers (zh-CN and en stored; the policy's language sent)."""
    from acquisition.notices import OutboxChannel, channel_from_policy, deliver_pending

    pol, database, _ = _open(db, policy, None, load=False)
    channel = OutboxChannel(outbox) if outbox is not None else channel_from_policy(pol.notices)
    done = deliver_pending(database, channel, now=at or datetime.now(), language=pol.notices.language, limit=limit)
    typer.echo(f"notices: {done.sent} sent, {done.failed} failed through {channel.name}")
    if done.failed:
        raise typer.Exit(1)


def mediations_cmd(
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    overdue: bool = typer.Option(False, "--overdue", help="Only those unanswered past their promise."),
    at: datetime | None = typer.Option(None, "--at", help=AT_HELP),
) -> None:
    """The mediation queue: requests awaiting staff, oldest promise first; exits 1 when any is overdue."""
    from acquisition.mediation import queue

    _, database, _ = _open(db, None, None, load=False)
    items = queue(database, at or datetime.now(), overdue_only=overdue)
    for m in items:
        late = f"OVERDUE {m.hours_late:.1f} h" if m.overdue else "on time"
        typer.echo(
            f"{m.request_id}\t{m.price_fen / 100:.2f}\t{','.join(m.reasons)}\t{m.answer_by:%Y-%m-%d %H:%M}\t{late}"
        )
    late_n = sum(m.overdue for m in items)
    typer.echo(f"{len(items)} awaiting staff, {late_n} past the promised answer time")
    if late_n:
        raise typer.Exit(1)


def place_cmd(
    request_id: str = typer.Argument(..., help="Purchase request id of the returned copy."),
    data: Path = typer.Option(..., "--data", help="Data directory (loans, holds, copies, titles, branches)."),
    db: str = typer.Option("yuedu-acquisition.db", "--db", help=DB_HELP),
    top: int = typer.Option(5, "--top", min=1, max=50, help="Branches listed."),
    at: datetime | None = typer.Option(None, "--at", help=AT_HELP),
) -> None:
    """Suggest the branch where the demand after the requester is highest (collectionHQ-style)."""
    from acquisition.placement import for_request

    _, database, _ = _open(db, None, None, load=False)
    p = for_request(database, data, request_id, at=at or datetime.now(), top=top)
    typer.echo(f"suggested branch: {p.suggested_branch or '(none)'}")
    for b in p.branches:
        typer.echo(f"{b.branch_id}\ttitle demand {b.title_demand}\tclass {b.class_loans}/{b.class_copies} copies")


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add the notice, mediation and placement commands to the shared ``acquisition`` group."""
    group = ensure_registered(app)
    group.command("notices")(notices_cmd)
    group.command("mediations")(mediations_cmd)
    group.command("place")(place_cmd)
