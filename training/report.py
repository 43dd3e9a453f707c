"""Experiment comparison reports: Markdown + HTML with matplotlib plots, and the command that reproduces them."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from training.config import REPO_ROOT

_log = logging.getLogger(__name__)
RESULTS_DIR = REPO_ROOT / "experiments" / "results"


@dataclass
class ExperimentRow:
    """One experiment's outcome in a comparison."""

    name: str
    model: str
    dataset: str
    validation: dict[str, float]
    test: dict[str, float]
    timings: dict[str, float]
    run_id: str | None
    segments: dict[str, dict[str, float]] = field(default_factory=dict)


def _metric_ks(rows: list[ExperimentRow], metric: str) -> list[int]:
    ks = {int(k.split("@")[1]) for r in rows for k in r.test if k.startswith(metric + "@")}
    return sorted(ks)


def _plots(rows: list[ExperimentRow], out_dir: Path, stem: str) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []
    # 1. Recall and NDCG vs k per model.
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("recall", "ndcg"), strict=True):
        ks = _metric_ks(rows, metric)
        for r in rows:
            ax.plot(ks, [r.test.get(f"{metric}@{k}", float("nan")) for k in ks], marker="o", label=r.name)
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k (test)")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    made.append(("Recall and NDCG vs k", _save(fig, out_dir, f"{stem}_vs_k.png")))
    # 2. Accuracy vs beyond-accuracy (novelty, coverage).
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, other in zip(axes, ("novelty@10", "coverage@10"), strict=True):
        for r in rows:
            ax.scatter(r.test.get(other, float("nan")), r.test.get("ndcg@10", float("nan")))
            ax.annotate(r.model, (r.test.get(other, 0), r.test.get("ndcg@10", 0)), fontsize=7)
        ax.set_xlabel(f"{other} (test)")
        ax.set_ylabel("ndcg@10 (test)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    made.append(("Accuracy vs novelty and coverage", _save(fig, out_dir, f"{stem}_accuracy_vs_beyond.png")))
    # 3. Per-segment bars.
    segs = sorted({s for r in rows for s in r.segments})
    if segs:
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.8 / max(len(rows), 1)
        for i, r in enumerate(rows):
            ax.bar(
                [j + i * width for j in range(len(segs))],
                [r.segments.get(s, {}).get("ndcg@10", 0.0) for s in segs],
                width,
                label=r.name,
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(segs))], segs, fontsize=8)
        ax.set_ylabel("ndcg@10 (test)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(("NDCG@10 per reader segment", _save(fig, out_dir, f"{stem}_segments.png")))
    # 4. Training time vs quality.
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in rows:
        ax.scatter(r.timings.get("fit_s", float("nan")), r.test.get("ndcg@10", float("nan")))
        ax.annotate(r.model, (r.timings.get("fit_s", 0), r.test.get("ndcg@10", 0)), fontsize=7)
    ax.set_xlabel("fit time, s")
    ax.set_ylabel("ndcg@10 (test)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    made.append(("Training time vs quality", _save(fig, out_dir, f"{stem}_time_vs_quality.png")))
    return made


def _save(fig, out_dir: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def write_report(
    rows: list[ExperimentRow], name: str, command: str, out_dir: Path = RESULTS_DIR, warning: str | None = None
) -> Path:
    """Write ``<out_dir>/<name>.md`` and ``.html`` (+ PNG plots and a JSON of the figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(rows, out_dir, name)
    metric_cols = [
        m
        for m in ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "map@10", "coverage@10", "novelty@10")
        if any(m in r.test for r in rows)
    ]
    header = ["experiment", "model", *[f"test {m}" for m in metric_cols], "val ndcg@10", "fit s", "MLflow run"]
    table = [header]
    for r in sorted(rows, key=lambda r: -r.test.get("ndcg@10", 0.0)):
        table.append(
            [
                r.name,
                r.model,
                *[f"{r.test.get(m, float('nan')):.4f}" for m in metric_cols],
                f"{r.validation.get('ndcg@10', float('nan')):.4f}",
                f"{r.timings.get('fit_s', 0):.2f}",
                (r.run_id or "-")[:12],
            ]
        )
    md = [
        f"# Experiment comparison: {name}",
        "",
        "Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Test metrics are computed once per experiment, after model selection on validation.",
        "",
    ]
    if warning:
        md += [f"**{warning}**", ""]
    md += ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    md += ["| " + " | ".join(row) + " |" for row in table[1:]]
    md += [""]
    for title, file in plots:
        md += [f"## {title}", "", f"![{title}]({file})", ""]
    (out_dir / f"{name}.md").write_text("\n".join(md))
    body = [
        f"<h1>Experiment comparison: {html.escape(name)}</h1>",
        f"<p>Reproduce with: <code>{html.escape(command)}</code></p>",
    ]
    if warning:
        body.append(f"<p><strong>{html.escape(warning)}</strong></p>")
    body += [
        "<table border=1 cellpadding=4>",
    ]
    body += ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table[0]) + "</tr>"]
    body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table[1:]]
    body += ["</table>"] + [f"<h2>{html.escape(t)}</h2><img src='{f}'>" for t, f in plots]
    (out_dir / f"{name}.html").write_text("<!doctype html><meta charset=utf-8><body>" + "\n".join(body) + "</body>")
    (out_dir / f"{name}.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
    return out_dir / f"{name}.md"


def protocol_warning(configs) -> str | None:
    """A sentence when the configs do not share one protocol and data set: their figures are then
    not comparable (a strong-generalisation NDCG is not a temporal one)."""
    protocols = sorted({c.split.protocol for c in configs})
    datasets = sorted({f"{c.dataset.kind}:{c.dataset.path or c.dataset.profile}" for c in configs})
    parts = []
    if len(protocols) > 1:
        parts.append(f"protocols {', '.join(protocols)}")
    if len(datasets) > 1:
        parts.append(f"data sets {', '.join(datasets)}")
    if not parts:
        return None
    return f"Warning: these experiments mix {' and '.join(parts)}; compare figures only within one of them."


def run_experiments(
    config_paths: list[Path],
    name: str,
    command: str,
    track: bool = True,
    progress=None,
    out_dir: Path = RESULTS_DIR,
    models_dir: Path | None = None,
    log_models: bool = False,
) -> tuple[Path, list[ExperimentRow]]:
    """Train and test-evaluate each config as a run of ONE MLflow experiment named ``name`` (the
    study), then write one comparison report into ``out_dir``."""
    from training.config import load_config
    from training.pipeline import train

    configs = [load_config(p) for p in config_paths]  # refuse a bad config before any work starts
    warning = protocol_warning(configs)
    if warning:
        _log.warning(warning)
    rows = []
    for cfg in configs:
        out = models_dir / cfg.name if models_dir else None
        result = train(
            cfg, out=out, track=track, evaluate_test=True, progress=progress, experiment=name, log_model=log_models
        )
        rows.append(
            ExperimentRow(
                cfg.name,
                cfg.model.name,
                cfg.dataset.kind,
                result.validation,
                result.test or {},
                result.timings,
                result.run_id,
                result.test_segments,
            )
        )
    return write_report(rows, name, command, out_dir, warning), rows
