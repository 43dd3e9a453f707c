"""Select request lines to buy within a budget: a mixed-integer program, a greedy and an FCFS baseline.

One binary ``x_j`` per request line ``j``. The MILP maximises ``sum_j value_j x_j`` (value = the
first-year loans the line's copy adds, :func:`acquisition.value.line_values`: lines of one ISBN are its
copy 1, 2, 3... in arrival order, each at its marginal value) subject to

* **copy slots**: lines of an ISBN (numbered cheapest first, :func:`copy_order`) are its copy
  slots 1, 2, 3..., each valued at that copy's marginal loans; continuous ``y_j`` fill them, at most
  as many as the copies bought (``sum y - sum x <= 0`` per ISBN), so the
  objective equals :func:`acquisition.value.portfolio_loans`, the score the backtest grades;

* **budget**: ``sum_j price_j x_j <= budget`` (yuan);
* **district budget lines**: ``spend_d <= line_d`` yuan (the period's budget line of each district);
* **district minimum shares**: ``spend_d >= min_share_d * budget`` (a floor so that no district is left
  behind, DOMAIN.md §1 "equalisation");
* **class caps**: ``spend_c <= cap_share_c * budget`` per CLC top class;
* **bookstore caps**: ``spend_b <= cap_b`` yuan per bookstore;
* **reader caps**: at most ``k`` lines per reader in one batch;
* **copies-per-title caps**: at most ``c`` copies of one ISBN per batch;
* **equalisation bands**: spend per registered reader of each district within ``±band`` of the city
  mean. Writing ``S = sum_j price_j x_j`` and ``w_d = readers_d / readers_total`` the band is the pair of
  linear rows ``spend_d - (1 + band) w_d S <= u_d`` and ``spend_d - (1 - band) w_d S >= -l_d``.
  In ``"hard"`` mode the slacks ``u_d, l_d`` are fixed at 0; in ``"soft"`` mode (default) they are
  continuous and cost ``penalty`` value units per yuan, with the penalty set above the best value per
  yuan of any line so that the solver only leaves the band when the request pool makes it impossible
  (a district with too few requests); ``"off"`` drops the rows.

All constraint matrices are assembled as ``scipy.sparse`` matrices from integer group codes in one
shot; there is no Python loop over lines. The greedy (value / price order) and FCFS (arrival order)
baselines honour the budget and every *upper* cap (class, bookstore, reader, title) with a vectorised
multi-pass prefix rule; they ignore floors and equalisation, which is exactly what they lack.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

_log = logging.getLogger(__name__)

EqualisationMode = Literal["off", "soft", "hard"]


class InfeasibleSelection(ValueError):
    """The constraints admit no selection. ``family`` names the constraint family, ``detail`` says by
    how much (e.g. "district minimum shares sum to 120% of budget")."""

    def __init__(self, family: str, detail: str) -> None:
        self.family = family
        self.detail = detail
        super().__init__(f"infeasible selection ({family}): {detail}")


@dataclass
class SelectionProblem:
    """One batch of request lines and the programme constraints to select them under.

    Arrays have one entry per line; group arrays hold labels (strings), coded internally.
    """

    #: Value of buying each line (predicted loans x gap multiplier; loans in the next year).
    value: np.ndarray
    #: Price of each line, yuan (> 0).
    price: np.ndarray
    #: Total budget of the batch, yuan.
    budget: float
    #: District of each line (the requester's home district).
    district: np.ndarray
    #: CLC top class of each line ("" when unknown).
    clc_top: np.ndarray
    #: Bookstore of each line.
    bookstore: np.ndarray
    #: Requesting reader of each line (pseudonymous id).
    reader: np.ndarray
    #: ISBN of each line.
    isbn: np.ndarray
    #: Arrival time of each line (any sortable numbers, e.g. epoch microseconds) for FCFS.
    arrival: np.ndarray | None = None
    #: Minimum share of the budget per district (0..1), e.g. {"Yushu": 0.05}.
    district_min_share: dict[str, float] = field(default_factory=dict)
    #: Maximum share of the budget per CLC top class (0..1); key "*" applies to every class.
    class_cap_share: dict[str, float] = field(default_factory=dict)
    #: Maximum spend per bookstore, yuan; key "*" applies to every bookstore.
    bookstore_cap: dict[str, float] = field(default_factory=dict)
    #: Budget line per district, yuan (a district without a line: "*" or no cap).
    district_budget: dict[str, float] = field(default_factory=dict)
    #: Maximum lines per reader in the batch (None = no cap).
    reader_cap: int | None = None
    #: Maximum copies of one ISBN in the batch (None = no cap).
    title_cap: int | None = None
    #: Registered readers per district, for equalisation (district -> count).
    district_readers: dict[str, int] = field(default_factory=dict)
    #: Equalisation band around the city mean spend per registered reader (0.10 = ±10%).
    equalisation_band: float = 0.10
    #: How the band is enforced: "soft" (penalised slack), "hard" (constraint) or "off".
    equalisation: EqualisationMode = "soft"
    #: Soft-mode penalty, value units per yuan outside the band; None = 2 x the best value/price.
    equalisation_penalty: float | None = None
    #: Lines of one ISBN are its copy slots 1, 2, 3... (cheapest first), each valued at that copy's
    #: marginal loans: n copies of an ISBN are worth its first n slots, whichever lines carry them.
    ordered_copies: bool = True

    def __post_init__(self) -> None:
        self.value = np.asarray(self.value, dtype=np.float64)
        self.price = np.asarray(self.price, dtype=np.float64)
        n = len(self.value)
        for name in ("price", "district", "clc_top", "bookstore", "reader", "isbn"):
            arr = np.asarray(getattr(self, name))
            if len(arr) != n:
                raise ValueError(f"SelectionProblem.{name}: {len(arr)} entries, expected {n} (one per line)")
            setattr(self, name, arr)
        if self.arrival is None:
            self.arrival = np.arange(n)
        if n and not np.all(np.isfinite(self.value)):
            bad = int(np.flatnonzero(~np.isfinite(self.value))[0])
            raise ValueError(f"SelectionProblem.value: line {bad} is not finite ({self.value[bad]})")
        if n and (not np.all(np.isfinite(self.price)) or self.price.min() <= 0):
            bad = int(np.flatnonzero(~(np.isfinite(self.price) & (self.price > 0)))[0])
            raise ValueError(f"SelectionProblem.price: line {bad} has price {self.price[bad]} (must be > 0 yuan)")
        if not np.isfinite(self.budget) or self.budget < 0:
            raise ValueError(f"SelectionProblem.budget: {self.budget} (must be a finite amount >= 0 yuan)")

    @property
    def n(self) -> int:
        return len(self.value)


@dataclass
class Selection:
    """The outcome of one selection method."""

    method: str
    #: Boolean mask over lines: bought or not.
    selected: np.ndarray
    #: Sum of values of the selected lines.
    value: float
    #: Sum of prices of the selected lines, yuan.
    spend: float
    #: Wall time of the method, seconds.
    seconds: float
    #: Solver status text (MILP) or "ok".
    status: str = "ok"
    #: Relative MIP gap reached (MILP only).
    mip_gap: float | None = None
    #: Constraint families the selection violates (baselines do not enforce floors/bands).
    violations: list[str] = field(default_factory=list)


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (0..G-1) and the sorted distinct labels of a label array."""
    uniq, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    return codes.astype(np.int64), uniq


