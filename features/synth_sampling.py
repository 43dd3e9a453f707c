"""Vectorised sampling primitives for the synthetic city.

Everything here works on whole numpy arrays: categorical draws by inverse CDF over cumulative
weights (``np.searchsorted``), draws restricted to a contiguous group of a sorted array (the
"prefix" trick that lets millions of loans each pick a title of their own taste cluster that was
already in the collection on the loan's day), seeded bijective pseudonyms and ISBN-13 check digits.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MASK40 = np.uint64((1 << 40) - 1)


def cumulative(weights: np.ndarray) -> np.ndarray:
    """``[0, w0, w0+w1, ...]`` as float64: the cumulative array used by :func:`draw_in_ranges`."""
    out = np.empty(len(weights) + 1, dtype=np.float64)
    out[0] = 0.0
    np.cumsum(weights, dtype=np.float64, out=out[1:])
    return out


def draw_categorical(rng: np.random.Generator, weights: np.ndarray, n: int, ordered: bool = False) -> np.ndarray:
    """``n`` indices drawn i.i.d. with probability proportional to ``weights`` (int64).

    ``ordered=True`` returns the same multiset sorted: later lookups keyed by these indices then
    walk memory in order, which is several times faster for millions of draws."""
    cum = cumulative(weights)
    u = rng.random(n) * cum[-1]
    if ordered:
        u.sort()
    return np.minimum(np.searchsorted(cum, u, side="right") - 1, len(weights) - 1)


def draw_in_ranges(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For each draw ``i``, an index in ``[lo[i], hi[i])`` with probability proportional to the
    weights behind ``cum`` (from :func:`cumulative`). Requires ``hi > lo`` element-wise."""
    a, b = cum[lo], cum[hi]
    target = a + rng.random(len(lo)) * (b - a)
    idx = np.searchsorted(cum, target, side="right") - 1
    return np.clip(idx, lo, hi - 1)


def draw_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each draw, a column of ``probs[rows[i]]`` (rows are probability vectors, e.g. a reader's
    taste mix over clusters). Uses one flat cumulative array offset by the row number, so there is
    no ``len(rows) × n_cols`` temporary."""
    n_rows, k = probs.shape
    flat = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    flat += np.arange(n_rows, dtype=np.float64)[:, None]
    flat = flat.ravel()
    target = rows.astype(np.float64) + rng.random(len(rows)) * (1.0 - 1e-9)
    idx = np.searchsorted(flat, target, side="right")
    return np.clip(idx - rows.astype(np.int64) * k, 0, k - 1)


def pseudonyms(seed: int, start: int, n: int, prefix: str = "R") -> np.ndarray:
    """``n`` distinct pseudonymous ids ``prefix + 10 hex chars`` for positions ``start..start+n``.

    A seeded bijection on 40-bit integers (odd multipliers and xor-shifts are invertible modulo
    2**40) guarantees that different positions never collide, so "unknown reader" ids for dirty
    rows can be drawn from positions past the real readers."""
    mix = np.random.default_rng([seed, 0x5EED]).integers(1, 1 << 39, size=3, dtype=np.uint64)
    mult = mix[:2] | np.uint64(1)
    x = (np.arange(start, start + n, dtype=np.uint64) + mix[2]) & _MASK40
    for m in mult:
        x = (x * m) & _MASK40
        x ^= x >> np.uint64(17)
    shifts = np.arange(36, -1, -4, dtype=np.uint64)
    nibbles = ((x[:, None] >> shifts[None, :]) & np.uint64(0xF)).astype(np.intp)
    chars = np.empty((n, 1 + len(shifts)), dtype=np.uint8)
    chars[:, 0] = ord(prefix)
    chars[:, 1:] = _HEX[nibbles]
    return chars.view(f"S{chars.shape[1]}").ravel().astype(f"U{chars.shape[1]}")


def numbered_ids(prefix: str, n: int, width: int, start: int = 0) -> pl.Series:
    """``prefix`` + zero-padded running numbers, e.g. ``T0000123`` (a polars String series)."""
    return pl.select(
        (pl.lit(prefix) + pl.int_range(start, start + n, dtype=pl.Int64).cast(pl.String).str.zfill(width)).alias("id")
    ).to_series()


def isbn13_check_digit(body12: np.ndarray) -> np.ndarray:
    """ISBN-13 check digits (int64) of 12-digit integers: weights 1,3,1,3,... from the left."""
    body = np.asarray(body12, dtype=np.int64)
    powers = 10 ** np.arange(11, -1, -1, dtype=np.int64)
    digits = (body[:, None] // powers[None, :]) % 10
    weights = np.where(np.arange(12) % 2 == 0, 1, 3)
    return (10 - (digits @ weights) % 10) % 10


def isbn13_strings(body12: np.ndarray, check: np.ndarray | None = None) -> pl.Series:
    """ISBN-13 strings from 12-digit bodies; ``check`` overrides the computed check digits (used to
    inject invalid ISBNs)."""
    body = np.asarray(body12, dtype=np.int64)
    chk = isbn13_check_digit(body) if check is None else np.asarray(check, dtype=np.int64)
    return pl.Series("isbn", body * 10 + chk, dtype=pl.Int64).cast(pl.String)


def isbn_bodies(seed: int, n: int, prefix: int = 9787) -> np.ndarray:
    """``n`` distinct 12-digit ISBN bodies under a registration prefix (978-7 = China).

    An affine map ``i -> (a*i + b) mod 10**8`` with ``gcd(a, 10) = 1`` is a bijection, so the
    bodies are unique without sampling-without-replacement."""
    if n > 10**8:
        raise ValueError(f"cannot make {n} distinct ISBNs under prefix {prefix}")
    r = np.random.default_rng([seed, 0x158])
    a = int(r.integers(10**6, 10**7)) * 10 + 3  # ends in 3: coprime with 10
    b = int(r.integers(0, 10**8))
    i = np.arange(n, dtype=np.int64)
    return prefix * 10**8 + (a * i + b) % 10**8


def lognormal_weights(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Heavy-tailed positive weights with mean about 1 (lognormal, ``mu = -sigma**2/2``)."""
    return rng.lognormal(-(sigma**2) / 2, sigma, n)
