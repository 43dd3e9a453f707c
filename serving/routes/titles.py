"""Title endpoints: similar titles."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, status

from features import bounds
from serving.deps import Bundle, Caller
from serving.schemas import SimilarOut, TitleOut

router = APIRouter(prefix="/v1/titles", tags=["titles"])


def title_out(bundle, rows: np.ndarray, scores: np.ndarray | None = None) -> list[TitleOut]:
    """Titles by context row (rows < 0 are padding and dropped)."""
    ctx = bundle.context
    keep = rows >= 0
    rows = rows[keep]
    sc = scores[keep] if scores is not None else None
    return [
        TitleOut(
            title_id=str(ctx.title_ids[t]),
            title=str(ctx.title_text[t]),
            author=str(ctx.author[t]),
            clc_class=str(ctx.clc_class[t]),
            score=None if sc is None else float(sc[i]),
        )
        for i, t in enumerate(rows.tolist())
    ]


@router.get("/{title_id}/similar", response_model=SimilarOut)
def similar(
    title_id: Annotated[str, Path(min_length=1, max_length=bounds.ID_MAX)],
    _principal: Caller,
    bundle: Bundle,
    n: Annotated[int, Query(ge=1, le=100, description="How many titles.")] = 10,
) -> SimilarOut:
    """The ``n`` titles most similar to a title under the served model (any signed-in role)."""
    row = bundle.context.titles.get(title_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"title '{title_id}' is not in the served catalogue")
    rows, scores = bundle.model.similar(np.array([row]), n)
    finite = np.isfinite(scores[0])
    return SimilarOut(
        title_id=title_id, model_version=bundle.version, items=title_out(bundle, rows[0][finite], scores[0][finite])
    )
