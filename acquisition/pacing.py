"""Pacing an annual fund at the counter: a bid price per fund that keeps money for the rest of the year.

The counter answers on arrival, so it cannot rank the year. With ``[pacing] policy = "paced"`` it
prices a fund's money instead (the threshold policy of online knapsack, docs/pacing.md):

* the **plan**: the fund's monthly plan (or the programme's seasonal plan: Spring Festival, World
  Book Day in April, the summer holidays) says which share of the year's money should be used by any
  moment (:func:`plan_share`, linear within a month);
* the **dual price** (:meth:`Forecast.dual_price`): from the arrivals seen so far this year (data
  known at t only) scaled to the part of the year still to come by the same plan, the lowest loans
  per yuan at which the forecast's best remaining requests would use exactly the money left;
* the **bid price** (:func:`bid_price`): the dual price times ``exp(sensitivity x lead)``, where the
  lead is the fund's use minus its plan as a share of the year's money: a fund ahead of its plan
  raises the bar for low-value requests, one behind lowers it;
* a **month ceiling**: use never passes the plan to the end of the month by more than
  ``month_slack_pct`` of the year's money, so that every month keeps money.

A request whose expected loans per yuan reach the bid price is approved as under fcfs (the ledger
still enforces every line); one below it is declined with ``PACED_LOW_VALUE`` and told why.
Everything here is pure arithmetic on a few numbers except :class:`Pacer`, which reads the year
lines (no lock: pacing is advice on top of the ledger's guarantee, never the guarantee itself).
"""

from __future__ import annotations

import calendar
import functools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from acquisition.db import BookstoreRow, BudgetLineRow, PurchaseRequestRow, ReaderRow
from acquisition.policy import PacingConfig, Policy

if TYPE_CHECKING:  # the counter imports this module
    from acquisition.counter import PurchaseRequestIn
    from acquisition.demand import History
    from acquisition.value import Circulation

__all__ = [
    "Forecast",
    "PacingNote",
    "Pacer",
    "class_values",
    "bid_price",
    "month_end_share",
    "pace",
    "plan_share",
]

#: The decline code of a request paced out (acquisition.rules.DeclineCode.PACED_LOW_VALUE).
PACED = "PACED_LOW_VALUE"
#: Lead over plan is clipped to this share of the year's money before it scales the bar.
LEAD_CLIP = 0.5


@functools.lru_cache(maxsize=64)
def _cumulative(plan: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(share of each month, share used before each month)`` of a 12-weight plan (cached: the
    counter asks on every decision)."""
    total = float(sum(plan))
    w = tuple(float(x) / total for x in plan)
    return w, tuple(float(sum(w[:m])) for m in range(12))


def _calendar_share(plan: tuple[float, ...], at: datetime) -> float:
    """Share of the calendar year's plan used by ``at`` (linear within a month)."""
    w, before = _cumulative(plan)
    days = calendar.monthrange(at.year, at.month)[1]
    into = (at - at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)).total_seconds() / (days * 86400)
    return before[at.month - 1] + w[at.month - 1] * min(max(into, 0.0), 1.0)


def plan_share(plan: Sequence[float], at: datetime, start: datetime | None = None) -> float:
    """Share of the year's money the ``plan`` (12 weights, Jan..Dec) has used by ``at``, linear within
    a month. The year is the calendar year, or the 12 months from ``start`` (a programme year that
    begins mid-year: the calendar weights wrap around)."""
    plan = tuple(plan)
    if start is None:
        return _calendar_share(plan, at)
    done = _calendar_share(plan, at) - _calendar_share(plan, start) + (at.year - start.year)
    return float(min(max(done, 0.0), 1.0))


def month_end_share(plan: Sequence[float], at: datetime, start: datetime | None = None) -> float:
    """Share of the year's money the ``plan`` has used by the end of ``at``'s month (see :func:`plan_share`)."""
    days = calendar.monthrange(at.year, at.month)[1]
    end = at.replace(day=days, hour=23, minute=59, second=59, microsecond=0)
    return plan_share(plan, end, start)


def bid_price(dual: float, lead: float, sensitivity: float) -> float:
    """The bar in loans per yuan: ``dual x exp(sensitivity x lead)``, lead clipped to +-:data:`LEAD_CLIP`.
    Non-decreasing in ``lead`` (a fund further ahead of plan never lowers its bar)."""
    return float(dual) * math.exp(sensitivity * min(max(lead, -LEAD_CLIP), LEAD_CLIP))


