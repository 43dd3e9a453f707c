"""One place maps domain errors to the CLI's line and exit code, one place to the API's status and body."""

from __future__ import annotations

import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.errors import Conflict, InvalidInput, NotFound, Unavailable, YueduError
from serving import errors
from serving.cli import app as yuedu_app
from serving.cli.errors import ErrorMappingGroup, error_line, fail


def _cli(raise_it) -> typer.Typer:
    app = typer.Typer(cls=ErrorMappingGroup)

    @app.command()
    def go() -> None:
        raise_it()

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


def test_domain_error_becomes_one_line_and_its_exit_code():
    def boom():
        raise Unavailable("Java is not installed:\n  install a JRE")

    out = CliRunner().invoke(_cli(boom), ["go"])
    assert out.exit_code == 3
    assert out.output.strip() == "error: Java is not installed: install a JRE"


def test_fail_exits_2_and_a_chosen_code():
    out = CliRunner().invoke(_cli(lambda: fail("--k must be positive")), ["go"])
    assert (out.exit_code, out.output.strip()) == (2, "error: --k must be positive")
    out = CliRunner().invoke(_cli(lambda: fail("3 rows rejected", exit_code=1)), ["go"])
    assert out.exit_code == 1


def test_a_bug_is_not_disguised():
    def bug():
        raise ZeroDivisionError("oops")

    out = CliRunner().invoke(_cli(bug), ["go"])
    assert out.exit_code == 1 and isinstance(out.exception, ZeroDivisionError)


def test_the_real_cli_reports_an_ingest_error_in_the_one_format(tmp_path):
    out = CliRunner().invoke(yuedu_app, ["data", "ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert out.exit_code == 2, out.output
    assert "Traceback" not in out.output and out.output.strip().splitlines()[-1].startswith("error: ")


def test_error_line_folds_newlines():
    assert error_line(InvalidInput("a\nb")) == "error: a b"


def _api(exc: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/x")
    def x():
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_api_maps_each_kind_to_its_status_with_the_one_body():
    for exc, status, code in [
        (InvalidInput("k: must be positive"), 422, "invalid_request"),
        (NotFound("reader R-1 is not registered"), 404, "not_found"),
        (Conflict("request PR-1 is already approved"), 409, "conflict"),
        (Unavailable("no model loaded"), 503, "unavailable"),
    ]:
        r = _api(exc).get("/x")
        assert r.status_code == status
        assert r.json() == {"error": code, "message": str(exc), "fields": []}


def test_api_names_the_field_of_an_invalid_input():
    exc = InvalidInput("price_yuan: must be at least 0.01")
    exc.field, exc.reason = "price_yuan", "must be at least 0.01"
    assert _api(exc).get("/x").json()["fields"] == [{"field": "price_yuan", "reason": "must be at least 0.01"}]


def test_api_hides_a_bare_root_error_like_any_bug():
    r = _api(YueduError("internal detail")).get("/x")
    assert r.status_code == 500 and "internal detail" not in r.text
