"""Per-seed result rows of an evaluation study: one model's test metrics on one seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.evaluation.batch import metric_row
from recsys.metrics import ndcg_per_reader


@dataclass
class SeedResult:
    """One model's test metrics on one seed, with what was chosen on validation."""

    seed: int
    model: str
    kind: str  # "yuedu", "constrained" (with filters / promotion), "baseline" or "oracle"
    metrics: dict[str, float]
    validation: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    test_evaluations: int = 1
    #: What the final fit cost: ``fit_seconds``, ``peak_rss_gb`` (the process) and ``fit_extra_gb``
    #: (above the process's memory before the fit); empty when not measured.
    cost: dict[str, float] = field(default_factory=dict)
    #: NDCG@10 of each test reader (NaN: empty target), in the target's row order (for the bootstrap;
    #: not written to the JSON).
    per_reader_ndcg: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "model": self.model,
            "kind": self.kind,
            "metrics": self.metrics,
            "validation": self.validation,
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "test_evaluations": self.test_evaluations,
            **({"cost": self.cost} if self.cost else {}),
        }


def scored(
    seed: int,
    model: str,
    kind: str,
    recs: np.ndarray,
    target: sp.csr_matrix,
    validation: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    seconds: float = 0.0,
) -> SeedResult:
    """A :class:`SeedResult` of test recommendations ``recs`` against ``target`` (one scoring)."""
    return SeedResult(
        seed,
        model,
        kind,
        metric_row(recs, target),
        validation or {},
        params or {},
        seconds,
        per_reader_ndcg=ndcg_per_reader(recs, target, 10),
    )