def _group_matrix(codes: np.ndarray, n_groups: int, weights: np.ndarray) -> sp.csr_matrix:
    """G x n matrix with ``weights[j]`` at (codes[j], j)."""
    n = len(codes)
    return sp.csr_matrix((weights, (codes, np.arange(n))), shape=(n_groups, n))


def _caps_for(labels: np.ndarray, caps: dict[str, float]) -> np.ndarray:
    """Per-label cap from a dict with an optional "*" default (inf when absent)."""
    default = caps.get("*", np.inf)
    return np.array([caps.get(str(lab), default) for lab in labels], dtype=np.float64)


@dataclass
class _Rows:
    """Constraint rows of the upper-cap families shared by MILP and the baselines."""

    names: list[str] = field(default_factory=list)
    matrices: list[sp.csr_matrix] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def add(self, name: str, matrix: sp.csr_matrix, upper: np.ndarray, labels: np.ndarray) -> None:
        self.names.append(name)
        self.matrices.append(matrix)
        self.upper.append(upper)
        self.labels.append(labels)

    def add_groups(
        self, name: str, groups: np.ndarray, weights: np.ndarray, upper: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        """One row per distinct label of ``groups``: sum of ``weights`` over its lines <= ``upper(labels)``."""
        codes, uniq = _codes(groups)
        self.add(name, _group_matrix(codes, len(uniq), weights), upper(uniq), uniq)


def _upper_cap_rows(p: SelectionProblem) -> _Rows:
    rows = _Rows()
    ones = np.ones(p.n)
    rows.add("budget", sp.csr_matrix(p.price.reshape(1, -1)), np.array([p.budget]), np.array(["total"]))
    if p.district_budget:
        rows.add_groups("district budget", p.district, p.price, lambda u: _caps_for(u, p.district_budget))
    if p.class_cap_share:
        rows.add_groups("class cap", p.clc_top, p.price, lambda u: _caps_for(u, p.class_cap_share) * p.budget)
    if p.bookstore_cap:
        rows.add_groups("bookstore cap", p.bookstore, p.price, lambda u: _caps_for(u, p.bookstore_cap))
    if p.reader_cap is not None:
        rows.add_groups("reader cap", p.reader, ones, lambda u: np.full(len(u), float(p.reader_cap)))
    if p.title_cap is not None:
        rows.add_groups("copies per title", p.isbn, ones, lambda u: np.full(len(u), float(p.title_cap)))
    return rows


def copy_order(isbn: np.ndarray, price: np.ndarray, arrival: np.ndarray) -> np.ndarray:
    """Lines sorted by ISBN, then price, then arrival: the order in which lines of one ISBN are its
    copy 1, 2, 3... (ranking values each line at the marginal loans of its place in this order)."""
    return np.lexsort((np.asarray(arrival), np.asarray(price), np.asarray(isbn).astype(str)))


def _copy_rank(p: SelectionProblem) -> np.ndarray:
    """Each line's place among the lines of its ISBN in :func:`copy_order` (0 = copy 1)."""
    order = copy_order(p.isbn, p.price, p.arrival)
    isbn = p.isbn.astype(str)[order]
    first = np.r_[True, isbn[1:] != isbn[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(p.n), 0))
    rank = np.empty(p.n, dtype=np.int64)
    rank[order] = np.arange(p.n) - start
    return rank


def copies_value(p: SelectionProblem, x: np.ndarray) -> float:
    """Value of a selection when lines of one ISBN are copy slots (``ordered_copies``): the n copies
    bought of an ISBN are worth its first n slot values, whichever of its lines were bought."""
    x = np.asarray(x, dtype=bool)
    if not p.ordered_copies or p.n == 0:
        return float(p.value[x].sum())
    _, code = np.unique(p.isbn.astype(str), return_inverse=True)
    bought = np.bincount(code, weights=x.astype(np.float64))
    return float(p.value[_copy_rank(p) < bought[code]].sum())


def _slot_rows(p: SelectionProblem) -> sp.csr_matrix | None:
    """Rows ``sum_{j in ISBN} y_j - sum_{j in ISBN} x_j <= 0`` over columns ``[x, y]``: the copy slots
    an ISBN fills (``y``, valued at the marginal loans of copy 1, 2, 3...) are at most the copies
    bought. With values decreasing along the slots the solver fills them in order, so the objective
    is the portfolio score whichever lines carry the copies (None when unordered)."""
    if not p.ordered_copies or p.n == 0:
        return None
    _, code = np.unique(p.isbn.astype(str), return_inverse=True)
    cols = np.arange(p.n)
    data = np.r_[-np.ones(p.n), np.ones(p.n)]
    return sp.csr_matrix((data, (np.r_[code, code], np.r_[cols, cols + p.n])), shape=(code.max() + 1, 2 * p.n))


def _floor_rows(p: SelectionProblem) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None:
    """District floor rows (matrix, lower bounds yuan, district labels) or None."""
    if not p.district_min_share:
        return None
    codes, uniq = _codes(p.district)
    names = np.array(sorted(p.district_min_share))
    known = np.isin(names, uniq)
    full_codes = np.searchsorted(uniq, names[known])
    mat = _group_matrix(codes, len(uniq), p.price)[full_codes]
    lower = np.array([p.district_min_share[d] for d in names[known]]) * p.budget
    return mat.tocsr(), lower, names[known]


def _band_rows(p: SelectionProblem) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray] | None:
    """Equalisation pieces: the k x n district spend matrix, reader weights ``w_d`` and districts."""
    if p.equalisation == "off" or not p.district_readers or p.n == 0:
        return None
    # Only districts with lines in this batch can be equalised: a district that asked for nothing
    # would otherwise make every purchase elsewhere "over its share" (a batch of one district's
    # requests then bought nothing at all, whatever the budget).
    asked = set(map(str, p.district))
    dists = np.array(sorted(d for d, r in p.district_readers.items() if r > 0 and d in asked))
    if len(dists) < 2:
        return None
    readers = np.array([p.district_readers[d] for d in dists], dtype=np.float64)
    line_d = np.searchsorted(dists, p.district.astype(str))
    in_band = (line_d < len(dists)) & (dists[np.minimum(line_d, len(dists) - 1)] == p.district.astype(str))
    idx = np.flatnonzero(in_band)
    spend = sp.csr_matrix((p.price[in_band], (line_d[in_band], idx)), shape=(len(dists), p.n))
    return spend, readers / readers.sum(), dists


