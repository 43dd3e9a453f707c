"""Readers of the synthetic city and their latent tastes.

Each reader has an age band, a home branch (weighted by branch footfall), a registration date, a
borrowing activity (lognormal, heavy-tailed; some cards are dormant) and a taste: a Dirichlet mix
over the taste clusters of :data:`features.synth_world.CLUSTERS` whose prior depends on the age
band. The mix is the ground truth that drives every loan, e-book event and purchase request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from features.schema import conform
from features.synth_sampling import draw_categorical, lognormal_weights, pseudonyms
from features.synth_world import AGE_BAND_SHARES, FOOTFALL, N_DAYS, START, band_priors

#: Dirichlet concentration of a reader's taste around the age band's prior: small = focused readers.
TASTE_CONCENTRATION = 1.6
#: Share of cards with no activity at all in the three years.
DORMANT_SHARE = 0.12


@dataclass
class Population:
    """Readers as aligned numpy arrays (index = reader row) plus the schema frame."""

    frame: pl.DataFrame
    band: np.ndarray  #: int index into AGE_BAND_SHARES
    child: np.ndarray  #: bool: children's card
    home: np.ndarray  #: int index into the branches frame
    reg_day: np.ndarray  #: int day of registration relative to START (negative = before)
    activity: np.ndarray  #: float relative loan intensity (0 = dormant)
    ebook_affinity: np.ndarray  #: float relative e-book intensity
    taste: np.ndarray  #: (n_readers × n_clusters) float64, rows sum to 1


def build_population(rng: np.random.Generator, seed: int, n: int, branches: pl.DataFrame) -> Population:
    """``n`` readers with their latent tastes."""
    bands = list(AGE_BAND_SHARES)
    shares = np.array([s for s, _ in AGE_BAND_SHARES.values()])
    band_activity = np.array([a for _, a in AGE_BAND_SHARES.values()])
    band = draw_categorical(rng, shares, n)
    child = band <= 1

    footfall = branches["kind"].replace_strict(FOOTFALL, return_dtype=pl.Float64).to_numpy()
    home = draw_categorical(rng, footfall, n)

    # Three quarters registered before the history starts; the rest join during it.
    before = rng.random(n) < 0.75
    reg_day = np.where(before, -rng.integers(1, 365 * 12, n), rng.integers(0, N_DAYS - 30, n))
    # Children cannot have registered before they were born: cap their card age at ~6 years.
    reg_day = np.where(child & before, -rng.integers(1, 365 * 6, n), reg_day)

    activity = lognormal_weights(rng, n, 1.0) * band_activity[band]
    activity[rng.random(n) < DORMANT_SHARE] = 0.0
    # Younger adults and teens read e-books more; small children barely.
    ebook_base = np.array([0.05, 0.4, 1.2, 1.0, 0.5])[band]
    ebook_affinity = ebook_base * (rng.random(n) < 0.45) * lognormal_weights(rng, n, 0.8)

    prior = band_priors()[band] * TASTE_CONCENTRATION
    gam = rng.gamma(np.where(prior > 0, prior, 1.0)) * (prior > 0)
    taste = gam / gam.sum(axis=1, keepdims=True)

    card_type = np.select(
        [child, band == 4, rng.random(n) < 0.25],
        ["child", "senior", "credit"],
        "standard",
    )
    credit = np.clip(np.round(rng.normal(3.6, 1.0, n)), 0, 5).astype(np.int8)
    frame = pl.DataFrame(
        {
            "reader_id": pseudonyms(seed, 0, n),
            "home_branch_id": branches["branch_id"].to_numpy()[home],
            "age_band": np.array(bands)[band],
            "card_type": card_type,
            "registered_at": pl.Series(np.datetime64(START.isoformat(), "D") + reg_day).cast(pl.Date),
            "credit_level": credit,
            "blocked": (credit == 0) | (rng.random(n) < 0.01),
        }
    )
    return Population(conform(frame, "readers"), band, child, home, reg_day, activity, ebook_affinity, taste)


def registration_remap(day: np.ndarray, reg_day: np.ndarray) -> np.ndarray:
    """Squeeze event days (0..N_DAYS-1) of readers who registered during the history into the days
    after their registration, keeping the relative position (and so most of the seasonality)."""
    first = np.maximum(reg_day, 0)
    return first + (day * (N_DAYS - first) // N_DAYS)


def day_to_date(day: np.ndarray) -> pl.Series:
    """Days relative to START as a polars Date series."""
    return pl.Series(np.datetime64(START.isoformat(), "D") + day.astype("timedelta64[D]")).cast(pl.Date)
