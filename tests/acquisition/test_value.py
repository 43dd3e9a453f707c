"""The value of k copies obeys physics: capped by capacity and by demand, more copies never hurt,
each further copy adds less."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from acquisition.value import Circulation, copy_value, intent_interval, portfolio_loans, served_loans

circulations = st.builds(
    Circulation,
    days_out=st.floats(7, 60),
    turnaround_days=st.floats(0, 7),
    patience_days=st.floats(3, 120),
    dispersion=st.one_of(st.none(), st.floats(0.5, 20)),
)


@settings(max_examples=60, deadline=None)
@given(lam=st.lists(st.floats(0, 400), min_size=1, max_size=6), circ=circulations)
def test_value_is_capped_monotone_and_concave(lam, circ):
    v = copy_value(lam, max_copies=5, circ=circ)
    k = np.arange(6)
    tol = 1e-7 * (1 + np.asarray(lam)[:, None])
    assert np.all(v.served <= k * circ.capacity + tol)
    assert np.all(v.served <= np.asarray(lam)[:, None] + tol)
    marginal = v.marginal()
    assert np.all(marginal >= -tol[:, :1])
    assert np.all(np.diff(marginal, axis=1) <= tol[:, :1] + 1e-9)
    assert np.all(v.served_lo <= v.served + 1e-12) and np.all(v.served <= v.served_hi + 1e-12)
    assert np.all(v.queued >= 0) and np.all(v.queued <= np.asarray(lam)[:, None] + tol)


def test_one_copy_never_above_its_capacity_even_for_a_hot_title():
    circ = Circulation(days_out=21, turnaround_days=2)
    v = copy_value([221.8], max_copies=3, circ=circ)
    assert circ.capacity == np.float64(365 / 23)
    assert v.served[0, 1] <= circ.capacity
    # the second copy of a hot title serves nearly a full copy's worth of readers
    assert v.marginal()[0, 1] > 0.9 * circ.capacity


def test_cold_title_second_copy_adds_little():
    v = copy_value([2.0], max_copies=2)
    assert v.marginal()[0, 1] < 0.2 * v.marginal()[0, 0]


def test_known_rate_and_interval():
    known = Circulation(dispersion=None)
    assert served_loans(0.0, 3, known) == 0.0
    lo, hi = intent_interval([11.0], Circulation())
    assert lo[0] < 11 < hi[0]


def test_portfolio_counts_copies_per_isbn_above_what_is_held():
    circ = Circulation(dispersion=None)
    isbn = np.array(["a", "a", "b"])
    score = portfolio_loans(isbn, np.array([True, True, False]), {"a": 30.0, "b": 5.0}, circ=circ)
    assert np.isclose(score, served_loans(30.0, 2, circ))
    held = portfolio_loans(isbn, np.array([True, False, False]), {"a": 30.0, "b": 5.0}, held={"a": 1}, circ=circ)
    assert np.isclose(held, served_loans(30.0, 2, circ) - served_loans(30.0, 1, circ))
