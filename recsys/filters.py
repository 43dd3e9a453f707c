"""Business filters applied before the top-n cut: what a reader must never be offered.

:func:`build_exclusions` turns a :class:`FilterConfig` and a :class:`~recsys.context.LibraryContext`
into the ``exclude`` argument of ``model.recommend``: a per-reader CSR bool matrix plus a 1-D
global mask. Because the model removes them *before* cutting the top n, a reader still gets n
results whenever n admissible titles exist.

Rules (each can be switched off):

* **Already borrowed** — borrowed (loan or e-book event) within ``borrowed_window_days`` days
  before ``today`` (None = ever).
* **Availability** — a print title needs an on-shelf copy at the reader's branch; when home delivery
  reaches that branch, an on-shelf copy anywhere in the city suffices. E-books are always available.
  A reader with no known branch is treated like a delivery reader (any on-shelf copy). Titles on
  shelf nowhere are excluded globally. With queue-aware promotion (``PromotionConfig.max_wait_days``,
  :mod:`recsys.queues`) the service replaces this rule by "borrowable within N days".
* **Audience** — ``adult_only`` titles never reach a child card nor a minor's age band; in addition
  each age band may be restricted to the audiences in ``audiences_by_age_band`` (by default young
  children see children's titles only, 7-12 see children's and teen titles). Adults may still get
  children's titles (parents borrow for their children). Readers of unknown age band and card get
  every audience except ``adult_only`` when ``unknown_reader_is_minor`` is true (the default: when in
  doubt, protect).
* **Withdrawn** — print titles with no copy left that is not withdrawn or lost.
* **Explicit exclusions** — a list of title ids (content blocklist, recalls).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features.schema import AGE_BANDS, AUDIENCES, CARD_TYPES
from recsys.context import HISTORY_OFFSET, LibraryContext

_log = logging.getLogger(__name__)

_MINOR_BANDS = ("child_0_6", "child_7_12", "teen_13_17")


class FilterConfig(BaseModel):
    """Which filters apply; defaults are the library's policy (DOMAIN.md §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter_borrowed: bool = Field(True, description="Exclude titles the reader already borrowed.")
    borrowed_window_days: int | None = Field(
        None, ge=0, description="Only loans within this many days before today count; None = ever."
    )
    require_available: bool = Field(
        True, description="Exclude print titles with no on-shelf copy reachable by the reader (branch or delivery)."
    )
    audience_rules: bool = Field(True, description="Apply the age-appropriateness rules.")
    minor_age_bands: tuple[str, ...] = Field(_MINOR_BANDS, description="Age bands that never get adult_only titles.")
    child_card_types: tuple[str, ...] = Field(("child",), description="Card types that never get adult_only titles.")
    audiences_by_age_band: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {"child_0_6": ("children",), "child_7_12": ("children", "teen")},
        description="Optional whitelist of title audiences per age band (bands not listed: no whitelist).",
    )
    unknown_reader_is_minor: bool = Field(
        True, description="Readers with unknown age band and card type are protected like minors."
    )
    exclude_withdrawn: bool = Field(True, description="Exclude withdrawn print titles.")
    excluded_title_ids: tuple[str, ...] = Field((), description="Title ids never recommended (blocklist).")

    def model_post_init(self, __context: object) -> None:
        for band in (*self.minor_age_bands, *self.audiences_by_age_band):
            if band not in AGE_BANDS:
                raise ValueError(f"FilterConfig: unknown age band '{band}' (expected one of {AGE_BANDS})")
        for card in self.child_card_types:
            if card not in CARD_TYPES:
                raise ValueError(f"FilterConfig.child_card_types: unknown card type '{card}'")
        for band, auds in self.audiences_by_age_band.items():
            bad = set(auds) - set(AUDIENCES)
            if bad:
                raise ValueError(f"FilterConfig.audiences_by_age_band[{band}]: unknown audiences {sorted(bad)}")