def check_feasibility(p: SelectionProblem) -> None:
    """Checks that are cheap before solving; raises :class:`InfeasibleSelection` with the family and
    the amount by which it fails."""
    if not p.district_min_share:
        return
    total_share = sum(p.district_min_share.values())
    if total_share > 1.0 + 1e-9:
        raise InfeasibleSelection(
            "district minimum shares", f"district minimum shares sum to {total_share:.0%} of budget"
        )
    floors = _floor_rows(p)
    missing = sorted(set(p.district_min_share) - set(map(str, p.district)))
    positive_missing = [d for d in missing if p.district_min_share[d] > 0]
    if positive_missing:
        d = positive_missing[0]
        raise InfeasibleSelection(
            "district minimum shares",
            f"district {d} must get {p.district_min_share[d] * p.budget:.2f} yuan but has no request lines",
        )
    if floors is None:
        return
    mat, lower, names = floors
    available = np.asarray(mat.sum(axis=1)).ravel()
    short = available < lower - 1e-6
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise InfeasibleSelection(
            "district minimum shares",
            f"district {names[i]} must get {lower[i]:.2f} yuan but its lines total only {available[i]:.2f} yuan "
            f"(short by {lower[i] - available[i]:.2f})",
        )


def _evaluate(p: SelectionProblem, x: np.ndarray, method: str, seconds: float, **kw) -> Selection:
    x = x.astype(bool)
    return Selection(
        method=method,
        selected=x,
        value=copies_value(p, x),
        spend=float(p.price[x].sum()),
        seconds=seconds,
        violations=violations(p, x),
        **kw,
    )


