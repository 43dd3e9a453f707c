"""How high can NDCG@10 go on MovieLens strong generalisation? A ceiling study, chosen ON TEST.

``yuedu evaluate --dataset movielens`` chooses everything on validation. This script instead scores
many configurations of the model families that do best there directly on the TEST fold of every
seed (the same refit split, pruning and metric code as ``yuedu evaluate``) and reports the best mean:
an upper bound of what choosing among them could reach, never a result to quote as a model's score.

Families (all on the refit training matrix, titles with >= 2 training readers):

* EASE over a lambda grid (:class:`recsys.models.ease.EASESpectrum`);
* popularity-scaled L2 (``Lambda = a * diag(XᵀX) + lambda``), with EASE's zero-diagonal closed form
  (the full-rank EDLAE of Steck 2020) and the unconstrained DLAE form ``B = I - P Lambda``;
* EASE on rating-valued input (weight ``sqrt(rating - 3)``: a 5 counts 1.41x a 4);
* fixed blends of per-reader standardised EASE, ALS and RP3beta scores (the hybrid's components).

Run: ``.venv/bin/python experiments/strong_ceiling.py [--seeds 5]``; writes
``experiments/results/movielens-strong-ceiling.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from rich.progress import track
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from features.datasets import Dataset, load_dataset  # noqa: E402
from features.matrix import WeightingConfig  # noqa: E402
from recsys.base import top_n_dense  # noqa: E402
from recsys.evaluation.baselines import raw_implicit_baselines  # noqa: E402
from recsys.evaluation.matrices import PrunedMatrices, prune  # noqa: E402
from recsys.evaluation.protocols import make_split, prepare_events, refit_split  # noqa: E402
from recsys.metrics import ndcg_at_k  # noqa: E402
from recsys.models import make_model  # noqa: E402
from recsys.models.ease import EASESpectrum  # noqa: E402

EASE_LAMBDAS = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
SCALED_L2 = list(itertools.product((0.25, 0.5, 1.0), (50.0, 100.0, 200.0)))
VALUE_LAMBDAS = (50.0, 100.0, 200.0)
BLEND_EASE_LAMBDA = 100.0
BLEND_COMPONENTS = {
    "als": {"factors": 32, "regularization": 0.1, "alpha": 2.0, "iterations": 15},
    "rp3beta": {"K": 200, "alpha": 0.6, "beta": 0.5},
}
BLEND_GRID = (0.0, 0.5, 1.0)
MIN_TITLE_READERS = 2


def _standardise(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    """Per-reader z-scores over the unseen titles (seen titles -> -inf)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[seen.nonzero()] = np.nan
    z = (s - np.nanmean(s, axis=1, keepdims=True)) / (np.nanstd(s, axis=1, keepdims=True) + 1e-12)
    return np.nan_to_num(z, nan=-np.inf)


