"""``yuedu acquisition notices | mediations | place`` on a small ledger."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from acquisition.policy import MediationConfig, Policy
from serving.cli import app as cli
from tests.acquisition._counter_data import HELD3, NOW, make_service, request


def test_notices_mediations_and_place_commands(tmp_path):
    svc = make_service(tmp_path, Policy(mediation=MediationConfig(enabled=True, band_limit_yuan=150.0)))
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    svc.decide(request(price=120.0), "k1")
    held = svc.decide(request(isbn=HELD3), "k2")
    outbox = tmp_path / "outbox.jsonl"
    out = CliRunner().invoke(
        cli, ["acquisition", "notices", "--db", db, "--outbox", str(outbox), "--at", "2026-05-12T11:00:00"]
    )
    assert out.exit_code == 0, out.output
    assert "2 sent, 0 failed through outbox" in out.output
    assert [json.loads(x)["status"] for x in outbox.read_text(encoding="utf-8").splitlines()] == [
        "mediated",
        "declined",
    ]
    on_time = CliRunner().invoke(cli, ["acquisition", "mediations", "--db", db, "--at", NOW.isoformat()])
    assert on_time.exit_code == 0 and "1 awaiting staff, 0 past" in on_time.output
    late_at = (NOW + timedelta(hours=60)).isoformat()
    late = CliRunner().invoke(cli, ["acquisition", "mediations", "--db", db, "--overdue", "--at", late_at])
    assert late.exit_code == 1 and "OVERDUE 12.0 h" in late.output
    placed = CliRunner().invoke(
        cli, ["acquisition", "place", held.request_id, "--data", str(tmp_path / "data"), "--db", db]
    )
    assert placed.exit_code == 0, placed.output
    assert "suggested branch: B-" in placed.output
