"""The city-scale parts script (experiments/city_scale.py): parts of one study merge into the report a
single run would give - the same rows, the validation pick and the paired interval over all rows."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np

from features.datasets import Dataset
from recsys.evaluation import study
from tests.recsys.test_evaluation import tiny_events
from tests.recsys.test_evaluation_scale import SPEC, tiny_scale_config

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "city_scale.py"


def load_script():
    spec = importlib.util.spec_from_file_location("city_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_part(parts: Path, name: str, config: study.RunConfig) -> dict:
    rows: list = []
    ds = Dataset("tiny", tiny_events(n_readers=120).lazy())
    report = study.run_evaluation(ds, SPEC, config, collect=rows)
    report["command"] = f"part {name}"
    (parts / f"{name}.json").write_text(json.dumps(report, default=str))
    np.savez(parts / f"{name}.npz", **{f"{r.seed}|{r.model}|{r.kind}": r.per_reader_ndcg for r in rows})
    return report


def test_parts_merge_into_one_report(tmp_path, monkeypatch) -> None:
    script = load_script()
    monkeypatch.setattr(script, "PARTS", tmp_path)
    monkeypatch.setattr("serving.cli.recsys_cmds.RESULTS_DIR", tmp_path / "results")
    base = dataclasses.replace(tiny_scale_config(peer=False), refit=False)
    a = write_part(tmp_path, "a", dataclasses.replace(base, models=("popular",)))
    b = write_part(tmp_path, "b", dataclasses.replace(base, models=("als",), baselines=False))
    script.merge(["a", "b"])
    merged = json.loads((tmp_path / "results" / "city-scale.json").read_text())
    models = [(r["model"], r["kind"]) for r in merged["results"]]
    assert models == [(r["model"], r["kind"]) for r in a["results"] + b["results"]]
    assert merged["comparison"]["chosen"]["0"] in ("popular", "als")
    assert merged["comparison"]["ratio_to_raw_als_interval"] is not None
    # without refit each test model is its validation fit: its cost is that fit's
    assert all(r["cost"]["fit_seconds"] >= 0 for r in merged["results"] if r["kind"] == "yuedu")
    assert set(merged["parts"]) == {"a", "b"}
    assert "Cost of the final fit" in (tmp_path / "results" / "city-scale.md").read_text()
