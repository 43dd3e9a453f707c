"""The shared ``yuedu acquisition`` command group.

Counter commands (``counter_cmds``) and round-ranking commands (``acquisition_cmds``) both add to
:data:`acquisition_app`; whichever module registers first attaches it to the root app, once.
"""

from __future__ import annotations

import typer

acquisition_app = typer.Typer(
    help="'You choose, I buy': counter decisions, reservations, acquisition rounds of online requests.",
    no_args_is_help=True,
)


def ensure_registered(app: typer.Typer) -> typer.Typer:
    """Attach :data:`acquisition_app` to ``app`` as ``acquisition`` unless already attached; return it."""
    if not any(g.typer_instance is acquisition_app for g in app.registered_groups):
        app.add_typer(acquisition_app, name="acquisition")
    return acquisition_app
