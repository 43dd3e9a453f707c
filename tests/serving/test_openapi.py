"""The OpenAPI contract (issue 17): hand-written ids and summaries, bearer security, every error status
with the real error body, and examples that are valid instances of their models."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from serving import openapi, schemas
from tests.serving.conftest import token


@pytest.fixture(scope="module")
def doc(client):
    return client.get("/openapi.json").json()


def _ops(doc):
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_every_operation_has_a_hand_written_id_and_summary(doc):
    ops = _ops(doc)
    assert {(m, p) for m, p, _ in ops} == set(openapi.OPERATIONS)
    ids = [op["operationId"] for _, _, op in ops]
    assert len(set(ids)) == len(ids) and all("_" not in i and i[0].islower() for i in ids)
    assert all(op["summary"] == openapi.OPERATIONS[m, p][1] for m, p, op in ops)


def test_security_scheme_and_error_statuses(doc):
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <token>",
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for m, p, op in _ops(doc):
        guarded = (m, p) not in openapi.PUBLIC
        assert ("security" in op) == guarded, (m, p)
        expected = ({"401", "403"} if guarded else set()) | ({"404"} if "{" in p else set())
        assert expected <= set(op["responses"]), (m, p)
        for code in {"401", "403", "404", "422"} & set(op["responses"]):
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorBody", (m, p, code)


def test_documented_error_body_is_what_the_service_answers(client, doc):
    fields = set(doc["components"]["schemas"]["ErrorBody"]["properties"])
    answers = [
        client.get("/v1/budgets"),
        client.get("/v1/budgets", headers=token("reader", "R-1")),
        client.get("/v1/titles/NOPE", headers=token("reader", "R-1")),
        client.get("/v1/readers/R-1/recommendations", params={"n": 0}, headers=token("reader", "R-1")),
    ]
    assert [a.status_code for a in answers] == [401, 403, 404, 422]
    assert all(set(a.json()) == fields for a in answers)


def test_examples_are_valid_instances_of_their_models(doc):
    comps = doc["components"]["schemas"]
    bodies = {
        op["requestBody"]["content"]["application/json"]["schema"].get("$ref", "").rsplit("/", 1)[-1]
        for _, _, op in _ops(doc)
        if "requestBody" in op
    } - {""}
    assert bodies and all(comps[name].get("examples") for name in bodies), bodies
    for name, example in openapi.EXAMPLES.items():
        assert comps[name]["examples"] == [example]
        TypeAdapter(_model(name)).validate_python(example)


def _model(name: str):
    """The Python type behind a component schema name (serving.schemas, else the modules declaring the
    audit, funds, settlement and enum bodies; ``Page_X_`` is ``Page[X]``)."""
    from acquisition import (
        alternatives,
        analytics,
        funds,
        lifecycle,
        pacing,
        placement,
        programme_figures,
        settlement,
        whatif,
    )
    from features import schema
    from serving.routes import audit

    if name.startswith("Page_"):
        return schemas.Page[_model(name[len("Page_") : -1])]
    for module in (
        schemas,
        audit,
        funds,
        settlement,
        analytics,
        lifecycle,
        schema,
        alternatives,
        placement,
        pacing,
        programme_figures,
        whatif,
    ):
        if hasattr(module, name):
            return getattr(module, name)
    raise AssertionError(f"no model named {name}")


def test_every_schema_has_a_valid_example(doc):
    """Bodies declared outside serving.schemas (audit, funds, settlement) and enums included."""
    comps = doc["components"]["schemas"]
    assert not [name for name, comp in comps.items() if not comp.get("examples")]
    for name, comp in comps.items():
        TypeAdapter(_model(name)).validate_python(comp["examples"][0])
