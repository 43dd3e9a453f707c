"""Reader endpoints: recommendations with explanations and availability, and live events."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from acquisition.notices import reader_notices
from features import bounds
from features.privacy import pseudonymise
from recsys.explain import render
from recsys.service import UnknownTitleError
from serving.data_rights import library_records, pseudonymise_records
from serving.deps import Bundle, Language, OwnReader, SelfOrAdmin, State
from serving.errors import field_error
from serving.routes.catalogue import name_of
from serving.schemas import (
    EventIn,
    EventOut,
    PreferencesIn,
    PreferencesOut,
    ProfileErasedOut,
    ReaderDataOut,
    ReasonOut,
    RecommendationOut,
    RecommendationsOut,
)

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/readers", tags=["readers"])

ReaderId = Annotated[str, Path(min_length=1, max_length=bounds.ID_MAX, description="Reader card id.")]


def _choices(state, reader_id: str):
    """The reader's stored preferences, whether their profile was erased, and whether the card is in the
    library's reader table (None when the data has no reader table)."""
    return state.preferences.get(reader_id), state.data_rights.is_excluded(reader_id), state.registered(reader_id)


@router.get("/{reader_id}/recommendations", response_model=RecommendationsOut)
async def recommendations(
    reader_id: ReaderId,
    _principal: OwnReader,
    bundle: Bundle,
    state: State,
    lang: Language,
    response: Response,
    n: Annotated[int, Query(ge=1, le=100, description="List length.")] = 10,
    branch: Annotated[
        str | None,
        Query(min_length=1, max_length=bounds.ID_MAX, description="Branch the reader is at (default: home)."),
    ] = None,
    promotion: Annotated[
        bool | None, Query(description="False = the model's own ranking (default: the stored preference).")
    ] = None,
    personalised: Annotated[
        bool | None,
        Query(description="False = do not use my history for this list (default: the stored preference)."),
    ] = None,
) -> RecommendationsOut:
    """Up to ``n`` titles for the reader, each with reasons and where it is on the shelf.

    Readers the model does not know get cold-start recommendations (popular at their branch / city);
    so do readers who turned personalisation off (stored preference, or ``personalised=false``).
    """
    if branch is not None and bundle.context.branches.get(branch) is None:
        raise field_error("query.branch", f"unknown branch '{branch}'")
    stored, erased, registered = await asyncio.to_thread(_choices, state, reader_id)
    promotion = stored.promotion if promotion is None else promotion
    # a query can only opt out further; an erased profile is not used even before the next training
    personalised = stored.personalised and not erased and personalised is not False
    svc = bundle.service
    cold = not personalised or (bundle.model.readers_.get(reader_id) is None and not svc.has_live_events(reader_id))
    recs = await state.coalescer.recommend(bundle, reader_id, n, branch, promotion, personalised)
    _log.info("recommendations for %s: %d titles (cold=%s)", pseudonymise(reader_id), len(recs), cold)
    response.headers["Content-Language"] = lang
    name = name_of(bundle, state.settings.data_dir, lang)
    return RecommendationsOut(
        reader_id=reader_id,
        model_version=bundle.version,
        cold_start=cold,
        registered=registered,
        personalised=personalised,
        promotion=promotion,
        items=[
            RecommendationOut(
                title_id=r.title_id,
                title=r.title,
                author=r.author,
                clc_class=r.clc_class,
                score=r.score,
                reasons=[_reason(x, lang, name) for x in r.reasons],
                available_at=r.available_at,
                available_names=[name(b) for b in r.available_at],
                delivery=r.delivery,
                expected_wait_days=r.expected_wait_days,
                readers_waiting=r.readers_waiting,
            )
            for r in recs
        ],
        limitations=[ReasonOut(code=code, text=text) for code, text in bundle.context.limitations()],
    )


#: Reason templates whose one parameter is a branch name (recsys.explain.TEXTS) and whose ref is its id.
_BRANCH_REASONS = {"branch", "available"}


def _reason(x, lang: str, name) -> ReasonOut:
    """A reason in ``lang``; a branch it cites is named in that language too."""
    if x.key in _BRANCH_REASONS and x.ref is not None:
        x = dataclasses.replace(x, params=(name(x.ref),))
    return ReasonOut(code=str(x.code), text=render(x, lang), ref=x.ref)


