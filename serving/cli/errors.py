"""How the command line reports an error: one line on stderr, ``error: <message>``, and an exit code.

Commands raise a :class:`features.errors.YueduError` (their own or :func:`fail`'s); the root command
group (:class:`ErrorMappingGroup`) turns it into that line and the error's ``exit_code`` in one place.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from typer.core import TyperGroup

from features.errors import InvalidInput, YueduError


def error_line(exc: BaseException) -> str:
    """The one-line form of an error, with newlines folded so it stays one line."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"error: {message}"


def fail(message: str, exit_code: int = 2) -> NoReturn:
    """Stop the command with ``error: message`` and ``exit_code`` (2: bad input, the default)."""
    exc = InvalidInput(message)
    exc.exit_code = exit_code
    raise exc


def positive_numbers(option: str, text: str) -> tuple[float, ...]:
    """``--option 1,0.5,0.3`` as numbers; a clear error (exit 2) unless at least one, all positive."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"{option} must be comma-separated numbers, not {text!r}")
    if not values or min(values) <= 0:
        fail(f"{option} needs positive numbers, got {text!r}")
    return values


class ErrorMappingGroup(TyperGroup):
    """The root ``yuedu`` group: every :class:`YueduError` below it becomes one line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except YueduError as exc:
            typer.echo(error_line(exc), err=True)
            raise typer.Exit(exc.exit_code) from None
