"""Hot model reload: admin endpoint, failed reloads keep the old model, no dropped requests, alias polling."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.serving.conftest import make_settings, token

ADMIN = token("admin", "root")


@pytest.fixture(scope="module")
def other_model_dir(small_city, tmp_path_factory):
    from features.interactions import load_interactions
    from features.matrix import build_matrix
    from recsys.models import make_model

    model = make_model("popular").fit(build_matrix(load_interactions(small_city).collect()))
    return model.save(tmp_path_factory.mktemp("model2") / "pop")


def _version(client, reader="R-X") -> str:
    return client.get(f"/v1/readers/{reader}/recommendations", params={"n": 3}, headers=token("staff", "a")).json()[
        "model_version"
    ]


def test_reload_swaps_the_model_and_carries_live_events(client, other_model_dir, model_dir, city_facts):
    reader = city_facts["reader"]
    h = token("reader", reader)
    top = client.get(f"/v1/readers/{reader}/recommendations", headers=h).json()["items"][0]["title_id"]
    client.post(f"/v1/readers/{reader}/events", json={"title_id": top}, headers=h)
    v1 = _version(client)
    r = client.post("/v1/admin/reload", json={"model_dir": str(other_model_dir)}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["reloaded"]
    assert r.json()["previous_version"] == v1 and r.json()["model_version"] != v1
    assert _version(client) == r.json()["model_version"]
    assert f'yuedu_model_info{{version="{r.json()["model_version"]}"}} 1.0' in client.get("/metrics").text
    ids = [i["title_id"] for i in client.get(f"/v1/readers/{reader}/recommendations", headers=h).json()["items"]]
    assert top not in ids  # the live event survived the swap
    back = client.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=ADMIN)
    assert back.json()["model_version"] == v1


@pytest.mark.parametrize("bad", ["/nonexistent/model", "__file__"])
def test_failed_reload_keeps_the_old_model(client, bad, tmp_path):
    if bad == "__file__":
        (tmp_path / "model.json").write_text("{not json")
        bad = str(tmp_path)
    before = _version(client)
    r = client.post("/v1/admin/reload", json={"model_dir": bad}, headers=ADMIN)
    assert r.status_code == 409
    body = r.json()
    assert not body["reloaded"] and body["model_version"] == before and "model.json" in body["reason"]
    assert _version(client) == before
    assert client.get("/readyz").status_code == 200


def test_no_request_is_dropped_during_reloads(client, other_model_dir, model_dir, city_facts):
    errors: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer(reader: str) -> None:
        h = token("reader", reader)
        while not stop.is_set():
            r = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 5}, headers=h)
            if r.status_code != 200 or len(r.json()["items"]) != 5:
                errors.append(f"{r.status_code} {r.text[:200]}")
            else:
                versions.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer, args=(r,)) for r in (city_facts["reader"], "COLD-READER")]
    for t in threads:
        t.start()
    try:
        for d in (other_model_dir, model_dir, other_model_dir, model_dir):
            assert client.post("/v1/admin/reload", json={"model_dir": str(d)}, headers=ADMIN).json()["reloaded"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert len(versions) == 2  # requests saw both models, each answered whole


def test_alias_poll_reloads_when_the_alias_moves(small_city, model_dir, other_model_dir, tmp_path):
    from recsys.models import load_model
    from serving.state import AppState

    registry = {"production": ("1", model_dir)}

    def resolve(alias: str) -> str:
        return registry[alias][0]

    def load(alias: str):
        version, path = registry[alias]
        if path is None:
            raise RuntimeError("artifact missing")
        return load_model(path), version

    settings = make_settings(small_city, tmp_path / "db.sqlite", None, model_alias="production")
    state = AppState.from_settings(settings, alias_resolver=resolve, alias_loader=load)
    assert state.bundle.version == "1" and state.bundle.source == "alias:production"

    async def poll_until(predicate) -> None:
        task = asyncio.create_task(state.poll_alias(0.02))
        try:
            for _ in range(200):
                await asyncio.sleep(0.02)
                if predicate():
                    return
        finally:
            task.cancel()

    registry["production"] = ("2", other_model_dir)
    asyncio.run(poll_until(lambda: state.bundle.version == "2"))
    assert state.bundle.version == "2"
    registry["production"] = ("3", None)  # the alias moves to a broken version: keep serving 2
    asyncio.run(poll_until(lambda: state.last_reload_error is not None))
    assert state.bundle.version == "2" and "artifact missing" in state.last_reload_error


# --- a model file is checked before it is served (issue 20) --------------------------------------


def _copy(model_dir, tmp_path, name: str):
    import shutil

    return shutil.copytree(model_dir, tmp_path / name)


def _tamper_similarity(directory, fill: float) -> None:
    import numpy as np
    import scipy.sparse as sp

    path = directory / "similarity.npz"
    sim = sp.load_npz(path).tocsr()
    sim.data = np.full_like(sim.data, fill)
    sp.save_npz(path, sim, compressed=False)


def test_a_model_with_nan_weights_is_refused(client, model_dir, tmp_path):
    bad = _copy(model_dir, tmp_path, "nan")
    _tamper_similarity(bad, float("nan"))
    before = _version(client)
    r = client.post("/v1/admin/reload", json={"model_dir": str(bad)}, headers=ADMIN)
    assert r.status_code == 409 and "NaN or infinite" in r.json()["reason"]
    assert _version(client) == before
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the previous model still serves...
    assert ready.json()["status"] == "degraded" and "NaN" in ready.json()["detail"]["last_reload"]  # ...but says so
    assert client.post("/v1/admin/reload", json={"model_dir": str(model_dir)}, headers=ADMIN).json()["reloaded"]
    healed = client.get("/readyz").json()
    assert healed["status"] == "ready" and healed["detail"] == {}


def test_version_changes_when_any_array_changes(client, model_dir, tmp_path):
    changed = _copy(model_dir, tmp_path, "changed")
    _tamper_similarity(changed, 0.5)
    assert (changed / "model.json").read_bytes() == (model_dir / "model.json").read_bytes()
    versions = []
    for d in (changed, model_dir):
        r = client.post("/v1/admin/reload", json={"model_dir": str(d)}, headers=ADMIN)
        assert r.status_code == 200
        versions.append(r.json()["model_version"])
    assert versions[0] != versions[1]


@pytest.mark.parametrize("target", ["../outside.npy", "/etc/hostname"])
def test_model_json_may_not_point_outside_its_directory(client, model_dir, tmp_path, target):
    import json
    import shutil

    bad = _copy(model_dir, tmp_path, "escape")
    shutil.copy(bad / "popularity.npy", tmp_path / "outside.npy")
    meta = json.loads((bad / "model.json").read_text())
    meta["arrays"]["popularity"] = target
    (bad / "model.json").write_text(json.dumps(meta))
    r = client.post("/v1/admin/reload", json={"model_dir": str(bad)}, headers=ADMIN)
    assert r.status_code == 409 and "outside the model directory" in r.json()["reason"]


def test_shapes_must_fit_the_vocabularies(client, model_dir, tmp_path):
    import numpy as np

    bad = _copy(model_dir, tmp_path, "shape")
    np.save(bad / "popularity.npy", np.ones(3, dtype=np.float32))
    r = client.post("/v1/admin/reload", json={"model_dir": str(bad)}, headers=ADMIN)
    assert r.status_code == 409 and "expected" in r.json()["reason"] and "popularity" in r.json()["reason"]