def audience_groups(context: LibraryContext, reader_rows: np.ndarray, config: FilterConfig) -> np.ndarray:
    """Audience group per reader (int): ``age_band_code + 1`` (0 = unknown band), plus ``len(AGE_BANDS)+1``
    when the reader holds a child card; readers not in the context (``-1``) are unknown."""
    rows = np.asarray(reader_rows)
    known = rows >= 0
    band = np.full(len(rows), -1, np.int64)
    card = np.full(len(rows), -1, np.int64)
    band[known] = context.reader_age_band[rows[known]]
    card[known] = context.reader_card_type[rows[known]]
    child_cards = np.array([CARD_TYPES.index(c) for c in config.child_card_types], np.int64)
    child_card = np.isin(card, child_cards)
    return (band + 1) + child_card * (len(AGE_BANDS) + 1)


def audience_blocks(audience: np.ndarray, config: FilterConfig) -> np.ndarray:
    """Bool (n_groups × n_titles): titles blocked for each audience group (see :func:`audience_groups`),
    given each title's audience code (index into ``features.schema.AUDIENCES``, -1 unknown)."""
    n_bands = len(AGE_BANDS)
    aud = audience
    adult_only = aud == AUDIENCES.index("adult_only")
    blocks = np.zeros((2 * (n_bands + 1), len(aud)), bool)
    for child_card in (0, 1):
        for code in range(-1, n_bands):
            g = code + 1 + child_card * (n_bands + 1)
            band = AGE_BANDS[code] if code >= 0 else None
            minor = (
                child_card == 1 or band in config.minor_age_bands or (band is None and config.unknown_reader_is_minor)
            )
            blocked = adult_only.copy() if minor else np.zeros(len(aud), bool)
            if band in config.audiences_by_age_band:
                allowed = [AUDIENCES.index(a) for a in config.audiences_by_age_band[band]]
                # Titles with an unknown audience are only safe for readers without a whitelist.
                blocked |= ~np.isin(aud, allowed)
            blocks[g] = blocked
    return blocks


def unreachable(context: LibraryContext, branch_rows: np.ndarray) -> sp.csr_matrix:
    """Readers × titles bool: print titles on shelf somewhere but *not* reachable from the reader's branch.

    Reachable = on shelf at the branch, or anywhere when the branch delivers (or is unknown, ``-1``).
    Titles on shelf nowhere are not included (they are a global exclusion).
    """
    b = np.asarray(branch_rows, dtype=np.int64)
    n_t = len(context.titles)
    dense = np.unpackbits(_unreachable_bits(context)[_branch_slot(context, b)], axis=1, count=n_t).astype(bool)
    return sp.csr_matrix(dense)


def _branch_slot(context: LibraryContext, branch_rows: np.ndarray) -> np.ndarray:
    """Row of :func:`_unreachable_bits` per reader: the branch row, or the last row (unknown branch)."""
    return np.where(branch_rows >= 0, branch_rows, len(context.branches))


def _unreachable_bits(context: LibraryContext) -> np.ndarray:
    """Packed (n_branches + 1) × ceil(n_titles / 8) bitmask of :func:`unreachable` per branch; the last
    row (unknown branch) is empty. Built once per context (~n_branches × n_titles / 8 bytes)."""

    def build() -> np.ndarray:
        n_b = len(context.branches)
        somewhere = context.on_shelf_anywhere & ~context.digital
        # A delivering branch reaches every on-shelf copy: nothing is missing there.
        missing = np.packbits(somewhere)[None, :] & ~context.shelf_bits
        missing[context.branch_delivers.astype(bool)] = 0
        return np.vstack([missing.reshape(n_b, -1), np.zeros((1, missing.shape[-1]), np.uint8)])

    return context.memo("unreachable_bits", build)


