"""The error root: every kind maps to one exit code and one HTTP status, and keeps its builtin base."""

from __future__ import annotations

import pytest

from features.datasets import DatasetError
from features.errors import Conflict, InvalidInput, NotFound, Unavailable, YueduError
from features.ingest import IngestError, RejectedRowsError


@pytest.mark.parametrize(
    ("kind", "builtin", "exit_code", "status"),
    [
        (InvalidInput, ValueError, 2, 422),
        (NotFound, LookupError, 2, 404),
        (Conflict, YueduError, 2, 409),
        (Unavailable, YueduError, 3, 503),
    ],
)
def test_kinds(kind, builtin, exit_code, status):
    err = kind("what went wrong")
    assert isinstance(err, YueduError) and isinstance(err, builtin)
    assert (err.exit_code, err.http_status) == (exit_code, status)
    assert str(err) == "what went wrong"


def test_not_found_reads_as_a_sentence_even_as_a_key_error():
    class UnknownThing(NotFound, KeyError):
        pass

    assert str(UnknownThing("title T-1 is not in the catalogue")) == "title T-1 is not in the catalogue"


def test_features_errors_descend_from_the_root():
    assert isinstance(IngestError("loans.csv", "no header"), InvalidInput)
    assert issubclass(DatasetError, InvalidInput)
    # A strict ingest that rejected rows wrote its report: a partial result, exit code 1, not 2.
    assert RejectedRowsError.exit_code == 1 and issubclass(RejectedRowsError, InvalidInput)
