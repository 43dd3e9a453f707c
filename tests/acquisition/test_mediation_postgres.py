"""Mediation and notices on a real PostgreSQL: concurrent in-band requests never overspend the
budget, two staff answering the same mediated request at once settle it exactly once, and every status
change still has exactly one notice (``pg_url``: ``tests/pg.py``, else skip)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from acquisition import mediation
from acquisition.db import AuditLog, BudgetLineRow, NoticeRow
from acquisition.errors import InvalidTransition
from acquisition.policy import MediationConfig, Policy

from ._counter_data import NOW, isbn, request
from .test_concurrency import BUDGETS
from .test_postgres import pg_service  # noqa: F401  (fixture)

BAND = Policy(
    books_per_visit=1000,
    books_per_month=1000,
    open_books_max=1000,
    mediation=MediationConfig(enabled=True, band_limit_yuan=200.0),
)
READERS = ("R-ok", "R-ok2", "R-south")


def _notices_match_changes(svc) -> None:
    a = AuditLog
    with svc.db.session_scope() as s:
        changes = s.scalar(
            select(func.count())
            .select_from(a)
            .where(a.entity == "purchase_request", a.to_state.is_not(None))
            .where((a.from_state.is_(None)) | (a.from_state != a.to_state))
        )
        assert s.scalar(select(func.count()).select_from(NoticeRow)) == changes


def test_concurrent_band_requests_and_answers_never_overspend(pg_service):  # noqa: F811
    svc = pg_service(BAND, BUDGETS)

    def ask(n: int):
        return svc.decide(
            request(reader_id=READERS[n % 3], bookstore_id="BS-N", isbn=isbn(20_000 + n), price=150.0), f"k{n}"
        )

    with ThreadPoolExecutor(12) as pool:
        decided = list(pool.map(ask, range(40)))
    mediated = [d.request_id for d in decided if d.status == "mediated"]
    assert mediated and all(d.status in ("mediated", "declined") for d in decided)

    def answer(pair):
        rid, verdict = pair
        try:
            return mediation.answer(svc.db, rid, verdict, actor="staff:x", now=NOW).decision
        except InvalidTransition:
            return None

    # every mediated request answered twice at once (approve and decline): exactly one answer wins
    pairs = [(rid, v) for rid in mediated for v in ("approve", "decline")]
    with ThreadPoolExecutor(12) as pool:
        won = [w for w in pool.map(answer, pairs) if w is not None]
    assert len(won) == len(mediated)
    approved = won.count("approve")
    with svc.db.session_scope() as s:
        for line in s.scalars(select(BudgetLineRow)):
            assert line.reserved_fen >= 0 and line.reserved_fen + line.committed_fen <= line.amount_fen
        year = s.get(BudgetLineRow, "Y2026")
        assert (year.reserved_fen, year.committed_fen) == (0, approved * 15_000)
    _notices_match_changes(svc)
