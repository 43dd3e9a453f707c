"""Matrix choices: how a model's training matrix is weighted and which titles it keeps.

A :class:`MatrixChoice` (binary, BM25, recency decay, input-only events down-weighted) is tuned over
like a hyper-parameter (:func:`matrix_choices`); :func:`prune` restricts a split's matrices to the
titles with enough training readers while targets keep the full vocabulary (pruned titles count as
misses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from features.matrix import DEFAULT_CHANNEL_WEIGHTS, InteractionMatrix, WeightingConfig
from features.splits import SplitMatrices
from features.vocab import Vocabulary
from recsys.evaluation.protocols import INPUT_ONLY_CHANNEL

#: Weights tried for input-only events relative to a positive (extra matrix choices "low-<w>"),
#: besides 1.0 (the plain binary choice): a watched-but-disliked title is weaker evidence.
INPUT_ONLY_WEIGHTS: tuple[float, ...] = (0.5, 0.25)


@dataclass(frozen=True)
class MatrixChoice:
    """How the training matrix is built for a model: a weighting and a title support cut.

    ``min_title_readers``: titles with fewer training readers are left out of the model (it can
    never recommend them; target events on them still count as misses).
    """

    name: str
    weighting: WeightingConfig
    min_title_readers: int = 1


def matrix_choices(protocol: str, quick: bool, inputs: str = "targets") -> list[MatrixChoice]:
    """The weighting options tuned over: binary and BM25; recency decay for time-based protocols;
    with ``inputs="all"``, input-only events down-weighted to each of :data:`INPUT_ONLY_WEIGHTS`."""
    binary = WeightingConfig(binarize=True)
    out = [MatrixChoice("binary", binary, 1 if quick else 2)]
    if quick:
        return out
    out.append(MatrixChoice("bm25", WeightingConfig(binarize=True, scheme="bm25"), 2))
    if protocol == "temporal":
        out.append(MatrixChoice("recency365", WeightingConfig(binarize=False, aggregate="max", half_life_days=365), 2))
    if inputs == "all":
        for w in INPUT_ONLY_WEIGHTS:
            channels = {**DEFAULT_CHANNEL_WEIGHTS, INPUT_ONLY_CHANNEL: w}
            out.append(MatrixChoice(f"low-{w:g}", WeightingConfig(aggregate="max", channel_weights=channels), 2))
    return out


@dataclass
class PrunedMatrices:
    """Split matrices restricted to ``kept`` title columns for fitting and fold-in; targets stay
    over the full train title vocabulary so that pruned titles count as misses."""

    train: InteractionMatrix
    foldin: dict[str, sp.csr_matrix]
    kept: np.ndarray
    full: SplitMatrices

    def full_columns(self, ids: np.ndarray) -> np.ndarray:
        """Title columns of the pruned matrices (``-1`` padding kept) as columns of the full vocabulary."""
        return np.where(ids >= 0, self.kept[np.maximum(ids, 0)], -1).astype(np.int32)


def prune(full: SplitMatrices, min_title_readers: int) -> PrunedMatrices:
    """Keep titles with at least ``min_title_readers`` distinct training readers."""
    X = full.train.matrix
    readers_per_title = np.bincount(X.indices, minlength=X.shape[1])
    kept = np.flatnonzero(readers_per_title >= min_title_readers).astype(np.int32)
    if kept.size == X.shape[1]:
        train = full.train
    else:
        titles = Vocabulary(full.train.titles.series.gather(kept), full.train.titles.name)
        train = InteractionMatrix(X[:, kept], full.train.readers, titles, dict(full.train.meta))
    foldin = {name: f.foldin.matrix[:, kept] for name, f in full.folds.items()}
    return PrunedMatrices(train, foldin, kept, full)