def violations(p: SelectionProblem, x: np.ndarray, tol: float = 1e-6) -> list[str]:
    """Human-readable list of constraint families a selection violates (empty when it satisfies all,
    with equalisation checked only in "hard" mode)."""
    xf = np.asarray(x, dtype=np.float64)
    out: list[str] = []
    rows = _upper_cap_rows(p)
    for name, mat, upper, labels in zip(rows.names, rows.matrices, rows.upper, rows.labels, strict=True):
        lhs = mat @ xf
        over = lhs > upper + tol * np.maximum(1.0, np.abs(upper))
        if over.any():
            i = int(np.flatnonzero(over)[0])
            out.append(f"{name}: {labels[i]} at {lhs[i]:.2f} > {upper[i]:.2f}")
    floors = _floor_rows(p)
    if floors is not None:
        mat, lower, names = floors
        lhs = mat @ xf
        under = lhs < lower - tol * np.maximum(1.0, lower)
        if under.any():
            i = int(np.flatnonzero(under)[0])
            out.append(f"district minimum share: {names[i]} at {lhs[i]:.2f} < {lower[i]:.2f}")
    if p.equalisation == "hard":
        bands = _band_rows(p)
        if bands is not None:
            spend, w, dists = bands
            total = float(p.price @ xf)
            up = spend @ xf - (1 + p.equalisation_band) * w * total
            lo = spend @ xf - (1 - p.equalisation_band) * w * total
            bad = (up > tol * p.budget + 1e-6) | (lo < -tol * p.budget - 1e-6)
            if bad.any():
                out.append(f"equalisation band: district {dists[int(np.flatnonzero(bad)[0])]} outside ±band")
    return out


