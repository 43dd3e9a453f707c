"""``yuedu token issue`` and ``yuedu serve`` (a real subprocess answering /readyz), and the --demo layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from serving.cli import app as cli
from serving.security import verify_token
from serving.server import free_port


def test_token_issue_signs_with_the_service_key(monkeypatch):
    monkeypatch.setenv("YUEDU_SECRET_KEY", "k-cli")
    out = CliRunner().invoke(cli, ["token", "issue", "--role", "bookstore", "--subject", "BS-07"])
    assert out.exit_code == 0, out.output
    p = verify_token(out.output.strip(), "k-cli")
    assert (p.role, p.subject) == ("bookstore", "BS-07")


def test_token_issue_refuses_unknown_roles_and_missing_keys(monkeypatch):
    monkeypatch.delenv("YUEDU_SECRET_KEY", raising=False)
    assert CliRunner().invoke(cli, ["token", "issue", "--role", "root", "--subject", "x"]).exit_code == 2
    assert CliRunner().invoke(cli, ["token", "issue", "--role", "reader", "--subject", "x"]).exit_code == 2


def test_demo_directory_is_served_with_its_tokens(small_city, model_dir, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.cli.serve_cmds import _demo_settings
    from serving.settings import Settings

    monkeypatch.delenv("YUEDU_STAFF_USERS", raising=False)
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "data").symlink_to(small_city)
    (demo / "model").symlink_to(model_dir)
    overrides, info = _demo_settings(demo)
    assert json.loads((demo / "demo_tokens.json").read_text()) == info  # written once, reused on restart
    assert _demo_settings(demo)[1] == info
    with TestClient(create_app(Settings(**overrides, model_poll_s=0))) as c:
        reader = info["reader"]["reader_id"]
        r = c.get(
            f"/v1/readers/{reader}/recommendations", headers={"Authorization": f"Bearer {info['reader']['token']}"}
        )
        assert r.status_code == 200
        login = c.post("/v1/auth/token", json={"username": "staff", "password": info["staff"]["password"]})
        assert login.status_code == 200
        assert (
            c.get("/v1/budgets", headers={"Authorization": f"Bearer {info['admin']['token']}"}).json()["period"]
            == "2026-06"
        )


def test_yuedu_serve_starts_uvicorn_and_answers(small_city, model_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "YUEDU_SECRET_KEY": "k-serve", "YUEDU_MODEL_POLL_S": "0"}
    yuedu = Path(sys.executable).parent / "yuedu"
    if not yuedu.exists():
        pytest.skip(f"{yuedu} not installed (pip install -e .)")
    cmd = [str(yuedu), "serve", "--data", str(small_city), "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    cmd += ["--model", str(model_dir), "--port", str(port), "--today", "2026-06-15", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"yuedu serve exited {proc.returncode}: {proc.stdout.read()[-2000:]}")
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "yuedu serve did not answer within 60 s"
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["model_loaded"] and r.json()["database"]
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
    finally:
        proc.terminate()
        proc.wait(10)
    banner = proc.stdout.read()
    assert "yuedu serving on" in banner
    # credentials are printed for `serve --demo` only, never when serving real data
    assert "Bearer" not in banner and "password" not in banner


def test_serve_explains_an_unreachable_database(small_city, model_dir):
    # Port 1 on loopback refuses connections: the driver is there, the server is not.
    out = CliRunner().invoke(
        cli,
        [
            "serve",
            "--data",
            str(small_city),
            "--model",
            str(model_dir),
            "--db",
            "postgresql+psycopg://u@127.0.0.1:1/yuedu",
        ],
    )
    assert out.exit_code == 2, out.output
    assert "cannot connect to the ledger '127.0.0.1:1/yuedu'" in out.output and "Traceback" not in out.output