def _prepared(context: LibraryContext, config: FilterConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per (context, config), built once: (global bool mask, allowed title rows int32, audience blocks
    bool n_groups × n_titles or None)."""
    key = ("filters", config.model_dump_json())

    def build() -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n_t = len(context.titles)
        glob = np.zeros(n_t, bool)
        if config.exclude_withdrawn:
            glob |= context.withdrawn
        if config.excluded_title_ids:
            idx = context.titles.index(list(config.excluded_title_ids))
            glob[idx[idx >= 0]] = True
        if config.require_available and context.has_holdings:
            glob |= ~context.on_shelf_anywhere & ~context.digital
        blocks = audience_blocks(context.audience, config) if config.audience_rules else None
        return glob, np.flatnonzero(~glob).astype(np.int32), blocks

    return context.memo(key, build)


def allowed_titles(context: LibraryContext, config: FilterConfig) -> np.ndarray:
    """Title rows not excluded for everyone under ``config`` (sorted int32, read-only, cached per context)."""
    return _prepared(context, config)[1]


def _gather_rows(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of CSR rows ``rows`` without building a sub-matrix: (position in ``rows``, column, value)."""
    starts = m.indptr[rows].astype(np.int64)
    lens = m.indptr[rows + 1].astype(np.int64) - starts
    total = int(lens.sum())
    pos = np.repeat(np.arange(len(rows)), lens)
    offsets = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
    return pos, m.indices[offsets], m.data[offsets]


def build_exclusions(
    context: LibraryContext,
    reader_rows: np.ndarray,
    config: FilterConfig,
    branch_rows: np.ndarray | None = None,
    extra_borrowed: sp.csr_matrix | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The ``exclude`` pair for ``model.recommend``: (per-reader CSR bool k × n_titles, global bool mask).

    ``reader_rows`` are rows of ``context.readers`` (``-1`` for readers the context does not know:
    they get the global, availability and unknown-audience rules only). ``branch_rows`` overrides each
    reader's branch (default: home branch). ``extra_borrowed`` (k × n_titles) adds titles borrowed
    since the data was loaded (the service's live events); they are excluded whatever the window.

    Cost: the per-context parts (global mask, per-branch availability bitmask, audience blocks) are
    built once and memoised on the context; a call only gathers the k readers' rows into a dense
    k × n_titles bool block (k × n_titles bytes) and converts it to CSR. The global mask is read-only.
    """
    rows = np.asarray(reader_rows, dtype=np.int64)
    k, n_t = len(rows), len(context.titles)
    glob, _, blocks = _prepared(context, config)
    dense = np.zeros((k, n_t), bool)

    if config.require_available and context.has_holdings and k:
        branches = context.branch_of(rows) if branch_rows is None else np.asarray(branch_rows, dtype=np.int64)
        bits = _unreachable_bits(context)[_branch_slot(context, branches)]
        dense |= np.unpackbits(bits, axis=1, count=n_t).view(bool)
    if config.filter_borrowed:
        known = np.flatnonzero(rows >= 0)
        if known.size:
            pos, cols, days = _gather_rows(context.history, rows[known])
            if config.borrowed_window_days is not None:
                since = context.today_day - config.borrowed_window_days + HISTORY_OFFSET
                keep = days >= since
                pos, cols = pos[keep], cols[keep]
            else:
                keep = days > 0
                pos, cols = pos[keep], cols[keep]
            dense[known[pos], cols] = True
    if extra_borrowed is not None:
        extra = sp.csr_matrix(extra_borrowed)
        if extra.nnz:
            pos, cols, vals = _gather_rows(extra, np.arange(k))
            dense[pos[vals != 0], cols[vals != 0]] = True
    if blocks is not None and k:
        dense |= blocks[audience_groups(context, rows, config)]
    per_reader = sp.csr_matrix(dense)
    _log.debug("exclusions for %d readers: %d global, %.1f per reader", k, int(glob.sum()), per_reader.nnz / max(k, 1))
    return per_reader, glob.copy()


def admissible(per_reader: sp.csr_matrix, global_mask: np.ndarray) -> np.ndarray:
    """Dense bool (k × n_titles): titles left after the exclusions (for small k: tests, cold start)."""
    return ~(per_reader.toarray() | global_mask[None, :])
