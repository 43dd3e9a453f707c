"""Vocabularies: the one place where external ids (reader_id, title_id) map to matrix rows/columns.

Every matrix, model directory and service uses a :class:`Vocabulary` to translate ids, so that a
reader is always the same row for everything trained on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl


class Vocabulary:
    """An ordered set of string ids; position = matrix index.

    Lookups are vectorised (a polars join), so mapping a million ids costs one hash join, not a
    Python loop. Unknown ids map to ``-1``.
    """

    __slots__ = ("name", "_ids", "_frame", "_dict")

    def __init__(self, ids: np.ndarray | list[str] | pl.Series, name: str = "id") -> None:
        arr = pl.Series(name, ids, dtype=pl.String)
        if arr.null_count():
            raise ValueError(f"vocabulary '{name}': ids must not be null")
        if arr.n_unique() != len(arr):
            raise ValueError(f"vocabulary '{name}': ids must be unique")
        self.name = name
        self._ids = arr
        self._frame: pl.DataFrame | None = None
        self._dict: dict[str, int] | None = None

    @classmethod
    def from_values(cls, values: pl.Series | list[str], name: str = "id") -> Vocabulary:
        """Build a vocabulary of the distinct values, sorted (deterministic for the same input)."""
        s = pl.Series(name, values, dtype=pl.String).drop_nulls().unique().sort()
        return cls(s, name)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._ids.equals(other._ids)

    def __repr__(self) -> str:
        return f"Vocabulary({self.name!r}, n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """All ids as a numpy array of Python strings (object dtype), in index order."""
        return self._ids.to_numpy()

    @property
    def series(self) -> pl.Series:
        return self._ids

    def frame(self) -> pl.DataFrame:
        """``(<name>, <name>_index)`` as a frame, for joins inside polars pipelines."""
        if self._frame is None:
            self._frame = pl.DataFrame(
                {self.name: self._ids, f"{self.name}_index": np.arange(len(self), dtype=np.int32)}
            )
        return self._frame

    def index(self, ids: pl.Series | np.ndarray | list[str]) -> np.ndarray:
        """Indices (int32) of ``ids``; ``-1`` where an id is not in the vocabulary."""
        s = pl.Series(self.name, ids, dtype=pl.String)
        if len(s) <= 8:  # a counter or a single request: a dict lookup beats a join
            if self._dict is None:
                self._dict = {v: i for i, v in enumerate(self._ids.to_list())}
            return np.array([self._dict.get(v, -1) for v in s.to_list()], dtype=np.int32)
        out = (
            s.to_frame()
            .join(self.frame(), on=self.name, how="left", maintain_order="left")
            .get_column(f"{self.name}_index")
            .fill_null(-1)
        )
        return out.to_numpy().astype(np.int32, copy=False)

    def get(self, id_: str) -> int | None:
        """Index of one id, or None."""
        i = int(self.index([id_])[0])
        return None if i < 0 else i

    def lookup(self, indices: np.ndarray) -> np.ndarray:
        """Ids at ``indices`` (object array)."""
        return self.ids[np.asarray(indices)]

    def extend(self, new_ids: pl.Series | list[str]) -> Vocabulary:
        """A new vocabulary with ``new_ids`` appended (existing indices unchanged)."""
        s = pl.Series(self.name, new_ids, dtype=pl.String).drop_nulls().unique(maintain_order=True)
        fresh = s.filter(~s.is_in(self._ids.implode()))
        return Vocabulary(pl.concat([self._ids, fresh]), self.name)

    def save(self, path: str | Path) -> None:
        self._ids.to_frame().write_parquet(path)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        df = pl.read_parquet(path)
        return cls(df.to_series(0), df.columns[0])

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "ids": self._ids.to_list()})
