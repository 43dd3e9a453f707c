"""Notices to the reader: exactly one per status change (written with its audit row), rendered in
zh-CN and en, delivered through a channel (the outbox file by default), never a raw reader id in logs."""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from acquisition import mediation, notices
from acquisition.alternatives import Availability
from acquisition.db import AuditLog, NoticeRow
from acquisition.errors import InvalidTransition, ReservationExpired
from acquisition.holdings import receive_request
from acquisition.notices import (
    AppChannel,
    ChannelNotConfigured,
    OutboxChannel,
    SmsChannel,
    WeChatTemplateChannel,
    channel_from_policy,
    deliver_pending,
)
from acquisition.policy import MediationConfig, NoticesConfig, Policy
from tests.acquisition._counter_data import HELD3, NOW, decide_at, isbn, make_service, request
from tests.acquisition.test_counter import LOOSE

POLICY = Policy(**LOOSE, mediation=MediationConfig(enabled=True, band_limit_yuan=150.0))


def _changes(svc) -> int:
    a = AuditLog
    with svc.db.session_scope() as s:
        return s.scalar(
            select(func.count())
            .select_from(a)
            .where(
                a.entity == "purchase_request",
                a.to_state.is_not(None),
                (a.from_state.is_(None)) | (a.from_state != a.to_state),
            )
        )


def _notices(svc) -> list[NoticeRow]:
    with svc.db.session_scope() as s:
        return list(s.scalars(select(NoticeRow).order_by(NoticeRow.id)))


def test_each_status_change_gets_one_notice_in_the_same_transaction(tmp_path):
    svc = make_service(tmp_path, POLICY)
    d = svc.decide(request(), "k1")
    svc.checkout(d.request_id)
    receive_request(svc.db, svc.holdings, d.request_id, actor="staff:x", now=NOW)
    m = svc.decide(request(isbn=isbn(3), price=120.0), "k2")
    mediation.answer(svc.db, m.request_id, "decline", actor="staff:x", now=NOW)
    assert [(n.request_id, n.status) for n in _notices(svc)] == [
        (d.request_id, "reserved"),
        (d.request_id, "checked_out"),
        (d.request_id, "received"),
        (m.request_id, "mediated"),
        (m.request_id, "declined"),
    ]
    with pytest.raises(InvalidTransition):  # a refused move writes nothing
        svc.checkout(d.request_id)
    assert len(_notices(svc)) == 5 == _changes(svc)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), st.integers(1, 30), st.sampled_from([4_000, 12_000, 20_000]), st.booleans()),
        st.tuples(st.sampled_from(["checkout", "cancel", "approve", "decline"]), st.integers(0, 30)),
        st.tuples(st.just("expire"), st.integers(0, 120)),
    ),
    min_size=1,
    max_size=20,
)


def _apply(svc, op, i: int, ids: list[str]) -> None:
    at = NOW + timedelta(minutes=i)
    if op[0] == "decide":
        channel = "online" if op[3] else "counter"
        req = request(isbn=isbn(op[1]), price=op[2] / 100, channel=channel)
        ids.append(decide_at(svc, at, req, f"k{i}").request_id)
    elif op[0] == "expire":
        svc.expire_reservations(NOW + timedelta(minutes=op[1]))
    elif ids:
        rid = ids[op[1] % len(ids)]
        with contextlib.suppress(InvalidTransition, ReservationExpired):
            if op[0] in ("checkout", "cancel"):
                getattr(svc, op[0])(rid, now=at)
            else:
                mediation.answer(svc.db, rid, op[0], actor="staff:x", now=at)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_every_status_change_yields_exactly_one_notice(stream):
    with tempfile.TemporaryDirectory() as tmp:
        svc = make_service(Path(tmp), POLICY)
        ids: list[str] = []
        for i, op in enumerate(stream):
            _apply(svc, op, i, ids)
            rows = _notices(svc)
            assert len(rows) == _changes(svc)
            per_request: dict[str, list[str]] = {}
            for n in rows:
                per_request.setdefault(n.request_id, []).append(n.status)
            assert set(per_request) == set(ids)  # every request got at least its first notice
        svc.db.dispose()