def _prefix_select(p: SelectionProblem, order: np.ndarray) -> np.ndarray:
    """Walk lines in ``order`` taking each that still fits every upper cap (vectorised passes).

    Each pass keeps only the lines that fit on their own, then accepts those whose running totals
    (over the pass's candidates, in order) stay within every remaining cap; the first candidate
    always fits, so each pass makes progress. Accepted sums never exceed the running totals, so no
    cap is ever broken.
    """
    rows = _upper_cap_rows(p)
    remaining = [u.astype(np.float64).copy() for u in rows.upper]
    # per family, each line's group code and its weight in that family
    fam_codes: list[np.ndarray] = []
    fam_weights: list[np.ndarray] = []
    for mat in rows.matrices:
        coo = mat.tocoo()
        codes = np.zeros(p.n, dtype=np.int64)
        weights = np.zeros(p.n)
        codes[coo.col] = coo.row
        weights[coo.col] = coo.data
        fam_codes.append(codes)
        fam_weights.append(weights)
    chosen = np.zeros(p.n, dtype=bool)
    open_lines = np.asarray(order, dtype=np.int64)
    while len(open_lines):
        fits = np.ones(len(open_lines), dtype=bool)
        for codes, weights, rem in zip(fam_codes, fam_weights, remaining, strict=True):
            fits &= weights[open_lines] <= rem[codes[open_lines]] + 1e-9
        cand = open_lines[fits]
        if not len(cand):
            break
        accept = np.ones(len(cand), dtype=bool)
        for codes, weights, rem in zip(fam_codes, fam_weights, remaining, strict=True):
            g = codes[cand]
            running = (
                pl.DataFrame({"g": g, "w": weights[cand]})
                .select(pl.col("w").cum_sum().over("g"))
                .to_series()
                .to_numpy()
            )
            accept &= running <= rem[g] + 1e-9
        took = cand[accept]
        chosen[took] = True
        for codes, weights, rem in zip(fam_codes, fam_weights, remaining, strict=True):
            np.subtract.at(rem, codes[took], weights[took])
        open_lines = cand[~accept]
    return chosen


def select_greedy(p: SelectionProblem) -> Selection:
    """Greedy baseline: lines in decreasing value / price, each taken if it still fits."""
    t0 = time.perf_counter()
    ratio = p.value / p.price
    if p.ordered_copies and p.n:
        # a later copy never ranks above an earlier one of its ISBN: cumulative minimum in arrival order
        pred_order = copy_order(p.isbn, p.price, p.arrival)
        ranked = pl.DataFrame({"g": p.isbn.astype(str)[pred_order], "r": ratio[pred_order]})
        ratio = ratio.copy()
        ratio[pred_order] = ranked.select(pl.col("r").cum_min().over("g")).to_series().to_numpy()
    order = np.lexsort((p.arrival, -ratio))
    order = order[p.value[order] > 0]  # a line worth nothing is never worth money
    x = _prefix_select(p, order) if p.n else np.zeros(0, dtype=bool)
    return _evaluate(p, x, "greedy", time.perf_counter() - t0)


def select_fcfs(p: SelectionProblem) -> Selection:
    """First come, first served: lines in arrival order, each approved while the money lasts."""
    t0 = time.perf_counter()
    order = np.argsort(p.arrival, kind="stable")
    x = _prefix_select(p, order) if p.n else np.zeros(0, dtype=bool)
    return _evaluate(p, x, "fcfs", time.perf_counter() - t0)


@dataclass
class _Program:
    """The MILP in HiGHS form: objective, constraints, bounds, integrality and each row's family."""

    c: np.ndarray
    constraints: LinearConstraint
    bounds: Bounds
    integrality: np.ndarray
    families: list[str]


def _row_blocks(p: SelectionProblem) -> tuple[list[sp.csr_matrix], list[np.ndarray], list[np.ndarray], list[str]]:
    """Rows over the line columns: binding upper caps, district floors."""
    rows = _upper_cap_rows(p)
    blocks: list[sp.csr_matrix] = []
    lbs: list[np.ndarray] = []
    ubs: list[np.ndarray] = []
    families: list[str] = []
    for name, mat, upper in zip(rows.names, rows.matrices, rows.upper, strict=True):
        # a group whose lines together fit under its cap can never bind: drop the row (most readers
        # have one or two lines, so this removes most reader- and title-cap rows)
        binding = np.asarray(mat.sum(axis=1)).ravel() > upper + 1e-9
        if name == "budget" or binding.any():
            keep = np.flatnonzero(binding | (name == "budget"))
            blocks.append(mat[keep])
            lbs.append(np.full(len(keep), -np.inf))
            ubs.append(upper[keep])
            families += [name] * len(keep)
    floors = _floor_rows(p)
    if floors is not None:
        mat, lower, _ = floors
        blocks.append(mat)
        lbs.append(lower)
        ubs.append(np.full(len(lower), np.inf))
        families += ["district minimum shares"] * len(lower)
    return blocks, lbs, ubs, families


