"""A tiny generated library (frames) and a tiny item-item model for the promotion tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.matrix import InteractionMatrix
from features.schema import AGE_BANDS, CARD_TYPES
from features.vocab import Vocabulary
from recsys.base import Recommender
from recsys.context import LibraryContext

TODAY = date(2026, 6, 15)
CLASSES = ("I247", "I712", "K29", "B82", "G25", "J22", "TP31", "O4", "R16", "H31")


def make_frames(seed: int = 0, n_titles: int = 80, n_readers: int = 40, n_loans: int = 600) -> dict[str, pl.DataFrame]:
    """A small city: 4 branches (one delivers), titles, copies, readers, loans, e-book events, 3 booklists."""
    rng = np.random.default_rng(seed)
    branches = pl.DataFrame(
        {
            "branch_id": ["CEN", "D-Erdao", "O-0001", "O-0002"],
            "name": ["Central Library", "Erdao District Library", "Subway Reading Room", "Riverside Cabinet"],
            "kind": ["central", "district_library", "subway", "cabinet"],
            "district": ["Chaoyang", "Erdao", "Nanguan", "Lvyuan"],
            "lat": [43.9, 43.8, 43.85, 43.88],
            "lon": [125.3, 125.4, 125.35, 125.2],
            "delivers": [True, False, False, False],
        }
    )
    tid = [f"T{i:03d}" for i in range(n_titles)]
    fmt = rng.choice(["print", "ebook"], n_titles, p=[0.85, 0.15])
    titles = pl.DataFrame(
        {
            "title_id": tid,
            "isbn13": [None] * n_titles,
            "title": [f"Book {i}" for i in range(n_titles)],
            "author": [f"Author {i % 17}" for i in range(n_titles)],
            "clc_class": rng.choice(CLASSES, n_titles),
            "audience": rng.choice(["children", "teen", "general", "adult_only"], n_titles, p=[0.25, 0.15, 0.45, 0.15]),
            "language": ["zh"] * n_titles,
            "list_price": rng.uniform(10, 90, n_titles).round(2),
            "format": fmt,
            "local_literature": rng.random(n_titles) < 0.15,
            "added_at": [TODAY - timedelta(days=int(d)) for d in rng.integers(0, 720, n_titles)],
        }
    )
    print_idx = np.flatnonzero(fmt == "print")
    n_copies = 3 * len(print_idx)
    copies = pl.DataFrame(
        {
            "copy_id": [f"C{i:05d}" for i in range(n_copies)],
            "title_id": np.array(tid, dtype=object)[rng.choice(print_idx, n_copies)],
            "branch_id": rng.choice(branches["branch_id"].to_numpy(), n_copies),
            "status": rng.choice(
                ["on_shelf", "on_loan", "in_transit", "lost", "withdrawn"], n_copies, p=[0.45, 0.25, 0.05, 0.1, 0.15]
            ),
            "acquired_at": [TODAY - timedelta(days=900)] * n_copies,
            "source": ["regular_order"] * n_copies,
        }
    )
    rid = [f"R{i:03d}" for i in range(n_readers)]
    readers = pl.DataFrame(
        {
            "reader_id": rid,
            "home_branch_id": rng.choice(branches["branch_id"].to_numpy(), n_readers),
            "age_band": rng.choice(AGE_BANDS, n_readers),
            "card_type": rng.choice(CARD_TYPES, n_readers),
            "registered_at": [date(2020, 1, 1)] * n_readers,
        }
    )
    # Readers borrow mostly within two "taste" groups of classes so co-occurrence is meaningful.
    lr = rng.integers(0, n_readers, n_loans)
    pop = rng.zipf(1.6, n_titles).astype(float)
    lt = rng.choice(n_titles, n_loans, p=pop / pop.sum())
    start = datetime(2025, 1, 1)
    loans = pl.DataFrame(
        {
            "loan_id": [f"L{i:05d}" for i in range(n_loans)],
            "reader_id": np.array(rid, dtype=object)[lr],
            "title_id": np.array(tid, dtype=object)[lt],
            "branch_id": readers["home_branch_id"].to_numpy()[lr],
            "channel": ["counter"] * n_loans,
            "borrowed_at": [start + timedelta(days=int(d)) for d in rng.integers(0, 530, n_loans)],
        }
    )
    booklists = pl.DataFrame(
        {
            "booklist_id": ["BL-now", "BL-past", "BL-future"],
            "name": ["Summer reading", "World Reading Day", "Autumn history"],
            "theme": ["summer_children", "world_reading_day", "local_history"],
            "starts_on": [TODAY - timedelta(days=10), date(2026, 4, 1), TODAY + timedelta(days=30)],
            "ends_on": [TODAY + timedelta(days=20), date(2026, 4, 30), TODAY + timedelta(days=60)],
        }
    )
    items = pl.DataFrame(
        {
            "booklist_id": np.repeat(["BL-now", "BL-past", "BL-future"], 8),
            "title_id": np.array(tid, dtype=object)[rng.choice(n_titles, 24, replace=False)],
        }
    )
    return {
        "branches": branches,
        "titles": titles,
        "copies": copies,
        "readers": readers,
        "loans": loans,
        "booklists": booklists,
        "booklist_items": items,
    }


def matrix_of(frames: dict[str, pl.DataFrame]) -> InteractionMatrix:
    """Binary reader × title loan matrix over all readers and titles of the frames."""
    readers = Vocabulary(frames["readers"]["reader_id"], "reader_id")
    titles = Vocabulary(frames["titles"]["title_id"], "title_id")
    r = readers.index(frames["loans"]["reader_id"])
    t = titles.index(frames["loans"]["title_id"])
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, t)), shape=(len(readers), len(titles)))
    m.data[:] = 1.0
    m.sum_duplicates()
    m.data[:] = 1.0
    return InteractionMatrix(m, readers, titles)


class TinyItemKNN(Recommender):
    """Cosine item-item model: score = history · similarity (+ a tiny popularity tie-breaker)."""

    name = "tiny_knn"

    def __init__(self, shrink: float = 1.0) -> None:
        self.shrink = shrink

    def _fit(self, X: sp.csr_matrix, titles: pl.DataFrame | None) -> None:
        b = (X > 0).astype(np.float32)
        co = (b.T @ b).toarray()
        norms = np.sqrt(np.diag(co))
        sim = co / (np.outer(norms, norms) + self.shrink)
        np.fill_diagonal(sim, 0.0)
        self.similarity_ = sim.astype(np.float32)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        s = np.asarray(history @ self.similarity_, dtype=np.float32)
        return s + 1e-4 * self.popularity_[None, :]

    def _score_readers(self, reader_rows: np.ndarray) -> np.ndarray:
        return self._score_history(self.user_items_[reader_rows])

    def _state(self) -> dict:
        return {"similarity": self.similarity_}

    def _set_state(self, state: dict, meta: dict) -> None:
        self.similarity_ = state["similarity"]


def build(seed: int = 0, today: date = TODAY, **kw) -> tuple[dict[str, pl.DataFrame], TinyItemKNN, LibraryContext]:
    """Frames, a fitted tiny model and the context aligned to it."""
    frames = make_frames(seed, **kw)
    im = matrix_of(frames)
    model = TinyItemKNN().fit(im)
    ctx = LibraryContext.from_frames(frames, model.titles_, model.readers_, today)
    return frames, model, ctx
