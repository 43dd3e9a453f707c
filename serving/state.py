"""What the running service holds: the served model (swapped atomically on reload), the ledger and the counter.

A :class:`ModelBundle` is immutable: model, library context, recommendation service and version.
Request handlers take ``state.bundle`` ONCE at the start and use that object to the end, so a reload
(which builds a complete new bundle off to the side and then rebinds one attribute) never drops or
mixes a request: in-flight requests finish on the old model, new ones see the new model. A failed
reload leaves ``state.bundle`` untouched and records why in ``state.last_reload_error``.

Live reader events (``POST /v1/readers/{id}/events``) are kept in the database's log
(:mod:`serving.live_store`) and replayed into every new bundle, so a reader's just-borrowed titles
survive a reload, a restart, and reach every worker of ``yuedu serve --workers N``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from acquisition import rounds
from acquisition.alternatives import Availability
from acquisition.counter import CounterService
from acquisition.db import Database, init_db
from acquisition.holdings import Holdings
from acquisition.pacing import Pacer, class_values
from acquisition.policy import Policy, load_policy
from recsys.base import Recommender
from recsys.context import LibraryContext
from recsys.rerank import QUEUE_AWARE, PromotionConfig
from recsys.service import RecommendationService, UnknownTitleError
from serving.coalescer import RequestCoalescer
from serving.data_rights import DataRights
from serving.live_store import SYNC_BATCH, LiveStore, LogRow
from serving.metrics import Metrics
from serving.preferences import ReaderPreferences
from serving.security import LoginGuard, parse_staff_users
from serving.sessions import StaffSessions, shared_login_guard
from serving.settings import Settings

_log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A model source could not be loaded (missing directory, bad format, registry unreachable...)."""


@dataclass
class LiveCursor:
    """How far into the shared live-event log a bundle's service has applied (``seq``)."""

    seq: int = 0


@dataclass(frozen=True)
class ModelBundle:
    """One served model with everything built on it. Never rebound after construction; only its
    service's live events grow, on the model thread, as the cursor moves along the shared log."""

    model: Recommender
    context: LibraryContext
    service: RecommendationService
    version: str
    source: str
    loaded_at: float
    cursor: LiveCursor = field(default_factory=LiveCursor)


def apply_log(bundle: ModelBundle, rows: list[LogRow]) -> int:
    """Apply live-event log rows (in ``seq`` order) to ``bundle``'s service; the events applied.
    Runs on the model thread (or before the bundle is published). A title the model does not know
    (a newer catalogue's) is skipped."""
    applied = 0
    for row in rows:
        if row.seq <= bundle.cursor.seq:
            continue
        if row.kind == "forget":
            bundle.service.forget_reader(row.reader_id)
        else:
            try:
                bundle.service.record_event(row.reader_id, row.title_id)
                applied += 1
            except UnknownTitleError:
                pass
        bundle.cursor.seq = row.seq
    return applied