def test_outbox_delivery_renders_both_languages_and_marks_delivered(tmp_path, caplog):
    svc = make_service(tmp_path, POLICY)
    svc.availability = Availability.from_data_dir(tmp_path / "data")
    svc.decide(request(title="长夜"), "k1")
    svc.decide(request(isbn=HELD3, title="三本"), "k2")
    outbox = tmp_path / "out" / "outbox.jsonl"
    with caplog.at_level(logging.DEBUG):
        result = deliver_pending(svc.db, OutboxChannel(outbox), now=NOW)
    assert (result.sent, result.failed) == (2, 0)
    lines = [json.loads(x) for x in outbox.read_text(encoding="utf-8").splitlines()]
    assert [x["status"] for x in lines] == ["reserved", "declined"]
    assert lines[0]["text"].startswith("您荐购的《长夜》已通过，预留 45.00 元")
    assert lines[0]["text_en"].startswith('Your request for "长夜" is approved: 45.00 yuan')
    assert "馆藏已有多册" in lines[1]["text_zh"] and "B-S1" in lines[1]["text_zh"]  # the alternative offered
    assert lines[1]["reader_id"] == "R-ok"  # the gateway's address ...
    assert "R-ok" not in caplog.text  # ... never in a log
    assert oct(outbox.stat().st_mode & 0o777) == "0o600"
    assert all(n.delivered_at == NOW and n.channel == "outbox" and n.text_zh for n in _notices(svc))
    assert deliver_pending(svc.db, OutboxChannel(outbox), now=NOW).sent == 0  # nothing is sent twice


def test_a_failing_channel_leaves_notices_queued_and_counts_the_attempt(tmp_path, caplog):
    svc = make_service(tmp_path, POLICY)
    svc.decide(request(), "k1")
    with caplog.at_level(logging.WARNING):
        result = deliver_pending(svc.db, SmsChannel(), now=NOW)
    assert (result.sent, result.failed) == (0, 1)
    (row,) = _notices(svc)
    assert row.delivered_at is None and row.attempts == 1 and "ChannelNotConfigured" in row.error
    assert "R-ok" not in caplog.text
    sent: list[dict] = []
    assert deliver_pending(svc.db, SmsChannel(sent.append), now=NOW, language="en").sent == 1
    assert sent == [{"card": "R-ok", "text": sent[0]["text"]}] and len(sent[0]["text"]) <= 70
    assert sent[0]["text"].startswith("Your request")


def test_channel_stubs_build_their_payloads_behind_one_interface():
    out = notices.OutgoingNotice(1, "PR-1", "R-1", "approved", "2026-05-12T10:30:00", "zh-CN", "好", "好", "ok")
    got: list[dict] = []
    AppChannel(got.append).send(out)
    WeChatTemplateChannel(got.append, template_id="TPL").send(out)
    assert got[0] == {"account": "R-1", "title": "悦读荐购", "body": "好", "ref": "PR-1"}
    assert got[1]["touser"] == "R-1" and got[1]["template_id"] == "TPL" and got[1]["data"]["first"] == {"value": "好"}
    with pytest.raises(ChannelNotConfigured):
        AppChannel().send(out)
    assert isinstance(channel_from_policy(NoticesConfig()), OutboxChannel)
    assert isinstance(channel_from_policy(NoticesConfig(channel="wechat")), WeChatTemplateChannel)


def test_reader_notices_are_listed_in_the_language_asked(tmp_path):
    svc = make_service(tmp_path, POLICY)
    d = svc.decide(request(price=120.0), "k1")
    zh = notices.reader_notices(svc.db, "R-ok")
    en = notices.reader_notices(svc.db, "R-ok", language="en")
    assert [n.status for n in zh] == ["mediated"] and zh[0].request_id == d.request_id
    assert "2026-05-14 10:30" in zh[0].text and zh[0].text.startswith("您荐购的")
    assert en[0].text.startswith("Your request") and notices.reader_notices(svc.db, "R-ok2") == []


def test_every_status_has_both_templates_and_every_code_a_reason():
    from acquisition.rules import DeclineCode
    from features.schema import RequestStatus

    assert set(notices.TEMPLATES) == {s.value for s in RequestStatus}
    assert set(notices.REASONS) == {c.value for c in DeclineCode}
