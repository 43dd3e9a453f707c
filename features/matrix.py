"""Reader × title interaction matrices (CSR, float32) with their vocabularies.

The container :class:`InteractionMatrix` is the one data structure handed to every model:
rows are readers, columns are titles, values are interaction weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from features.vocab import Vocabulary

MATRIX_FORMAT_VERSION = 1


@dataclass
class InteractionMatrix:
    """A reader × title CSR matrix with the vocabularies that name its rows and columns."""

    matrix: sp.csr_matrix
    readers: Vocabulary
    titles: Vocabulary
    #: How the weights were built (weighting config, source fingerprint, ...), JSON-serialisable.
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not sp.issparse(self.matrix):
            raise TypeError("matrix must be a scipy sparse matrix")
        if self.matrix.format != "csr":
            self.matrix = self.matrix.tocsr()
        if self.matrix.dtype != np.float32:
            self.matrix = self.matrix.astype(np.float32)
        n_r, n_t = self.matrix.shape
        if n_r != len(self.readers) or n_t != len(self.titles):
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match vocabularies "
                f"({len(self.readers)} readers, {len(self.titles)} titles)"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def fingerprint(self) -> str:
        """A stable hash of the matrix contents and vocabularies (for experiment tracking)."""
        import hashlib

        h = hashlib.sha256()
        m = self.matrix
        for arr in (m.indptr, m.indices, m.data):
            h.update(np.ascontiguousarray(arr).tobytes())
        for s in (self.readers.series, self.titles.series):
            h.update("\x1f".join(s.to_list()).encode())
        return h.hexdigest()[:16]

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        sp.save_npz(d / "matrix.npz", self.matrix, compressed=False)
        self.readers.save(d / "readers.parquet")
        self.titles.save(d / "titles.parquet")
        meta = {"format_version": MATRIX_FORMAT_VERSION, "shape": list(self.shape), **self.meta}
        (d / "matrix.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> InteractionMatrix:
        d = Path(directory)
        meta = json.loads((d / "matrix.json").read_text())
        if meta.get("format_version") != MATRIX_FORMAT_VERSION:
            raise ValueError(f"{d}: unsupported matrix format version {meta.get('format_version')}")
        return cls(
            sp.load_npz(d / "matrix.npz").tocsr(),
            Vocabulary.load(d / "readers.parquet"),
            Vocabulary.load(d / "titles.parquet"),
            {k: v for k, v in meta.items() if k not in ("format_version", "shape")},
        )