def _dir_version(model_dir: Path) -> str:
    """A version for a model directory: 'dir-' + a short hash of EVERY file in it (names and bytes),
    so replacing any array changes the version, not only an edit of ``model.json``."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file())
    if not files:
        return "dir-missing"
    for path in files:
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return f"dir-{digest.hexdigest()[:12]}"


def build_bundle(
    model: Recommender,
    version: str,
    source: str,
    data_dir: Path,
    today: date,
    live: LiveStore | None = None,
    queue_aware: bool = False,
    exposure_prices: Path | None = None,
) -> ModelBundle:
    """Context and service for ``model`` on ``data_dir``, with the whole shared live-event log applied.
    ``queue_aware`` switches on the queue-aware promotion, with the exposure prices of
    ``exposure_prices`` (default ``data_dir/exposure_prices.json`` when present)."""
    context = LibraryContext.from_data_dir(data_dir, model.titles_, model.readers_, today)
    promotion = PromotionConfig(**QUEUE_AWARE) if queue_aware else None
    service = RecommendationService(model, context, promotion_config=promotion)
    prices = exposure_prices or Path(data_dir) / "exposure_prices.json"
    if queue_aware and prices.exists():
        service.load_exposure_prices(prices)
    service.prepare()  # per-context caches now, not in the first request after the swap
    bundle = ModelBundle(model, context, service, version, source, time.time())
    while live is not None and (rows := live.since(bundle.cursor.seq)):
        apply_log(bundle, rows)
    # A smoke recommendation: a model that loads but cannot recommend must not replace a working one.
    service.recommend_for_reader("__smoke__", n=1)
    return bundle


@dataclass
class AppState:
    """The service's long-lived objects (one per app)."""

    settings: Settings
    db: Database
    policy: Policy
    counter: CounterService
    metrics: Metrics
    staff_users: dict[str, tuple[str, str]]
    today: date
    sessions: StaffSessions
    preferences: ReaderPreferences
    data_rights: DataRights
    login_guard: LoginGuard
    live: LiveStore
    bundle: ModelBundle | None = None
    last_reload_error: str | None = None
    #: Coalesces concurrent recommendation requests; owns the one thread that touches the model.
    coalescer: RequestCoalescer = field(default_factory=RequestCoalescer)
    #: Serialises reloads (the swap itself is one attribute store; readers never lock).
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Registry lookup, replaceable in tests: alias -> (version, model loader).
    alias_resolver: Callable[[str], str] | None = None
    alias_loader: Callable[[str], tuple[Recommender, str]] | None = None
    #: The collection report and the table versions it was computed from (see collection_report).
    _collection: tuple | None = None
    #: The ledger holds readers (checked until true, see registered).
    _has_readers: bool = False
    #: The served-model generation this worker runs (see serving.live_store).
    generation: int = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        alias_resolver: Callable[[str], str] | None = None,
        alias_loader: Callable[[str], tuple[Recommender, str]] | None = None,
    ) -> AppState:
        """Connect the ledger, load policy and holdings, and load the model (failure is logged, not raised:
        the service starts, ``/readyz`` says why it is not ready, and a reload can fix it).

        ``alias_resolver`` (alias -> version) and ``alias_loader`` (alias -> (model, version)) replace the
        MLflow registry lookups (tests, or another registry).
        """
        db = init_db(settings.db_url)
        data_dir = Path(settings.data_dir)
        _load_reference_data(db, data_dir)
        policy = load_policy(settings.policy_file)
        holdings = Holdings.from_data_dir(data_dir) if (data_dir / "copies.parquet").exists() else Holdings()
        availability = Availability.from_data_dir(data_dir) if (data_dir / "copies.parquet").exists() else None
        today = date.fromisoformat(settings.today) if settings.today else date.today()
        state = cls(
            settings=settings,
            db=db,
            policy=policy,
            counter=CounterService(
                db,
                policy,
                holdings,
                clock=_clock(today if settings.today else None),
                availability=availability,
                pacer=_pacer(policy, data_dir, today),
            ),
            metrics=Metrics(),
            staff_users=parse_staff_users(settings.staff_users),
            today=today,
            sessions=StaffSessions(db),
            preferences=ReaderPreferences(db),
            data_rights=DataRights(db),
            login_guard=shared_login_guard(db, settings.login_max_failures, settings.login_lockout_s),
            live=LiveStore(db),
            alias_resolver=alias_resolver,
            alias_loader=alias_loader,
        )
        # a worker (re)started while the server runs serves what the others serve
        state.generation, model_dir = state.live.generation()
        result = state.reload(model_dir)
        if not result["reloaded"]:
            _log.error("no model at start-up: %s", result["reason"])
        return state

    # ------------------------------------------------------------------ model loading

    def _load(self, model_dir: str | Path | None) -> tuple[Recommender, str, str]:
        from recsys.models import load_model
        from training import tracking

        s = self.settings
        try:
            if model_dir is not None or s.model_dir is not None:
                path = Path(model_dir if model_dir is not None else s.model_dir)
                return load_model(path), _dir_version(path), str(path)
            if s.model_alias:
                loader = self.alias_loader or (lambda alias: tracking.load_by_alias(alias))
                model, version = loader(s.model_alias)
                return model, str(version), f"alias:{s.model_alias}"
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes a reported, survivable error
            raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
        raise ModelLoadError("no model source configured (set YUEDU_MODEL_DIR or YUEDU_MODEL_ALIAS)")

    def reload(self, model_dir: str | Path | None = None) -> dict:
        """Load the configured model (or ``model_dir``), build a new bundle and swap it in.

        Returns ``{reloaded, model_version, previous_version, reason, seconds}``. On failure the
        current bundle keeps serving and ``reason`` says why.
        """
        t0 = time.perf_counter()
        with self._reload_lock:
            previous = self.bundle
            try:
                model, version, source = self._load(model_dir)
                bundle = build_bundle(
                    model, version, source, Path(self.settings.data_dir), self.today, self.live,
                    self.settings.queue_aware, self.settings.exposure_prices,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - keep the old model whatever went wrong
                reason = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
                self.last_reload_error = reason
                _log.warning("model reload failed, keeping version %s: %s", previous and previous.version, reason)
                return {
                    "reloaded": False,
                    "model_version": previous.version if previous else "none",
                    "previous_version": previous.version if previous else None,
                    "reason": reason,
                    "seconds": time.perf_counter() - t0,
                }
            self.bundle = bundle  # the atomic swap
            self.last_reload_error = None
            self.metrics.set_model_version(version)
        _log.info(
            "serving model %s from %s (was %s), %.2f s",
            version,
            source,
            previous.version if previous else None,
            time.perf_counter() - t0,
        )
        return {
            "reloaded": True,
            "model_version": version,
            "previous_version": previous.version if previous else None,
            "reason": None,
            "seconds": time.perf_counter() - t0,
        }

    def request_reload(self, model_dir: str | Path | None = None) -> dict:
        """An admin's reload: this worker reloads now; when it succeeds, the served-model generation is
        bumped so that every other worker reloads the same source in its next poll."""
        result = self.reload(model_dir)
        if result["reloaded"]:
            self.generation = self.live.bump_generation(str(model_dir) if model_dir else None, self.now())
        return result

    # ------------------------------------------------------------------ live events (shared log)

    def sync_live(self) -> int:
        """Apply the shared log's rows this worker has not seen to the served bundle; the events
        applied. Runs on the model thread (``coalescer.call``), so it never races a recommendation."""
        bundle = self.bundle
        applied = 0
        while bundle is not None:
            rows = self.live.since(bundle.cursor.seq)
            applied += apply_log(bundle, rows)
            if len(rows) < SYNC_BATCH:
                break
        return applied

    async def record_live(self, reader_id: str, title_id: str) -> None:
        """Store a reader's event (committed before returning), then apply it here at once; the other
        workers apply it in their next poll. UnknownTitleError for a title the model does not know."""
        bundle = self.bundle
        if bundle is None or bundle.context.titles.get(title_id) is None:
            raise UnknownTitleError(f"title '{title_id}' is not in the served catalogue")
        await asyncio.to_thread(self.live.append, reader_id, title_id, self.now())
        await self.coalescer.call(self.sync_live)

    def forget_live(self, reader_id: str) -> int:
        """Erase the reader's stored live events on every worker (this one at once); how many were
        stored. Called from a worker thread (a sync route), never from the event loop."""
        dropped, _ = self.live.forget(reader_id, self.now())
        self.coalescer.call_sync(self.sync_live)
        return dropped

    async def poll_shared(self, interval_s: float) -> None:
        """Background task: apply the other workers' live events, and reload when another worker was
        asked to (the served-model generation moved)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.coalescer.call(self.sync_live)
                generation, model_dir = await asyncio.to_thread(self.live.generation)
            except Exception as exc:  # noqa: BLE001 - a busy database must not kill the poller
                _log.warning("live-event sync failed: %s", exc)
                continue
            if generation > self.generation:
                _log.info("served-model generation %d -> %d; reloading", self.generation, generation)
                self.generation = generation
                await asyncio.to_thread(self.reload, model_dir)

    def alias_version(self) -> str | None:
        """The version the registry alias points at now (None without an alias)."""
        alias = self.settings.model_alias
        if not alias or self.settings.model_dir is not None:
            return None
        if self.alias_resolver is not None:
            return self.alias_resolver(alias)
        from training.tracking import resolve_alias

        return resolve_alias(alias)[0]

    async def poll_alias(self, interval_s: float) -> None:
        """Background task: reload when the registry alias moves to another version."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                version = await asyncio.to_thread(self.alias_version)
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the poller
                _log.warning("alias poll failed: %s", exc)
                continue
            current = self.bundle.version if self.bundle else None
            if version is not None and version != current:
                _log.info("alias %s moved %s -> %s; reloading", self.settings.model_alias, current, version)
                await asyncio.to_thread(self.reload)

    async def deliver_notices(self, interval_s: float) -> None:
        """Background task: send the queued reader notices through the policy's ``[notices]`` channel."""
        from acquisition.notices import channel_from_policy, deliver_pending

        channel = channel_from_policy(self.policy.notices)
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(
                    deliver_pending, self.db, channel, now=self.now(), language=self.policy.notices.language
                )
            except Exception as exc:  # noqa: BLE001 - a failing gateway must not kill the sender
                _log.warning("notice delivery failed: %s", type(exc).__name__)

    async def sweep_reservations(self, interval_s: float) -> None:
        """Background task: release counter reservations whose time ran out (their money returns)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                released = await asyncio.to_thread(self.counter.expire_reservations, self.now())
            except Exception as exc:  # noqa: BLE001 - a busy ledger must not kill the sweeper
                _log.warning("reservation sweep failed: %s", exc)
                continue
            if released:
                _log.info("released %d expired reservations", released)

    def database_ok(self) -> bool:
        """The ledger answers a trivial query."""
        from sqlalchemy import text

        try:
            with self.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            _log.warning("database not reachable: %s", exc)
            return False

    def create_round(self, created_by: str, **options) -> str:
        """Rank the pending online requests into a new acquisition round (``acquisition.rounds.create_round`` options)."""
        bundle = self.bundle
        return rounds.create_round(
            self.db,
            self.policy,
            bundle.context if bundle else None,
            created_by=created_by,
            now=self.now(),
            data_dir=Path(self.settings.data_dir),
            **options,
        )

    def now(self) -> datetime:
        """The service clock (``today`` at the current time of day when today is overridden)."""
        return self.counter.clock()

    def registered(self, reader_id: str) -> bool | None:
        """Whether ``reader_id`` is a card of the ledger's reader table; None when it holds no readers."""
        from sqlalchemy import exists, select

        from acquisition.db import ReaderRow

        with self.db.session_scope() as s:
            # readers are loaded, never emptied: once seen, the table is not asked again per request
            if not self._has_readers:
                self._has_readers = bool(s.scalar(select(exists().select_from(ReaderRow))))
                if not self._has_readers:
                    return None
            return s.get(ReaderRow, reader_id) is not None

    def collection_report(self):
        """The collection report of the data directory (:func:`acquisition.analytics.collection_metrics`,
        the same computation as ``yuedu acquisition report``), computed once per version of the loans
        and copies tables."""
        from acquisition.analytics import collection_metrics, report_from_metrics
        from features.schema import table_path

        data = Path(self.settings.data_dir)
        paths = [table_path(data, t) for t in ("loans", "copies", "titles")]
        if not all(p.exists() for p in paths):
            from features.errors import Unavailable

            raise Unavailable(f"{data}: the collection report needs loans, copies and titles tables")
        key = tuple(p.stat().st_mtime_ns for p in paths)
        cached = self._collection
        if cached is None or cached[0] != key:
            cached = (key, report_from_metrics(collection_metrics(data)))
            self._collection = cached
        return cached[1]


def _load_reference_data(db: Database, data_dir: Path) -> None:
    """Load readers, bookstores and budget lines from ``data_dir`` into an empty ledger (first start)."""
    from sqlalchemy import func, select

    from acquisition.db import ReaderRow, load_data_dir

    with db.session_scope() as s:
        empty = not s.scalar(select(func.count()).select_from(ReaderRow))
    if empty and (data_dir / "readers.parquet").exists():
        counts = load_data_dir(db, data_dir)
        _log.info("empty ledger: loaded reference data from %s: %s", data_dir, counts)


def _pacer(policy: Policy, data_dir: Path, today: date) -> Pacer:
    """The counter's pacing: with ``paced`` and the library's loans at hand, a request's value is the
    loans one copy of its CLC class would serve (:func:`acquisition.pacing.class_values`), so the bar
    prefers books readers borrow, not only cheaper ones; otherwise one loan per book."""
    if policy.pacing.policy != "paced" or not (data_dir / "loans.parquet").exists():
        return Pacer(policy)
    from acquisition.demand import History
    from acquisition.value import Circulation

    history = History.load(data_dir)
    as_of = datetime.combine(today, datetime.min.time())
    return Pacer(policy, value_of=class_values(history, as_of, Circulation.from_loans(history.loans, as_of)))


def _clock(today: date | None) -> Callable[[], datetime]:
    if today is None:
        return datetime.now
    return lambda: datetime.combine(today, datetime.now().time())
