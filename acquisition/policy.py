"""The "you choose, I buy" programme policy: one TOML file, typed and validated on load.

Every rule of DOMAIN.md §3 that the library may change per programme or year is a field here, with
its default and unit. :func:`load_policy` refuses a wrong file with a message naming the key::

    policy.toml: price_cap_yuan: must be > 0, got -5

Unknown keys are refused too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import logging
import math
import tomllib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from stdnum import isbn as stdnum_isbn

from features.schema import BOOK_CATEGORIES

_log = logging.getLogger(__name__)

#: The policy shipped with yuedu (DOMAIN.md §3 defaults).
DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")

Category = Literal["general", "textbook", "exam_prep", "workbook", "reference", "comic", "audio_visual"]
assert set(Category.__args__) == set(BOOK_CATEGORIES), "Category must mirror features.schema.BOOK_CATEGORIES"


#: The highest price any request may carry, yuan: far above any programme's cap, so that only
#: nonsense (a mistyped price, an overflow attempt) is refused before the rules run.
MAX_PRICE_YUAN = 100_000.0


def yuan_to_fen(yuan: float) -> int:
    """A price in yuan as integer fen, rounded half-up (``0.125`` -> 13 fen), the one conversion
    every price and budget amount goes through. Raises :class:`ValueError` for a non-finite value.

    The decimal of the float's shortest repr is rounded, so ``19.995`` is 2000 fen (not 1999, as
    ``round(19.995 * 100)`` gives).
    """
    if not math.isfinite(yuan):
        raise ValueError(f"a price must be a finite number of yuan, got {yuan}")
    return int((Decimal(repr(float(yuan))) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def check_price_fen(yuan: float) -> int:
    """A request's price as fen, or :class:`ValueError` saying why it is refused: not finite, not at
    least 1 fen after rounding (a free book would be bought outside the budget), or above
    :data:`MAX_PRICE_YUAN`."""
    fen = yuan_to_fen(yuan)
    if fen < 1:
        raise ValueError(f"the price must be at least 0.01 yuan (1 fen) after rounding to fen, got {yuan} yuan")
    if fen > yuan_to_fen(MAX_PRICE_YUAN):
        raise ValueError(f"the price must be at most {MAX_PRICE_YUAN:.0f} yuan, got {yuan} yuan")
    return fen


class PolicyError(ValueError):
    """A policy file that cannot be used: ``<file>: <key>: <reason>``."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path, self.key, self.reason = path, key, reason
        super().__init__(f"{path}: {key}: {reason}" if key else f"{path}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Blocklist(_Strict):
    """Content the programme never buys (superstition, pornography, non-compliant content...)."""

    isbns: tuple[str, ...] = Field(
        default=(), description="Blocked ISBNs (ISBN-10 or -13, hyphens allowed); stored as ISBN-13."
    )
    title_keywords: tuple[str, ...] = Field(
        default=(), description="Case-insensitive substrings; a title containing any of them is blocked."
    )

    @field_validator("isbns", mode="before")
    @classmethod
    def _normalise_isbns(cls, value: Any) -> tuple[str, ...]:
        out = []
        for raw in value or ():
            if not isinstance(raw, str) or not stdnum_isbn.is_valid(raw):
                raise ValueError(f"not a valid ISBN: {raw!r}")
            out.append(stdnum_isbn.to_isbn13(stdnum_isbn.compact(raw)))
        return tuple(out)

    @field_validator("title_keywords")
    @classmethod
    def _lower_keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k.strip() for k in value):
            raise ValueError("keywords must not be empty")
        return tuple(k.strip().casefold() for k in value)


class BudgetLineConfig(_Strict):
    """One budget line: a period x (bookstore or any) x (district or any) envelope, yuan."""

    budget_id: str = Field(min_length=1, description="Stable id of the line.")
    period: str = Field(pattern=r"^\d{4}(-\d{2})?$", description="Month 'YYYY-MM' or year 'YYYY'.")
    bookstore_id: str | None = Field(default=None, description="Bookstore, or absent for all bookstores.")
    district: str | None = Field(default=None, description="District, or absent for all districts.")
    amount_yuan: float = Field(ge=0, description="Envelope, yuan (kept as integer fen in the database).")