def configurations(data: PrunedMatrices, valued: PrunedMatrices, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, test scores over the pruned titles) for every configuration of one seed."""
    X = data.train.matrix
    hist = data.foldin["test"]
    spectrum = EASESpectrum(X)
    ease = dict(spectrum.scores(hist, EASE_LAMBDAS))
    for lam, scores in ease.items():
        yield f"ease lambda={lam:g}", scores
    G = np.asarray((X.T @ X).todense(), dtype=np.float64)
    d = np.diag(G).copy()
    H = sp.csr_matrix(hist, dtype=np.float64)
    for a, lam in SCALED_L2:
        L = a * d + lam
        P = scipy.linalg.inv(G + np.diag(L), check_finite=False)
        for form, B in (("edlae", -P / np.diag(P)[None, :]), ("dlae", -P * L[None, :])):
            B[np.diag_indices_from(B)] = 0.0
            yield f"{form} a={a:g} lambda={lam:g}", np.asarray(H @ B)
    Xv, Hv = valued.train.matrix.copy(), valued.foldin["test"].copy()
    for m in (Xv, Hv):
        m.data = np.sqrt(np.maximum(m.data - 3.0, 0.0))
    for lam, scores in EASESpectrum(Xv).scores(Hv, VALUE_LAMBDAS):
        yield f"ease sqrt(rating-3) lambda={lam:g}", scores
    parts = {"ease": _standardise(ease[BLEND_EASE_LAMBDA], hist)}
    for name, params in BLEND_COMPONENTS.items():
        extra = {"seed": seed} if name == "als" else {}
        model = make_model(name, **params, **extra).fit(data.train)
        parts[name] = _standardise(model.score(history=hist), hist)
    for w in itertools.product(BLEND_GRID, repeat=len(BLEND_COMPONENTS)):
        if any(w):
            blend = parts["ease"] + sum(wi * parts[n] for wi, n in zip(w, BLEND_COMPONENTS, strict=True) if wi)
            label = " + ".join(f"{wi:g} {n}" for wi, n in zip(w, BLEND_COMPONENTS, strict=True) if wi)
            yield f"blend ease + {label}", blend


def ceiling(
    dataset: Dataset, seeds: list[int], progress: Callable[[range], Iterator[int]] | None = None
) -> dict[str, object]:
    """Test NDCG@10 of every configuration per seed, raw implicit ALS defaults, and the best mean."""
    events = prepare_events(dataset, "movielens")
    per_config: dict[str, list[float]] = {}
    raw_als: list[float] = []
    binary = WeightingConfig(binarize=True)
    valued_config = WeightingConfig(use_value=True, aggregate="max")
    for seed in (progress or iter)(seeds):
        final = refit_split(make_split("movielens", "strong", events, seed))
        data = prune(final.to_matrices(binary), MIN_TITLE_READERS)
        valued = prune(final.to_matrices(valued_config), MIN_TITLE_READERS)
        target = data.full.folds["test"].target.matrix
        allowed = np.arange(data.kept.size, dtype=np.int32)
        for name, scores in configurations(data, valued, seed):
            ids, _ = top_n_dense(np.asarray(scores, dtype=np.float32), 10, data.foldin["test"], allowed)
            recs = np.where(ids >= 0, data.kept[np.maximum(ids, 0)], -1).astype(np.int32)
            per_config.setdefault(name, []).append(ndcg_at_k(recs, target, 10))
        raw = raw_implicit_baselines(data.full, 0, seed)["raw-implicit-als"]
        raw_als.append(ndcg_at_k(raw, target, 10))
    means = {name: float(np.mean(v)) for name, v in per_config.items()}
    best = max(means, key=means.__getitem__)
    return {
        "seeds": list(seeds),
        "ndcg@10": per_config,
        "raw_implicit_als": raw_als,
        "best": best,
        "best_mean": means[best],
        "best_ratio_to_raw_als": means[best] / float(np.mean(raw_als)),
    }


def to_markdown(report: dict, command: str, seconds: float) -> str:
    raw = float(np.mean(report["raw_implicit_als"]))
    means = {k: float(np.mean(v)) for k, v in report["ndcg@10"].items()}
    families: dict[str, str] = {}
    for name in sorted(means, key=means.__getitem__, reverse=True):
        families.setdefault(name.split(" lambda=")[0].split(" a=")[0].split(" + ")[0], name)
    lines = [
        "# Ceiling study: MovieLens strong generalisation, configurations chosen ON TEST",
        "",
        f"- command: `{command}`; wall time {seconds:.0f} s; seeds {report['seeds']}",
        "- an upper bound of what choosing among these configurations could reach; no row is a model's",
        "  validated score (those are in `movielens.md`).",
        "",
        f"Raw implicit ALS defaults: NDCG@10 {raw:.4f}. Best configuration: `{report['best']}` "
        f"{report['best_mean']:.4f} = **{report['best_ratio_to_raw_als']:.3f}x** raw ALS "
        f"(1.3x would need {1.3 * raw:.4f}).",
        "",
        "| best of each family | mean NDCG@10 | / raw ALS | per seed |",
        "|---|---:|---:|---|",
    ]
    for name in sorted(families.values(), key=means.__getitem__, reverse=True):
        seeds = ", ".join(f"{v:.3f}" for v in report["ndcg@10"][name])
        lines.append(f"| {name} | {means[name]:.4f} | {means[name] / raw:.3f}x | {seeds} |")
    lines += ["", f"All {len(means)} configurations: `movielens-strong-ceiling.json`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--path", default=None, help="MovieLens folder (default: ../shared/data/...)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dataset = load_dataset("movielens", args.path)
    with threadpool_limits(None, user_api="blas"):
        report = ceiling(dataset, list(range(args.seeds)), lambda s: track(s, description="ceiling seeds"))
    seconds = time.perf_counter() - started
    command = "python experiments/strong_ceiling.py" + ("" if args.seeds == 5 else f" --seeds {args.seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "movielens-strong-ceiling.json").write_text(json.dumps(report, indent=1))
    text = to_markdown(report, command, seconds)
    (args.out / "movielens-strong-ceiling.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
