"""The replay of recommendations in the synthetic city: physics of the carried state, and the table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.evaluation.simulation import Intents, Items, SimulationConfig, World, _serve_week, simulate


def _world(n_copies: np.ndarray) -> World:
    n_t = len(n_copies)
    return World(None, None, np.arange(3), None, n_copies, None, None, np.zeros(n_t, bool), 18.0, None, 0.0)


def _busy_max(items: Items, n_t: int) -> np.ndarray:
    """Most copies of each title out at one instant (checked at every loan start)."""
    out = np.zeros(n_t, np.int64)
    for t in range(n_t):
        mine = items.select(items.title == t)
        for b in mine.begin:
            out[t] = max(out[t], int(((mine.begin <= b) & (mine.end > b)).sum()))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), weeks=st.integers(1, 4))
def test_carried_weeks_never_lend_a_copy_twice_at_once(seed, weeks):
    rng = np.random.default_rng(seed)
    n_t = 4
    world = _world(rng.integers(1, 3, n_t))
    items = Items(
        *(np.zeros(0, np.int64 if f == "title" else float) for f in ("title", "placed", "begin", "end", "due"))
    )
    lent_total = 0
    for w in range(weeks):
        n = int(rng.integers(1, 25))
        x = Intents(rng.integers(0, 3, n), rng.integers(0, n_t, n), 7.0 * w + rng.random(n) * 7.0, rng.random(n) < 0.5)
        before = items.select(items.end > 7.0 * w)
        items, out = _serve_week(world, items, x, 7.0 * w, 7.0 * weeks, rng)
        assert len(items.title) >= len(before.title)  # what was carried stays lent
        assert (out.wait[out.lent] >= -1e-9).all()
        lent_total += int(out.lent.sum())
        assert (_busy_max(items, n_t) <= world.n_copies).all()
    assert lent_total >= 1


@pytest.mark.slow
def test_the_replay_table_on_the_small_city(small_city):
    policies = ("no lists", "today's filters", "queue-aware + exposure")
    table, info = simulate(small_city, SimulationConfig(weeks=2, policies=policies))
    rows = {r["policy"]: r for r in table.to_dicts()}
    assert set(rows) == set(policies) and info["readers"] > 1000
    assert rows["no lists"]["recommended intents"] == 0 and rows["no lists"]["all print loans"] > 0
    for r in rows.values():
        assert 0 <= r["loans served (print)"] <= r["recommended intents"]
        assert 0.0 <= r["found it gone %"] <= 100.0 and r["mean wait days"] >= 0
    assert rows["today's filters"]["borrowable ≤7 d %"] == pytest.approx(100.0)
    qa = rows["queue-aware + exposure"]
    assert qa["recommended intents"] > 0 and 0 < qa["ndcg@10"] <= 1