@dataclass(frozen=True)
class Forecast:
    """The arrivals a fund has seen so far this year, as a forecast of the rest of it.

    ``ratio`` (expected loans per yuan) sorted best first, ``price`` (yuan) in the same order, and
    ``seen_share``: the share of the year's arrivals the plan expects by the time they were seen."""

    ratio: np.ndarray
    price: np.ndarray
    seen_share: float
    reference: float = 0.0

    @classmethod
    def from_arrivals(cls, ratio: np.ndarray, price: np.ndarray, seen_share: float, reference: float = 0.0) -> Forecast:
        order = np.argsort(-np.asarray(ratio, dtype=float), kind="stable")
        return cls(np.asarray(ratio, float)[order], np.asarray(price, float)[order], float(seen_share), reference)

    def dual_price(self, money_left: float, share_left: float) -> float:
        """The lowest loans per yuan at which the forecast remaining arrivals, best first, use
        ``money_left`` (yuan) over the ``share_left`` of the year still to come; 0 when they all fit."""
        if self.seen_share <= 1e-9 or self.ratio.size == 0:
            return self.reference
        scale = max(share_left, 0.0) / self.seen_share
        if scale <= 0:
            return 0.0
        k = int(np.searchsorted(self.spend, max(money_left, 0.0) / scale, side="right"))
        return float(self.ratio[k]) if k < self.ratio.size else 0.0

    @property
    def spend(self) -> np.ndarray:
        """Cumulative price of the arrivals, best first (computed once)."""
        cached = self.__dict__.get("_spend")
        if cached is None:
            cached = np.cumsum(self.price)
            object.__setattr__(self, "_spend", cached)
        return cached


class PacingNote(BaseModel):
    """What pacing did with a counter request (every counter decision carries one)."""

    policy: str = Field(description="fcfs or paced.")
    outcome: str = Field(
        description="fcfs (not paced), no_fund (no annual fund applies), approved (value reaches the "
        "bid price), below_bid (declined: value under the bid price), month_ceiling (declined: the "
        "month's planned share is used)."
    )
    fund_id: str | None = Field(default=None, description="The binding annual fund.")
    bid_price: float | None = Field(default=None, description="The fund's bid price, expected loans per yuan.")
    value_per_yuan: float | None = Field(default=None, description="The request's expected loans per yuan.")
    lead_pct: float | None = Field(default=None, description="Fund use minus plan, % of the year's money.")
    message: str = Field(description="The outcome in Simplified Chinese (the default language).")
    message_en: str = Field(description="The outcome in English.")

    @property
    def approved(self) -> bool:
        return self.outcome not in ("below_bid", "month_ceiling")


_TEXT = {
    "fcfs": (
        "本计划按先到先得审批，经费用完为止。",
        "This programme approves first come, first served while the money lasts.",
    ),
    "no_fund": (
        "没有适用的年度经费，按月度预算审批。",
        "No annual fund applies; the monthly budget lines decide.",
    ),
    "approved": (
        "经费按全年计划使用（{lead}），本书预计借阅价值达到当前标准，予以批准。",
        "The fund is on its plan for the year ({lead_en}); this book's expected use meets the current bar.",
    ),
    "below_bid": (
        "为保证全年（包括寒暑假和读书日）都有荐购经费，本经费目前{lead}，暂时只批准预计借阅较多"
        "或价格较低的图书。本书预计借阅较少，这次未能采购。您可以预约馆藏、选择电子书，或在下月再来荐购。",
        "To keep money for the whole year (holidays and World Book Day included) this fund, now {lead_en}, "
        "approves only books many readers are expected to borrow or that cost less. This book's expected "
        "use is below that bar today. You can place a hold, choose the e-book, or ask again next month.",
    ),
    "month_ceiling": (
        "本月计划的荐购经费已经用完，下月初会有新的经费。您可以预约馆藏、选择电子书，或在下月再来荐购。",
        "This month's planned share of the fund is used; new money opens at the start of next month. "
        "You can place a hold, choose the e-book, or ask again next month.",
    ),
}


def _lead_words(lead_pct: float | None) -> tuple[str, str]:
    if lead_pct is None:
        return "", ""
    if lead_pct > 0.5:
        return f"比计划超前 {lead_pct:.1f}%", f"{lead_pct:.1f} % of the year ahead of plan"
    if lead_pct < -0.5:
        return f"比计划落后 {-lead_pct:.1f}%", f"{-lead_pct:.1f} % of the year behind plan"
    return "与计划一致", "on plan"


