"""Notices to the reader at every status change of their request (Koha / Evergreen style: accepted,
declined, mediated, ordered, arrived, cancelled ...), stored, rendered in zh-CN and en, and delivered
through a pluggable channel.

Writing: a request's status changes only in :mod:`acquisition.lifecycle`, and every change is one
audit row with a ``to_state``; :func:`acquisition.audit.record_many` passes the rows it appends to
:func:`notice_rows`, so each change (``from != to``) gets exactly one ``notices`` row in the SAME
INSERT transaction. A rolled-back change leaves no notice; a repeated state (a pending line listed in
a second round) is no change and sends nothing.

Delivering: :func:`deliver_pending` renders the undelivered notices (the request's title, price,
reasons, the alternative offered, the promised answer time), stores both texts, and hands each to a
:class:`NoticeChannel`. The default :class:`OutboxChannel` appends JSON lines to a file (the hand-off
to the library's messaging gateway); :class:`AppChannel`, :class:`SmsChannel` and
:class:`WeChatTemplateChannel` build their payloads and call a transport the deployment provides.
Logs name requests and reader pseudonyms, never a raw reader id.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition.db import (
    AlternativeOfferRow,
    Database,
    MediationRow,
    NoticeRow,
    PurchaseRequestRow,
)
from acquisition.messages import READER
from acquisition.policy import NoticesConfig
from features.privacy import pseudonymise

_log = logging.getLogger(__name__)

__all__ = [
    "AppChannel",
    "ChannelNotConfigured",
    "NoticeChannel",
    "OutboxChannel",
    "OutgoingNotice",
    "SmsChannel",
    "WeChatTemplateChannel",
    "channel_from_policy",
    "deliver_pending",
    "notice_rows",
    "reader_notices",
    "render",
]

#: The audit entity whose status changes are notified.
ENTITY = "purchase_request"


def notice_rows(audit: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``notices`` rows for audit rows being appended: one per request status change."""
    return [
        {
            "request_id": r["entity_id"],
            "action": r["action"],
            "from_state": r["from_state"],
            "status": r["to_state"],
            "created_at": r["at"],
            "attempts": 0,
        }
        for r in audit
        if r["entity"] == ENTITY and r["to_state"] is not None and r["to_state"] != r["from_state"]
    ]


# --- rendering ------------------------------------------------------------------------------------

#: Per status: (zh-CN, en) templates. Fields: title, price, reasons_zh/en, extra_zh/en, answer_by.
TEMPLATES: dict[str, tuple[str, str]] = {
    "reserved": (
        "您荐购的《{title}》已通过，预留 {price} 元，请在书店办理借阅。",
        'Your request for "{title}" is approved: {price} yuan reserved; borrow it at the bookstore.',
    ),
    "pending": (
        "您荐购的《{title}》已受理，馆员将在下一采购批次审核。",
        'Your request for "{title}" is received; library staff will review it in the next round.',
    ),
    "declined": (
        "很抱歉，《{title}》未能采购：{reasons_zh}{extra_zh}",
        'Sorry, "{title}" cannot be bought: {reasons_en}{extra_en}',
    ),
    "mediated": (
        "您荐购的《{title}》已转馆员审核，我们将在 {answer_by} 前答复您。",
        'Your request for "{title}" has gone to library staff; you will have an answer by {answer_by}.',
    ),
    "approved": (
        "馆员已批准您荐购的《{title}》，图书将为您采购。",
        'Library staff approved "{title}"; the book will be bought for you.',
    ),
    "checked_out": (
        "《{title}》已借给您，请按期归还，以便其他读者借阅。",
        '"{title}" is lent to you; please return it on time so others can borrow it.',
    ),
    "cancelled": (
        "您荐购的《{title}》已取消，预留的经费已退回。",
        'Your request for "{title}" is cancelled; the money held for it was released.',
    ),
    "ordered": ("《{title}》已向书店订购。", '"{title}" is ordered from the bookstore.'),
    "received": ("《{title}》已到馆编目，可以借阅了。", '"{title}" has arrived and is catalogued; you can borrow it.'),
    "fulfilled": ("《{title}》的荐购已完成，感谢参与。", 'Your request for "{title}" is complete; thank you.'),
}

