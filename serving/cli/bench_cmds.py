"""CLI commands (to be filled in by the owning layer)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add this module's commands to the ``yuedu`` app."""