def note(policy: str, outcome: str, **kw) -> PacingNote:
    """A :class:`PacingNote` with its sentences in zh-CN and en."""
    zh, en = _TEXT[outcome]
    lead, lead_en = _lead_words(kw.get("lead_pct"))
    return PacingNote(
        policy=policy, outcome=outcome, message=zh.format(lead=lead), message_en=en.format(lead_en=lead_en), **kw
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """Pacing of one request against one fund, as numbers (:func:`assess`); ``outcome`` as in :class:`PacingNote`."""

    outcome: str
    bar: float
    ratio: float
    lead: float

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


def assess(
    cfg: PacingConfig,
    plan: Sequence[float],
    *,
    budget: float,
    used: float,
    price: float,
    value: float,
    at: datetime,
    forecast: Forecast,
    start: datetime | None = None,
) -> Verdict:
    """Approve or decline one eligible request against one fund (money in any one unit, e.g. yuan).

    ``used`` is the fund's encumbered + spent money before this request, ``value`` the request's
    expected loans; the bar is the fund's :func:`bid_price` at ``at`` (``start``: the programme year's
    first day when it is not 1 January). Declined when the request would take the fund past its
    month ceiling or its loans per yuan are under the bar."""
    share = plan_share(plan, at, start)
    lead = (used / budget - share) if budget > 0 else 0.0
    bar = bid_price(forecast.dual_price(budget - used, 1.0 - share), lead, cfg.lead_sensitivity)
    ratio = value / price if price > 0 else math.inf
    ceiling = (min(month_end_share(plan, at, start), 1.0) + cfg.month_slack_pct / 100.0) * budget
    if used + price > ceiling + 1e-9:
        return Verdict("month_ceiling", bar, ratio, lead)
    return Verdict("below_bid" if ratio < bar else "approved", bar, ratio, lead)


def explain(verdict: Verdict, fund_id: str | None = None) -> PacingNote:
    """The :class:`PacingNote` of a verdict, with its sentences in zh-CN and en."""
    return note(
        "paced",
        verdict.outcome,
        fund_id=fund_id,
        bid_price=round(verdict.bar, 6),
        value_per_yuan=round(verdict.ratio, 6) if math.isfinite(verdict.ratio) else None,
        lead_pct=round(verdict.lead * 100, 2),
    )


def pace(cfg: PacingConfig, plan: Sequence[float], *, fund_id: str | None = None, **facts) -> PacingNote:
    """:func:`assess` explained (:func:`explain`)."""
    return explain(assess(cfg, plan, **facts), fund_id)


# --- the live counter's pacer ----------------------------------------------------------------------


_b, _r = BudgetLineRow, PurchaseRequestRow
_YEAR_LINES = select(
    _b.budget_id, _b.amount_fen, _b.reserved_fen + _b.committed_fen + _b.spent_fen, _b.district, _b.bookstore_id
).where(
    _b.period == bindparam("year"),
    or_(_b.bookstore_id.is_(None), _b.bookstore_id == bindparam("bookstore_id")),
    or_(_b.district.is_(None), _b.district == bindparam("district")),
    or_(_b.channel.is_(None), _b.channel == bindparam("channel")),
)
#: Counter requests decided this year: the arrivals that passed the rules are the forecast's sample.
_ARRIVALS = select(_r.price_fen, _r.clc_class, _r.eligible, _r.reason_codes).where(
    _r.channel == "counter",
    _r.requested_at >= bindparam("start"),
    _r.requested_at < bindparam("now"),
)


def class_values(
    history: History, as_of: datetime, circ: Circulation | None = None
) -> Callable[[str | None, float], float]:
    """A ``value_of`` for the live counter, cheap per request: the first-year loans one copy of a book
    would serve, from its CLC class's loans per title in the year before ``as_of`` (fine class, else
    top class, else the network's mean), through the capacity-aware queue model
    (:func:`acquisition.value.served_loans`, never above what one copy can serve). Computed once (at
    the service's start); a request is then two dictionary lookups."""
    from acquisition.demand import class_rates
    from acquisition.value import served_loans

    by_class, by_top = class_rates(history, as_of)

    def served(rates: np.ndarray) -> np.ndarray:
        return served_loans(np.nan_to_num(np.asarray(rates, dtype=float)), 1, circ)

    fine = dict(zip(by_class["clc_class"].to_list(), served(by_class["class_rate"].to_numpy()).tolist(), strict=True))
    top = dict(zip(by_top["top"].to_list(), served(by_top["top_class_rate"].to_numpy()).tolist(), strict=True))
    mean_rate = float(by_top["top_class_rate"].mean() or 0.0) if by_top.height else 0.0
    fallback = float(served(np.array([mean_rate]))[0]) or 1.0

    def value_of(clc_class: str | None, price_yuan: float) -> float:
        if not clc_class:
            return fallback
        value = fine.get(clc_class)
        if value is None:
            value = top.get(clc_class[:1])
        return value if value else fallback

    return value_of


@dataclass
class Pacer:
    """The counter's pacing of annual funds: one bid price per fund, its forecast refreshed every
    ``refresh`` from the year's arrivals in the ledger.

    ``value_of(clc_class, price_yuan)`` gives a request's expected loans (default: one loan per
    book, so the bar prefers cheaper books; a deployment passes its demand model's class figures)."""

    policy: Policy
    value_of: Callable[[str | None, float], float] = lambda clc, price: 1.0
    refresh: timedelta = timedelta(days=1)
    _cache: dict[tuple[str, int], tuple[datetime, Forecast]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cfg(self) -> PacingConfig:
        return self.policy.pacing

    def plan_of(self, fund_id: str) -> tuple[float, ...]:
        """The fund's own monthly plan where it has one, else the programme's seasonal plan."""
        for fund in self.policy.funds:
            if fund.fund_id == fund_id and fund.monthly_plan is not None:
                return fund.monthly_plan
        return self.cfg.seasonal_plan

    def check(self, s: Session, request: PurchaseRequestIn, at: datetime, district: str | None) -> PacingNote:
        """Pace one eligible counter ``request`` (:class:`acquisition.counter.PurchaseRequestIn`)
        against every annual fund it draws on (``district``: its budget district); the binding fund
        (the first that declines, else the one with the highest bar) is reported."""
        if self.cfg.policy != "paced":
            return note("fcfs", "fcfs")
        price_fen, clc_class, bookstore_id = request.price_fen, request.clc_class, request.bookstore_id
        params = {"year": str(at.year), "bookstore_id": bookstore_id, "district": district, "channel": "counter"}
        funds = s.connection().execute(_YEAR_LINES, params).all()
        if not funds:
            return note("paced", "no_fund")
        price = price_fen / 100.0
        value = self.value_of(clc_class, price)
        verdicts = [
            (
                assess(
                    self.cfg,
                    self.plan_of(fund_id),
                    budget=amount / 100.0,
                    used=used / 100.0,
                    price=price,
                    value=value,
                    at=at,
                    forecast=self._forecast(s, fund_id, f_district, f_store, at),
                ),
                fund_id,
            )
            for fund_id, amount, used, f_district, f_store in funds
        ]
        declined = [v for v in verdicts if not v[0].approved]
        return explain(*(declined[0] if declined else max(verdicts, key=lambda v: v[0].bar)))

    def _forecast(
        self, s: Session, fund_id: str, district: str | None, bookstore_id: str | None, at: datetime
    ) -> Forecast:
        key = (fund_id, at.year)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and at - hit[0] < self.refresh and at >= hit[0]:
            return hit[1]
        forecast = self.forecast_from_ledger(s, district, bookstore_id, at)
        with self._lock:
            self._cache[key] = (at, forecast)
        return forecast

    def forecast_from_ledger(
        self, s: Session, district: str | None, bookstore_id: str | None, at: datetime
    ) -> Forecast:
        """The year's eligible counter arrivals before ``at`` drawing on a fund of this scope."""
        start = at.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        stmt = _ARRIVALS
        if bookstore_id is not None:
            stmt = stmt.where(_r.bookstore_id == bookstore_id)
        if district is not None:
            home = ReaderRow if self.policy.budget_district_of == "reader" else BookstoreRow
            on = (
                _r.reader_id == ReaderRow.reader_id
                if home is ReaderRow
                else _r.bookstore_id == BookstoreRow.bookstore_id
            )
            stmt = stmt.join(home, on).where(home.district == district)
        rows = [
            (fen, clc)
            for fen, clc, ok, codes in s.connection().execute(stmt, {"start": start, "now": at})
            if ok or list(codes or ()) == [PACED]
        ]
        if (at - start).total_seconds() < self.cfg.warmup_days * 86400 or not rows:
            return Forecast(np.zeros(0), np.zeros(0), 0.0, self.cfg.reference_loans_per_yuan)
        price = np.array([r[0] for r in rows], dtype=float) / 100.0
        value = np.array([self.value_of(r[1], p) for r, p in zip(rows, price, strict=True)])
        plan = self.cfg.seasonal_plan
        return Forecast.from_arrivals(value / price, price, plan_share(plan, at), self.cfg.reference_loans_per_yuan)