def _program(p: SelectionProblem) -> _Program:
    """Assemble the MILP. Extra continuous columns after x: S (total spend) and, in soft mode, slacks
    u_d, l_d. S keeps the band rows sparse: each row touches its district's lines and S, not every line."""
    n = p.n
    blocks, lbs, ubs, families = _row_blocks(p)
    n_extra, c_extra, extra_ub = 0, np.zeros(0), np.zeros(0)
    bands = _band_rows(p)
    band_blocks: list[sp.csr_matrix] = []
    if bands is not None:
        spend, w, dists = bands
        k = len(dists)
        soft = p.equalisation == "soft"
        n_extra = 1 + (2 * k if soft else 0)
        up = [spend, -(1 + p.equalisation_band) * sp.csr_matrix(w.reshape(-1, 1))]
        lo = [spend, -(1 - p.equalisation_band) * sp.csr_matrix(w.reshape(-1, 1))]
        if soft:
            eye, zero = sp.identity(k, format="csr"), sp.csr_matrix((k, k))
            up += [-eye, zero]
            lo += [zero, eye]
        define_s = [sp.csr_matrix(p.price.reshape(1, -1)), sp.csr_matrix(np.array([[-1.0]]))]
        if soft:
            define_s.append(sp.csr_matrix((1, 2 * k)))
        band_blocks = [sp.hstack(define_s), sp.hstack(up), sp.hstack(lo)]
        lbs += [np.zeros(1), np.full(k, -np.inf), np.zeros(k)]
        ubs += [np.zeros(1), np.zeros(k), np.full(k, np.inf)]
        families += ["total spend"] + ["equalisation band"] * (2 * k)
        c_extra, extra_ub = np.zeros(n_extra), np.full(n_extra, np.inf)
        if soft:
            penalty = p.equalisation_penalty
            if penalty is None:
                penalty = 2.0 * float(np.max(np.maximum(p.value, 0) / p.price)) + 1e-9
            c_extra[1:] = penalty
    a = sp.vstack(blocks, format="csr")
    if n_extra:
        a = sp.hstack([a, sp.csr_matrix((a.shape[0], n_extra))], format="csr")
        a = sp.vstack([a, *band_blocks], format="csr")
    slots = _slot_rows(p)
    n_y = 0 if slots is None else n
    c_x = -p.value if slots is None else np.zeros(n)
    if slots is not None:  # columns [x, y, extras]: y_j = copy slot of line j's place, valued at value_j
        a = sp.hstack([a[:, :n], sp.csr_matrix((a.shape[0], n)), a[:, n:]], format="csr")
        a = sp.vstack([a, sp.hstack([slots, sp.csr_matrix((slots.shape[0], n_extra))])], format="csr")
        lbs.append(np.full(slots.shape[0], -np.inf))
        ubs.append(np.zeros(slots.shape[0]))
        families += ["copy slots"] * slots.shape[0]
    return _Program(
        c=np.concatenate([c_x, -p.value[:n_y], c_extra]),
        constraints=LinearConstraint(a, np.concatenate(lbs), np.concatenate(ubs)),
        bounds=Bounds(np.zeros(n + n_y + n_extra), np.concatenate([np.ones(n + n_y), extra_ub])),
        integrality=np.concatenate([np.ones(n), np.zeros(n_y + n_extra)]),
        families=families,
    )


