"""ISBN normalisation: ISBN-10 or ISBN-13 (with hyphens or spaces) to a compact ISBN-13.

Check digits are verified by python-stdnum (``stdnum.isbn``); this module never hand-writes
checksum arithmetic. Column-wise normalisation validates each *distinct* value once and joins the
result back, so the cost is per distinct ISBN, not per row.
"""

from __future__ import annotations

import polars as pl
from stdnum import isbn as _stdnum_isbn
from stdnum.exceptions import ValidationError


def to_isbn13(value: str | None) -> str | None:
    """Return the compact ISBN-13 (13 digits) of an ISBN-10 or ISBN-13, or ``None`` if it is invalid.

    Hyphens and spaces are removed; ISBN-10s are converted (978 prefix, new check digit).
    """
    if value is None:
        return None
    try:
        return _stdnum_isbn.validate(value, convert=True)
    except ValidationError:
        return None


def normalize_isbn_series(values: pl.Series) -> pl.Series:
    """Normalise a column of ISBNs to compact ISBN-13s; invalid values become null.

    The result has the same length, order and name as ``values``. Nulls stay null. Each distinct
    value is validated once (a Python call per distinct ISBN) and mapped back with a vectorised
    ``replace_strict``.
    """
    values = values.cast(pl.String)
    distinct = values.drop_nulls().unique(maintain_order=False)
    if distinct.is_empty():
        return pl.Series(values.name, [None] * len(values), dtype=pl.String)
    normalised = pl.Series([to_isbn13(v) for v in distinct.to_list()], dtype=pl.String)
    return values.replace_strict(distinct, normalised, default=None, return_dtype=pl.String)
