"""The one root of every error yuedu raises on purpose, and its four kinds.

Each layer raises its own specific errors (an ingest problem names the file and field, a counter
refusal names the request); they all descend from one of the kinds below, so the command line maps
them to an exit code and the HTTP API to a status and body in one place each
(``serving.cli.CLI`` and ``serving.errors``), and callers that only care about the kind catch that.

The kinds also inherit the builtin exception they refine (``ValueError``, ``LookupError``), so code
that catches the builtin keeps working.

| kind | meaning | CLI exit | HTTP |
|---|---|---|---|
| :class:`InvalidInput` | the input is wrong: a file, row, field, option or config value | 2 | 422 |
| :class:`NotFound` | something named does not exist: a reader, title, request, round, path | 2 | 404 |
| :class:`Conflict` | the input is fine but the state refuses it: a transition, a duplicate, a spent budget | 2 | 409 |
| :class:`Unavailable` | a dependency is missing or not ready: a model, Java/Spark, a database | 3 | 503 |

Anything else that escapes is a bug: the CLI shows its traceback, the API answers 500 with a body
that leaks nothing and logs it.
"""

from __future__ import annotations


class YueduError(Exception):
    """Root of the errors yuedu raises on purpose. ``str(error)`` is one line a person can act on."""

    #: Process exit code when the command line stops on this error.
    exit_code: int = 2
    #: HTTP status when the API answers with this error.
    http_status: int = 500
    #: Machine-readable code in the API's error body.
    code: str = "error"


class InvalidInput(YueduError, ValueError):
    """The input is wrong (which file, row, field or option, and why)."""

    http_status = 422
    code = "invalid_request"


class NotFound(YueduError, LookupError):
    """Something the caller named does not exist."""

    http_status = 404
    code = "not_found"

    def __str__(self) -> str:
        # LookupError subclasses such as KeyError quote their argument; a message should read as one.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class Conflict(YueduError):
    """The input is well formed but the current state refuses it."""

    http_status = 409
    code = "conflict"


class Unavailable(YueduError):
    """A dependency (model, engine, database) is missing or not ready; trying later may work."""

    exit_code = 3
    http_status = 503
    code = "unavailable"