def _solve(prog: _Program, n: int, options: dict, lp_fix: bool, t0: float):
    """HiGHS on the program, by LP-and-fix when ``lp_fix``: ``(result, LP bound or None)``."""
    lp_bound: float | None = None
    if lp_fix:
        lp = milp(
            prog.c,
            constraints=prog.constraints,
            integrality=np.zeros_like(prog.integrality),
            bounds=prog.bounds,
            options=options,
        )
        if lp.x is not None:
            lp_bound = -float(lp.fun)
            lo, hi = prog.bounds.lb.copy(), prog.bounds.ub.copy()
            xl = lp.x[:n]
            whole, none = xl > 1 - 1e-7, xl < 1e-7
            lo[:n][whole], hi[:n][none] = 1.0, 0.0
            _log.info("milp lp-and-fix: %d of %d lines left fractional", int(n - whole.sum() - none.sum()), n)
            left = max(1.0, options["time_limit"] - (time.perf_counter() - t0))
            res = milp(
                prog.c,
                constraints=prog.constraints,
                integrality=prog.integrality,
                bounds=Bounds(lo, hi),
                options=options | {"time_limit": left},
            )
            if res.x is not None:
                return res, lp_bound
    res = milp(prog.c, constraints=prog.constraints, integrality=prog.integrality, bounds=prog.bounds, options=options)
    return res, lp_bound


def select_milp(
    p: SelectionProblem,
    *,
    time_limit: float = 60.0,
    mip_rel_gap: float = 1e-3,
    method: str = "milp",
    lp_fix_above: int = 500,
) -> Selection:
    """Solve the selection MILP with HiGHS (``scipy.optimize.milp``).

    ``time_limit`` in seconds, ``mip_rel_gap`` relative optimality gap at which HiGHS stops.
    Batches larger than ``lp_fix_above`` lines are solved by *LP-and-fix*: the LP relaxation is
    solved first, lines the LP takes whole (x = 1) or rejects (x = 0) are fixed, and the MILP is
    solved over the fractional rest (usually a few hundred lines). Its LP bound is kept, so the
    reported ``mip_gap`` is against the true relaxation; if the fixed problem is infeasible the full
    MILP is solved. Raises :class:`InfeasibleSelection` when pre-checks or HiGHS prove infeasibility.
    """
    t0 = time.perf_counter()
    check_feasibility(p)
    n = p.n
    if n == 0:
        return _evaluate(p, np.zeros(0, dtype=bool), method, time.perf_counter() - t0)
    prog = _program(p)
    options = {"time_limit": time_limit, "mip_rel_gap": mip_rel_gap, "disp": False}
    res, lp_bound = _solve(prog, n, options, n > lp_fix_above, t0)
    seconds = time.perf_counter() - t0
    if res.status == 2:
        fams = sorted(set(prog.families) - {"budget"})
        raise InfeasibleSelection(
            "solver", f"HiGHS proved the constraints infeasible (families present: {', '.join(fams) or 'budget'})"
        )
    if res.x is None:
        # time limit before any integer solution: fall back to the greedy (honours the upper caps)
        _log.warning("milp: no solution within %.0fs (%s); falling back to greedy", time_limit, res.message)
        fallback = select_greedy(p)
        fallback.method, fallback.status = method, f"no MILP solution in time, greedy fallback ({res.message})"
        fallback.seconds = time.perf_counter() - t0
        return fallback
    x = res.x[:n] > 0.5
    gap = getattr(res, "mip_gap", None)
    if lp_bound is not None and lp_bound > 0:
        gap = max(0.0, (lp_bound + float(res.fun)) / lp_bound)
    _log.info("milp: %d lines, status %s, %.2fs, gap %s", n, res.status, seconds, gap)
    return _evaluate(p, x, method, seconds, status=str(res.message), mip_gap=gap)


def spend_per_reader(p: SelectionProblem, x: np.ndarray) -> pl.DataFrame:
    """Spend per registered reader by district (yuan/reader) and its deviation from the city mean (%)."""
    dists = sorted(d for d, r in p.district_readers.items() if r > 0)
    spend = (
        pl.DataFrame({"district": p.district.astype(str), "spend": np.where(x, p.price, 0.0)})
        .group_by("district")
        .agg(pl.col("spend").sum())
    )
    frame = pl.DataFrame(
        {"district": dists, "readers": [p.district_readers[d] for d in dists]},
        schema={"district": pl.String, "readers": pl.Int64},
    )
    city_mean = float(np.where(x, p.price, 0.0).sum()) / max(1, sum(p.district_readers[d] for d in dists))
    return (
        frame.join(spend, on="district", how="left")
        .with_columns(pl.col("spend").fill_null(0.0))
        .with_columns((pl.col("spend") / pl.col("readers")).alias("spend_per_reader"))
        .with_columns(
            ((pl.col("spend_per_reader") / city_mean - 1.0) * 100.0 if city_mean > 0 else pl.lit(0.0)).alias(
                "deviation_pct"
            )
        )
    )