#: Decline reasons as readers read them (zh-CN, en).
REASONS: dict[str, tuple[str, str]] = {code.value: text for code, text in READER.items()}


@dataclass(frozen=True)
class _Context:
    """What a notice's text needs of its request (read at delivery)."""

    reader_id: str
    title: str
    price_fen: int
    reason_codes: list[str]
    offer_zh: str | None
    offer_en: str | None
    answer_by: datetime | None


def _reasons(codes: list[str], lang: int) -> str:
    words = [REASONS.get(c, (c, c))[lang] for c in codes]
    return ("；" if lang == 0 else "; ").join(words) or ("其他原因" if lang == 0 else "another reason")


def render(status: str, ctx: _Context) -> tuple[str, str]:
    """The notice's (zh-CN, en) text for a request now in ``status``."""
    zh, en = TEMPLATES.get(status, ("《{title}》的状态已更新。", 'The status of "{title}" changed.'))
    fields = {
        "title": ctx.title,
        "price": f"{ctx.price_fen / 100:.2f}",
        "reasons_zh": _reasons(ctx.reason_codes, 0) + "。",
        "reasons_en": _reasons(ctx.reason_codes, 1) + ".",
        "extra_zh": f"{ctx.offer_zh}" if ctx.offer_zh else "",
        "extra_en": f" {ctx.offer_en}" if ctx.offer_en else "",
        "answer_by": f"{ctx.answer_by:%Y-%m-%d %H:%M}" if ctx.answer_by else "",
    }
    return zh.format(**fields), en.format(**fields)


def _context(s: Session, request_id: str) -> _Context | None:
    from acquisition.alternatives import offer_sentences  # alternatives build on notices' neighbours

    req = s.get(PurchaseRequestRow, request_id)
    if req is None:
        return None
    offer = s.scalar(
        select(AlternativeOfferRow).where(AlternativeOfferRow.request_id == request_id, AlternativeOfferRow.rank == 0)
    )
    med = s.get(MediationRow, request_id)
    zh, en = offer_sentences(offer) if offer is not None else (None, None)
    return _Context(
        req.reader_id,
        req.title or req.isbn13 or req.isbn,
        req.price_fen,
        list(req.reason_codes or []),
        zh,
        en,
        med.answer_by if med is not None else None,
    )


# --- channels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingNotice:
    """A rendered notice for one reader. ``reader_id`` is the address a gateway resolves (app
    account, phone, WeChat openid); it never goes to a log."""

    notice_id: int
    request_id: str
    reader_id: str
    status: str
    created_at: str
    language: str
    text: str
    text_zh: str
    text_en: str


class NoticeChannel(Protocol):
    """Where notices go. ``send`` raises on failure (the notice stays undelivered and is retried)."""

    name: str

    def send(self, notice: OutgoingNotice) -> None: ...


class ChannelNotConfigured(RuntimeError):
    """A channel stub without a transport: the deployment must provide one."""


class OutboxChannel:
    """The default channel: one JSON line per notice appended to a file (created ``0600``), fsynced,
    for the library's messaging gateway to pick up."""

    name = "outbox"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, notice: OutgoingNotice) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(notice), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())


class _TransportChannel:
    """A channel that builds a payload and hands it to ``transport`` (the deployment's client)."""

    name = "stub"

    def __init__(self, transport: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.transport = transport

    def payload(self, notice: OutgoingNotice) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, notice: OutgoingNotice) -> None:
        if self.transport is None:
            raise ChannelNotConfigured(f"notice channel '{self.name}' has no transport configured")
        self.transport(self.payload(notice))


class AppChannel(_TransportChannel):
    """A push message to the reader's account in the library app."""

    name = "app"

    def payload(self, notice: OutgoingNotice) -> dict[str, Any]:
        return {"account": notice.reader_id, "title": "悦读荐购", "body": notice.text, "ref": notice.request_id}


class SmsChannel(_TransportChannel):
    """A text message (the gateway resolves the card's phone); 70 characters, one SMS segment."""

    name = "sms"

    def payload(self, notice: OutgoingNotice) -> dict[str, Any]:
        return {"card": notice.reader_id, "text": notice.text[:70]}