class FundConfig(_Strict):
    """One fund of the programme year's hierarchy (programme year -> district -> bookstore, optionally by
    channel), with its policy. It becomes one year budget line (``fund_id``) and, with a monthly plan,
    twelve month lines (``fund_id-MM``); see :mod:`acquisition.funds`."""

    fund_id: str = Field(min_length=1, max_length=60, description="Stable id of the fund (its year line's id).")
    year: int = Field(ge=2000, le=2100, description="Programme (fiscal) year.")
    parent: str | None = Field(default=None, description="The fund above this one; absent for a programme year.")
    district: str | None = Field(default=None, description="District, or absent for all districts.")
    bookstore_id: str | None = Field(default=None, description="Bookstore, or absent for all bookstores.")
    channel: Literal["counter", "online"] | None = Field(default=None, description="Channel, or absent for both.")
    amount_yuan: float = Field(ge=0, description="The fund's money for the year, yuan.")
    cap: Literal["hard", "soft"] = Field(
        default="hard", description="hard: the amount is never exceeded; soft: a target reported against."
    )
    hard_cap_yuan: float | None = Field(
        default=None, ge=0, description="Ceiling of a soft fund, yuan (default: its parent's ceiling)."
    )
    monthly_plan: tuple[float, ...] | None = Field(
        default=None, description="Twelve weights (Jan..Dec) splitting the amount into a monthly plan."
    )
    monthly: Literal["hard", "plan"] = Field(
        default="hard", description="hard: each month's share is a cap (today's monthly lines); plan: reported only."
    )
    unspent: Literal["return", "carry"] = Field(
        default="return", description="At the year close, unspent money is returned or carried to next year."
    )

    @field_validator("monthly_plan")
    @classmethod
    def _twelve_weights(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and (len(value) != 12 or min(value) < 0 or sum(value) <= 0):
            raise ValueError("must be 12 non-negative weights (January to December) with a positive sum")
        return value


#: Default seasonal weights of the programme year (January..December): Spring Festival (January or
#: February), World Book Day (23 April) and the summer holidays (July and August) draw more readers.
SEASONAL_PLAN = (9.0, 9.0, 7.0, 11.0, 8.0, 7.0, 10.0, 10.0, 7.0, 7.0, 7.0, 8.0)


class PacingConfig(_Strict):
    """How the counter spends an annual fund across the year (see docs/pacing.md)."""

    policy: Literal["fcfs", "paced"] = Field(
        default="fcfs", description="fcfs: approve while money lasts (today); paced: a bid price per fund."
    )
    seasonal_plan: tuple[float, ...] = Field(
        default=SEASONAL_PLAN,
        description="Twelve weights (Jan..Dec) of the year's spend and arrivals; a fund's own monthly_plan wins.",
    )
    lead_sensitivity: float = Field(
        default=8.0, ge=0, description="The bar is multiplied by exp(this x lead), lead = share of the year's money."
    )
    month_slack_pct: float = Field(
        default=5.0, ge=0, le=100, description="Spend never passes the plan to the month's end by more than this, %."
    )
    warmup_days: float = Field(
        default=14.0, ge=0, description="Days of arrivals observed before the forecast sets a bid price, days."
    )
    reference_loans_per_yuan: float = Field(
        default=0.0, ge=0, description="Bid price before the forecast has data, loans per yuan (0 = none)."
    )

    @field_validator("seasonal_plan")
    @classmethod
    def _twelve(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 12 or min(value) < 0 or sum(value) <= 0:
            raise ValueError("must be 12 non-negative weights (January to December) with a positive sum")
        return value


class MediationConfig(_Strict):
    """The mediation band (``[mediation]``, as Ebook Central's "mediate"): requests staff decide instead
    of the counter declining them."""

    enabled: bool = Field(default=False, description="Put band requests to staff instead of declining them.")
    band_limit_yuan: float | None = Field(
        default=None, gt=0, description="Prices above the cap up to this are mediated, yuan; absent = none."
    )
    categories: tuple[Category, ...] = Field(
        default=(), description="Excluded categories whose requests are mediated instead of declined."
    )
    answer_hours: float = Field(default=48.0, gt=0, le=24 * 60, description="Answer promised to the reader, hours.")


class AlternativesConfig(_Strict):
    """Ways to get a held book (``[alternatives]``, :mod:`acquisition.alternatives`): waits and costs."""

    pickup_days: float = Field(default=1.0, ge=0, description="A copy on the shelf is held for pick-up within, days.")
    transfer_days: float = Field(default=3.0, ge=0, description="A transfer between branches takes, days.")
    delivery_days: float = Field(default=3.0, ge=0, description="U Book to Home delivery takes, days.")
    loan_cycle_days: float = Field(
        default=25.0, gt=0, description="Mean days a copy is away per loan (keeping plus turnaround), days."
    )
    hold_horizon_days: float = Field(
        default=90.0, gt=0, description="An unfulfilled hold older than this counts as given up, days."
    )
    transfer_cost_yuan: float = Field(default=3.0, ge=0, description="The library's cost of a transfer, yuan.")
    delivery_cost_yuan: float = Field(default=8.0, ge=0, description="The library's cost of a home delivery, yuan.")
    ebook_cost_yuan: float = Field(default=0.0, ge=0, description="The library's cost of an e-book loan, yuan.")
    wait_cost_yuan_per_day: float = Field(
        default=0.5, ge=0, description="What a day of the reader's wait weighs against the library's cost, yuan."
    )


class NoticesConfig(_Strict):
    """Notices to the reader (``[notices]``, :mod:`acquisition.notices`)."""

    channel: Literal["outbox", "app", "sms", "wechat"] = Field(
        default="outbox", description="Delivery channel; outbox (a JSON-lines file) by default."
    )
    outbox_path: str = Field(default="notices-outbox.jsonl", min_length=1, description="The outbox channel's file.")
    language: Literal["zh-CN", "en"] = Field(default="zh-CN", description="Language sent to readers.")


class Policy(_Strict):
    """Eligibility rules, limits and budgets of one "you choose, I buy" programme (DOMAIN.md §3)."""

    programme: str = Field(default="you-choose-i-buy", description="Name of the programme / year.")
    # --- the book ---
    price_cap_yuan: float = Field(default=100.0, gt=0, description="Highest price accepted per book, yuan.")
    pub_year_window_years: int = Field(
        default=3, ge=0, description="Accept books with pub_year >= (year of the request - this), years."
    )
    require_pub_year: bool = Field(
        default=False, description="Decline (PUB_YEAR_UNKNOWN) when the bookstore does not report a year."
    )
    excluded_categories: tuple[Category, ...] = Field(
        default=("textbook", "exam_prep", "workbook", "reference", "audio_visual"),
        description="Book categories never bought (school textbooks, test banks, dictionaries, AV...).",
    )
    comic_cap_per_month: int = Field(
        default=2, ge=0, description="Comics/picture sets one reader may get per calendar month, books."
    )
    blocklist: Blocklist = Field(default_factory=Blocklist, description="Blocked ISBNs and title keywords.")
    # --- the reader ---
    books_per_visit: int = Field(
        default=2, ge=1, description="Books per visit (same reader, bookstore and calendar day), books."
    )
    books_per_month: int = Field(default=5, ge=1, description="Books per reader per calendar month, books.")
    books_per_year: int | None = Field(
        default=None, ge=1, description="Books per reader per calendar year, books; absent = no yearly cap."
    )
    open_books_max: int = Field(
        default=3, ge=1, description="Programme books a reader may hold unreturned at once, books."
    )
    min_credit_level: int = Field(default=1, ge=0, le=5, description="Lowest reader credit level accepted (0-5).")
    # --- the collection ---
    network_copy_threshold: int = Field(
        default=3, ge=1, description="Decline when the network already holds at least this many copies, copies."
    )
    home_branch_on_shelf_threshold: int = Field(
        default=1,
        ge=1,
        description="Decline when at least this many copies are on shelf at the reader's home branch, copies.",
    )
    # --- the transaction ---
    reservation_timeout_minutes: float = Field(
        default=30.0, gt=0, description="An unconfirmed budget reservation is released after this, minutes."
    )
    budget_district_of: Literal["bookstore", "reader"] = Field(
        default="reader",
        description="Which district's budget lines a request draws on: the bookstore's or the reader's home.",
    )
    budgets: tuple[BudgetLineConfig, ...] = Field(
        default=(), description="Budget lines; absent = take them from the data directory's budgets table."
    )
    funds: tuple[FundConfig, ...] = Field(
        default=(), description="The fund hierarchy of the programme year(s); loaded with the budget lines."
    )
    pacing: PacingConfig = Field(default_factory=PacingConfig, description="Pacing of annual funds.")
    # --- settlement with bookstores ---
    discount_pct: float = Field(
        default=0.0, ge=0, lt=100, description="Agreed discount off the list price, percent (all bookstores)."
    )
    bookstore_discount_pct: dict[str, float] = Field(
        default_factory=dict, description="Agreed discount per bookstore id, percent (overrides discount_pct)."
    )

    # --- issue 15 §3 and §5: alternatives, the mediation band, notices ---
    mediation: MediationConfig = Field(default_factory=MediationConfig, description="The mediation band.")
    alternatives: AlternativesConfig = Field(default_factory=AlternativesConfig, description="Ways to get a held book.")
    notices: NoticesConfig = Field(default_factory=NoticesConfig, description="Notices to the reader.")

    @field_validator("bookstore_discount_pct")
    @classmethod
    def _discounts_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v < 100}
        if bad:
            raise ValueError(f"discounts must be >= 0 and < 100 percent, got {bad}")
        return value

    def discount_bp(self, bookstore_id: str) -> int:
        """The agreed discount of a bookstore in basis points (1 % = 100 bp)."""
        return round(self.bookstore_discount_pct.get(bookstore_id, self.discount_pct) * 100)

    @property
    def price_cap_fen(self) -> int:
        """The price cap in integer fen."""
        return yuan_to_fen(self.price_cap_yuan)


def _reason(err: dict[str, Any]) -> str:
    """A short, human reason for one pydantic error."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit:g}, got {got!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}, got {got!r}"
    return f"{err['msg']}, got {got!r}" if got is not None and not isinstance(got, dict) else err["msg"]


def policy_from_dict(data: dict[str, Any], source: str = "policy") -> Policy:
    """Validate a mapping (e.g. parsed TOML) into a :class:`Policy`; raise :class:`PolicyError`."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise PolicyError(source, key, _reason(err)) from exc


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy TOML file (the shipped default when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError(str(path), "", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path.name, "", f"not valid TOML ({exc})") from exc
    policy = policy_from_dict(data, path.name)
    _log.debug("loaded policy %s from %s", policy.programme, path)
    return policy