@router.post("/{reader_id}/events", response_model=EventOut, status_code=status.HTTP_202_ACCEPTED)
async def record_event(
    reader_id: ReaderId, event: EventIn, _principal: OwnReader, bundle: Bundle, state: State
) -> EventOut:
    """A loan, return or e-book event: the reader's next recommendations reflect it at once (no retraining)."""
    try:
        await state.record_live(reader_id, event.title_id)
    except UnknownTitleError:
        raise field_error("body.title_id", f"title '{event.title_id}' is not in the served catalogue") from None
    _log.info("event %s for %s", event.kind, pseudonymise(reader_id))
    return EventOut(recorded=True, reader_id=reader_id, title_id=event.title_id)


def _prefs_out(reader_id: str, prefs) -> PreferencesOut:
    return PreferencesOut(
        reader_id=reader_id,
        personalised=prefs.personalised,
        promotion=prefs.promotion,
        # the service clock is naive local time: say its offset, as RFC 3339 date-times must
        updated_at=prefs.updated_at.astimezone() if prefs.updated_at else None,
    )


@router.get("/{reader_id}/preferences", response_model=PreferencesOut)
def get_preferences(reader_id: ReaderId, _principal: OwnReader, state: State) -> PreferencesOut:
    """The reader's stored choices (the defaults, personalised and promoted, until they choose)."""
    return _prefs_out(reader_id, state.preferences.get(reader_id))


@router.put("/{reader_id}/preferences", response_model=PreferencesOut)
def put_preferences(reader_id: ReaderId, body: PreferencesIn, _principal: OwnReader, state: State) -> PreferencesOut:
    """Store the reader's choices; every later list, explanation, batch list and profile honours them."""
    prefs = state.preferences.put(reader_id, body.personalised, body.promotion, state.now())
    _log.info(
        "preferences of %s: personalised=%s promotion=%s", pseudonymise(reader_id), prefs.personalised, prefs.promotion
    )
    return _prefs_out(reader_id, prefs)


@router.get("/{reader_id}/data", response_model=ReaderDataOut)
def export_data(reader_id: ReaderId, principal: SelfOrAdmin, state: State) -> ReaderDataOut:
    """Everything held about the reader's reading, as JSON (the reader themself or an admin; audited)."""
    rights = state.data_rights
    records = library_records(state.settings.data_dir, reader_id)
    bundle = state.bundle
    live = bundle.service.live_events().get(reader_id, []) if bundle is not None else []
    rights.audit(reader_id, "export", f"{principal.role}:{principal.subject}", state.now())
    _log.info("data export for %s", pseudonymise(reader_id))
    return ReaderDataOut(
        reader_id=reader_id,
        **records,
        live_events=live,
        requests=rights.requests(reader_id),
        notices=[vars(n) for n in reader_notices(state.db, reader_id, limit=bounds.PAGE_MAX)],
        preferences=_prefs_out(reader_id, state.preferences.get(reader_id)),
        excluded_from_training=rights.is_excluded(reader_id),
        audit=rights.audit_trail(reader_id),
    )


@router.delete("/{reader_id}/profile", response_model=ProfileErasedOut)
def erase_profile(reader_id: ReaderId, principal: SelfOrAdmin, state: State) -> ProfileErasedOut:
    """Erase the profile used for recommendation: live events dropped, preferences forgotten, the reader
    left out of the next training (and of personalisation until then). The loan records the library must
    keep stay, pseudonymised (their reader id replaced), so no training reads them (audited)."""
    dropped = state.forget_live(reader_id)
    state.preferences.forget(reader_id)
    state.data_rights.exclude(reader_id, state.now())
    rewritten = pseudonymise_records(state.settings.data_dir, reader_id)
    kept = len(library_records(state.settings.data_dir, reader_id)["loans"])
    actor = f"{principal.role}:{principal.subject}"
    detail = f"live events dropped: {dropped}; rows pseudonymised: " + ", ".join(
        f"{table} {n}" for table, n in rewritten.items()
    )
    state.data_rights.audit(reader_id, "erase", actor, state.now(), detail)
    _log.info("profile of %s erased (%d live events)", pseudonymise(reader_id), dropped)
    return ProfileErasedOut(reader_id=reader_id, live_events_dropped=dropped, loans_kept=kept)
