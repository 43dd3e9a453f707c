"""The ceiling-study script (experiments/strong_ceiling.py) on a tiny rating set."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import polars as pl

from features.datasets import Dataset
from tests.recsys.test_evaluation import tiny_events

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "strong_ceiling.py"


def load_script():
    spec = importlib.util.spec_from_file_location("strong_ceiling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ceiling_reports_every_family_and_the_best_mean(tmp_path: Path) -> None:
    script = load_script()
    events = tiny_events()
    rng = np.random.default_rng(3)
    events = events.with_columns(pl.Series("value", rng.choice([4.0, 4.5, 5.0], events.height)))
    report = script.ceiling(Dataset("tiny", events.lazy()), [0, 1])
    means = {k: float(np.mean(v)) for k, v in report["ndcg@10"].items()}
    assert all(len(v) == 2 and all(0.0 <= x <= 1.0 for x in v) for v in report["ndcg@10"].values())
    families = {"ease lambda", "edlae", "dlae", "ease sqrt(rating-3)", "blend ease +"}
    assert all(any(name.startswith(f) for name in means) for f in families)
    assert report["best_mean"] == max(means.values()) == means[report["best"]]
    raw = float(np.mean(report["raw_implicit_als"]))
    assert np.isclose(report["best_ratio_to_raw_als"], report["best_mean"] / raw)
    text = script.to_markdown(report, "cmd", 1.0)
    assert report["best"] in text and "ON TEST" in text
    json.dumps(report)  # the report is written as JSON
