"""Errors the acquisition layer raises on purpose, each under one kind of :mod:`features.errors`.

A counter or staff operation that the ledger refuses raises one of these (a *request* that fails the
programme rules is not an error: it gets a declined :class:`~acquisition.counter.Decision`). The kind
gives the HTTP status and the CLI exit code in one place each (``serving.errors``,
``serving.cli.errors``):

| error | kind | raised when |
|---|---|---|
| :class:`RequestNotFound` | NotFound | no purchase request with this id |
| :class:`InvalidTransition` | Conflict | the lifecycle table does not allow the status change |
| :class:`ReservationExpired` | Conflict | checkout after the reservation timed out (money released) |
| :class:`IdempotencyConflict` | Conflict | an idempotency key reused for a different request |
| :class:`RequestNotReceivable` | Conflict | receiving a book whose request is not bought yet |
| :class:`RoundNotFound` | NotFound | no acquisition round with this id |
| :class:`LineNotInRound` | NotFound | a staff decision names a request outside the round |
| :class:`DecisionRefused` | Conflict | a staff decision the request's state or the budget refuses |
| :class:`InvalidPeriod` | InvalidInput | a round's budget month is not 'YYYY-MM' within 2000-01..2100-12 |
| :class:`PeriodWithoutBudget` | Conflict | a round for a month that no budget line (month or year) covers |
| :class:`FundRefused` | Conflict | a round names no fund of its year, or a budget above what the fund has free |
| :class:`BudgetInvariantError` | (a bug) | the ledger disagrees with a reservation; the transaction rolls back |
"""

from __future__ import annotations

from features.errors import Conflict, InvalidInput, NotFound, YueduError


class CounterError(YueduError):
    """Base of the refusals of a counter operation (checkout, cancel, a retried decision).

    The command line stops on them with exit code 1 (the operation was refused, the input was fine).
    """

    exit_code = 1


class RequestNotFound(CounterError, NotFound):
    """No purchase request with this id."""


class InvalidTransition(CounterError, Conflict):
    """The request or reservation is not in a state that allows the operation (the lifecycle table)."""


class ReservationExpired(CounterError, Conflict):
    """Checkout came after the reservation timed out; the money has been released."""


class IdempotencyConflict(CounterError, Conflict):
    """The idempotency key was already used for a different request."""


class RequestNotReceivable(Conflict):
    """The request is not in a state from which a book can be received (or has no ISBN or branch)."""


class RoundNotFound(NotFound):
    """No acquisition round with this id."""


class LineNotInRound(NotFound):
    """A decision names a request that is not a line of the round."""


class DecisionRefused(Conflict):
    """A staff decision cannot be applied (the request moved on, it is ineligible, or a budget line
    has no room: the message names the line)."""


class FundRefused(Conflict):
    """A round's fund is not a fund of its year, or its budget is above what the fund has free."""


class BudgetInvariantError(RuntimeError):
    """The ledger disagrees with a reservation (should never happen; the transaction is rolled back)."""


class InvalidPeriod(InvalidInput):
    """A budget month that is not ``YYYY-MM`` within the range yuedu accepts (2000-01..2100-12)."""


class PeriodWithoutBudget(Conflict):
    """A round for a month that no budget line covers: every approval in it would be refused."""
