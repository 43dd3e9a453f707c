"""Recommendation models behind one protocol (:class:`recsys.base.Recommender`).

``MODELS`` maps registry names to classes; :func:`make_model` builds one from a name and
parameters (what an experiment config holds); :func:`load_model` reads a saved model directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.base import MODEL_FORMAT_VERSION, ModelFormatError, Recommender
from recsys.models.als import ALSRecommender
from recsys.models.bpr import BPRRecommender
from recsys.models.content import ContentRecommender
from recsys.models.ease import EASERecommender
from recsys.models.hybrid import HybridRecommender
from recsys.models.ials import IALSRecommender
from recsys.models.itemknn import ItemKNNRecommender
from recsys.models.popularity import PopularityRecommender
from recsys.models.rp3beta import RP3betaRecommender
from recsys.models.sansa import SANSARecommender

MODELS: dict[str, type[Recommender]] = {
    "popular": PopularityRecommender,
    "itemknn": ItemKNNRecommender,
    "als": ALSRecommender,
    "ials": IALSRecommender,
    "bpr": BPRRecommender,
    "ease": EASERecommender,
    "rp3beta": RP3betaRecommender,
    "sansa": SANSARecommender,
    "content": ContentRecommender,
    "hybrid": HybridRecommender,
}


def make_model(name: str, **params: Any) -> Recommender:
    """A new, unfitted model by registry name.

    For ``hybrid``, ``components`` may be given as ``{key: {"model": name, "params": {...}}}``
    (the form ``get_params`` reports), and they are built recursively.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    if name == "hybrid" and params.get("components"):
        params["components"] = {
            key: spec if isinstance(spec, Recommender) else make_model(spec["model"], **spec.get("params", {}))
            for key, spec in params["components"].items()
        }
    return cls(**params)


def load_model(directory: str | Path) -> Recommender:
    """Load a model saved with :meth:`Recommender.save` (no pickle, no training data needed)."""
    d = Path(directory)
    meta_path = d / "model.json"
    if not meta_path.exists():
        raise ModelFormatError(f"{meta_path}: not a saved model directory (model.json missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{meta_path}: invalid JSON ({exc})") from exc
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelFormatError(f"{meta_path}: unsupported format_version {version!r} (expected {MODEL_FORMAT_VERSION})")
    name = meta.get("model")
    if name not in MODELS:
        raise ModelFormatError(f"{meta_path}: unknown model {name!r}")
    return MODELS[name]._from_saved(d, meta)


__all__ = [
    "MODELS",
    "ALSRecommender",
    "BPRRecommender",
    "ContentRecommender",
    "EASERecommender",
    "HybridRecommender",
    "IALSRecommender",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "RP3betaRecommender",
    "SANSARecommender",
    "load_model",
    "make_model",
]
