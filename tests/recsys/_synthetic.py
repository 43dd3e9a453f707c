"""Small clustered reader x title data for model tests (5 taste clusters, low-rank structure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from features.vocab import Vocabulary

#: CLC classes and subject keywords that identify each cluster's titles.
CLUSTER_CLC = ("I247", "K29", "TP31", "R16", "J22")
CLUSTER_SUBJECTS = ("novel;love", "history;dynasty", "programming;computer", "health;diet", "painting;art")


@dataclass
class Synthetic:
    train: InteractionMatrix
    target: sp.csr_matrix
    reader_cluster: np.ndarray
    title_cluster: np.ndarray
    titles: pl.DataFrame


def clustered(
    n_readers: int = 300,
    n_titles: int = 200,
    n_clusters: int = 5,
    seed: int = 0,
    p_in: float = 0.3,
    p_out: float = 0.01,
) -> Synthetic:
    """Readers borrow titles of their own cluster with ``p_in`` and others with ``p_out``; a popular
    head of titles is shared by everyone. 20% of each reader's loans are held out as ``target``."""
    rng = np.random.default_rng(seed)
    rc = rng.integers(0, n_clusters, n_readers)
    tc = np.arange(n_titles) % n_clusters
    p = np.where(rc[:, None] == tc[None, :], p_in, p_out)
    p[:, :10] = 0.12  # a popular head everybody borrows
    full = (rng.random((n_readers, n_titles)) < p).astype(np.float32)
    holdout = (rng.random(full.shape) < 0.2) & (full > 0)
    train = sp.csr_matrix(np.where(holdout, 0, full).astype(np.float32))
    target = sp.csr_matrix(holdout.astype(np.float32))
    readers = Vocabulary([f"R{i:04d}" for i in range(n_readers)], "reader_id")
    titles = Vocabulary([f"T{i:04d}" for i in range(n_titles)], "title_id")
    frame = catalogue(titles.ids, tc)
    return Synthetic(InteractionMatrix(train, readers, titles), target, rc, tc, frame)


def catalogue(title_ids, clusters) -> pl.DataFrame:
    """A ``titles`` frame whose metadata reveals each title's cluster."""
    clusters = np.asarray(clusters)
    return pl.DataFrame(
        {
            "title_id": list(title_ids),
            "title": [f"{CLUSTER_SUBJECTS[c].split(';')[0]} volume {i}" for i, c in enumerate(clusters)],
            "author": [f"Author {c}-{i % 3}" for i, c in enumerate(clusters)],
            "clc_class": [CLUSTER_CLC[c] for c in clusters],
            "subjects": [CLUSTER_SUBJECTS[c] for c in clusters],
        }
    )
