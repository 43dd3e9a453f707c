"""The city-scale study run as parallel parts (model subsets) and merged into one report.

On a shared 2-core machine one process gets a fraction of a core; parts of the same study (the same
split, the same seeded reader samples) run side by side and are merged with their per-reader values,
so the summary, the validation pick and the paired bootstrap intervals are those of one run::

    python experiments/city_scale.py run  popular,als --part base --baselines --peer
    python experiments/city_scale.py run  sansa --part sansa
    python experiments/city_scale.py merge base sansa     # -> experiments/results/city-scale.md/.json

Options of ``run``: ``--refit`` fits the chosen configurations again on everything before the test
cut-off (the default study does; here off: each test model is its validation fit, the readers' test
fold-in is their whole history).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARTS = REPO / "experiments" / "runs" / "city-scale-parts"


def run(models: str, part: str, baselines: bool, peer: bool, refit: bool, threads: int) -> None:
    from features.datasets import load_dataset
    from recsys.evaluation.protocols import SPECS
    from recsys.evaluation.scale import scale_config
    from recsys.evaluation.study import RunConfig, run_evaluation

    names = tuple(m for m in models.split(",") if m and m != "-")  # "-": no yuedu model (a peers-only part)
    config = scale_config(RunConfig("city", "temporal", models=names, seeds=(0,), threads=threads))
    config = dataclasses.replace(config, baselines=baselines, peer=peer and config.peer, refit=refit)
    # the oracle row comes from the part that runs the baselines only (one row after the merge)
    spec = SPECS["city"] if baselines else dataclasses.replace(SPECS["city"], synthetic_city=False)
    rows: list = []
    report = run_evaluation(load_dataset("city", profile="city"), spec, config, collect=rows)
    PARTS.mkdir(parents=True, exist_ok=True)
    report["command"] = "python experiments/city_scale.py " + " ".join(sys.argv[1:])
    (PARTS / f"{part}.json").write_text(json.dumps(report, indent=1, default=str))
    np.savez(PARTS / f"{part}.npz", **{f"{r.seed}|{r.model}|{r.kind}": r.per_reader_ndcg for r in rows})


def merge(parts: list[str]) -> None:
    from recsys.evaluation.compare import compare, summarise
    from recsys.evaluation.results import SeedResult
    from serving.cli.recsys_cmds import RESULTS_DIR, write_results

    reports = [json.loads((PARTS / f"{p}.json").read_text()) for p in parts]
    results = []
    for part, report in zip(parts, reports, strict=True):
        arrays = np.load(PARTS / f"{part}.npz")
        for r in report["results"]:
            row = SeedResult(r["seed"], r["model"], r["kind"], r["metrics"], r["validation"], r["params"], r["seconds"])
            row.test_evaluations, row.cost = r["test_evaluations"], r.get("cost", {})
            row.per_reader_ndcg = arrays[f"{r['seed']}|{r['model']}|{r['kind']}"]
            results.append(row)
    merged = dict(reports[0])
    merged["dataset"], merged["profile"], merged["kind"] = "city-scale", "city", "city"
    merged["models"] = [m for rep in reports for m in rep["models"]]
    merged["results"] = [r.to_dict() for r in results]
    merged["summary"] = summarise(results).to_dicts()
    merged["comparison"] = compare(results, same_readers=True)
    merged["wall_seconds"] = max(rep["wall_seconds"] for rep in reports)
    merged["parts"] = {
        p: {"command": rep["command"], "wall_seconds": rep["wall_seconds"]}
        for p, rep in zip(parts, reports, strict=True)
    }
    merged["command"] = (
        "; ".join(rep["command"] for rep in reports) + "; python experiments/city_scale.py merge " + " ".join(parts)
    )
    merged["machine"] = {"python": platform.python_version(), "platform": platform.platform(), **merged["threads"]}
    merged["merged_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    md, js = write_results(merged, RESULTS_DIR)
    print(f"wrote {md} and {js}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("models")
    r.add_argument("--part", required=True)
    r.add_argument("--baselines", action="store_true")
    r.add_argument("--peer", action="store_true")
    r.add_argument("--refit", action="store_true")
    r.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("merge")
    m.add_argument("parts", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.cmd == "run":
        run(args.models, args.part, args.baselines, args.peer, args.refit, args.threads)
    else:
        merge(args.parts)


if __name__ == "__main__":
    main()