class WeChatTemplateChannel(_TransportChannel):
    """A WeChat template message (the gateway maps the card to the reader's openid)."""

    name = "wechat"

    def __init__(self, transport: Callable[[dict[str, Any]], None] | None = None, template_id: str = "") -> None:
        super().__init__(transport)
        self.template_id = template_id

    def payload(self, notice: OutgoingNotice) -> dict[str, Any]:
        return {
            "touser": notice.reader_id,
            "template_id": self.template_id,
            "data": {
                "first": {"value": notice.text},
                "keyword1": {"value": notice.request_id},
                "keyword2": {"value": notice.status},
                "keyword3": {"value": notice.created_at},
            },
        }


def channel_from_policy(config: NoticesConfig, transport: Callable[[dict[str, Any]], None] | None = None):
    """The channel the policy's ``[notices]`` names (stubs get ``transport``)."""
    if config.channel == "outbox":
        return OutboxChannel(config.outbox_path)
    return {"app": AppChannel, "sms": SmsChannel, "wechat": WeChatTemplateChannel}[config.channel](transport)


# --- delivery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What one :func:`deliver_pending` run did."""

    sent: int
    failed: int


def deliver_pending(
    db: Database, channel: NoticeChannel, *, now: datetime, language: str = "zh-CN", limit: int = 500
) -> Delivery:
    """Render and send up to ``limit`` undelivered notices, oldest first; each is marked delivered (or
    its failure counted) in its own transaction, so a crash re-sends at most one notice."""
    with db.session_scope() as s:
        ids = s.scalars(
            select(NoticeRow.id).where(NoticeRow.delivered_at.is_(None)).order_by(NoticeRow.id).limit(limit)
        ).all()
    sent = failed = 0
    for notice_id in ids:  # one message per notice: I/O-bound sending, not an interaction loop
        ok = _deliver_one(db, channel, notice_id, now=now, language=language)
        sent, failed = sent + ok, failed + (not ok)
    if ids:
        _log.info("notices: %d sent, %d failed through %s", sent, failed, channel.name)
    return Delivery(sent, failed)


def _deliver_one(db: Database, channel: NoticeChannel, notice_id: int, *, now: datetime, language: str) -> bool:
    with db.session_scope(write=True) as s:
        row = s.get(NoticeRow, notice_id, with_for_update=True)
        if row is None or row.delivered_at is not None:
            return True
        ctx = _context(s, row.request_id)
        if ctx is None:
            row.attempts, row.error = row.attempts + 1, "request not found"
            return False
        row.text_zh, row.text_en = render(row.status, ctx)
        out = OutgoingNotice(
            row.id,
            row.request_id,
            ctx.reader_id,
            row.status,
            row.created_at.isoformat(),
            language,
            row.text_zh if language == "zh-CN" else row.text_en,
            row.text_zh,
            row.text_en,
        )
        try:
            channel.send(out)
        except Exception as exc:  # noqa: BLE001 - any channel failure leaves the notice queued
            row.attempts, row.error = row.attempts + 1, f"{type(exc).__name__}: {exc}"[:200]
            _log.warning(
                "notice %d for reader %s not sent: %s", row.id, pseudonymise(ctx.reader_id), type(exc).__name__
            )
            return False
        row.delivered_at, row.channel, row.attempts = now, channel.name, row.attempts + 1
        return True


@dataclass(frozen=True)
class ReaderNotice:
    """A notice as the reader's app lists it."""

    notice_id: int
    request_id: str
    status: str
    created_at: datetime
    delivered_at: datetime | None
    text: str


def reader_notices(db: Database, reader_id: str, *, language: str = "zh-CN", limit: int = 50) -> list[ReaderNotice]:
    """The reader's notices, newest first, rendered in ``language`` (undelivered ones too)."""
    n, r = NoticeRow, PurchaseRequestRow
    with db.session_scope() as s:
        rows = s.scalars(
            select(n)
            .join(r, r.request_id == n.request_id)
            .where(r.reader_id == reader_id)
            .order_by(n.id.desc())
            .limit(limit)
        ).all()
        out = []
        for row in rows:  # joined on the request, so its context exists
            zh, en = (row.text_zh, row.text_en) if row.text_zh else render(row.status, _context(s, row.request_id))
            text = zh if language == "zh-CN" else en
            out.append(ReaderNotice(row.id, row.request_id, row.status, row.created_at, row.delivered_at, text))
    return out
