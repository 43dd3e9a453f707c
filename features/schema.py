"""The library data model: every table's typed schema, in one place.

Each table is a :class:`TableSchema` of :class:`Column` specs. Ingestion validates against these,
the synthetic city writes them, and ``docs/data-model.md`` documents them. Analytical tables are
stored as Parquet (one file per table) and read lazily with polars (:func:`scan_table`).

Money is in yuan (float64 with two decimals) in the analytical tables; the transactional budget
ledger in ``acquisition`` keeps integer fen so that sums are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import PlainSerializer

# --- controlled vocabularies -------------------------------------------------------------------

#: The 11 county/district libraries of the network (DOMAIN.md §1) plus the central library's district.
DISTRICTS: tuple[str, ...] = (
    "Chaoyang",
    "Nanguan",
    "Kuancheng",
    "Erdao",
    "Lvyuan",
    "Shuangyang",
    "Jiutai",
    "Yushu",
    "Nong'an",
    "Dehui",
    "Gongzhuling",
)
#: Counties / county-level cities among the districts (the rest are urban districts).
COUNTIES: tuple[str, ...] = ("Yushu", "Nong'an", "Dehui", "Gongzhuling")

#: Chinese Library Classification top classes (22 letters) and their English names.
CLC_TOP_CLASSES: dict[str, str] = {
    "A": "Marxism-Leninism",
    "B": "Philosophy & religion",
    "C": "Social sciences (general)",
    "D": "Politics & law",
    "E": "Military",
    "F": "Economics",
    "G": "Culture, science, education, sports",
    "H": "Languages",
    "I": "Literature",
    "J": "Art",
    "K": "History & geography",
    "N": "Natural sciences (general)",
    "O": "Mathematics, physics, chemistry",
    "P": "Astronomy & earth sciences",
    "Q": "Biology",
    "R": "Medicine & health",
    "S": "Agriculture",
    "T": "Industrial technology",
    "U": "Transport",
    "V": "Aviation & space",
    "X": "Environment & safety",
    "Z": "General works",
}
#: The same top classes by their Chinese names (中国图书馆分类法), for zh-CN text.
CLC_TOP_CLASSES_ZH: dict[str, str] = {
    "A": "马克思主义、列宁主义、毛泽东思想、邓小平理论",
    "B": "哲学、宗教",
    "C": "社会科学总论",
    "D": "政治、法律",
    "E": "军事",
    "F": "经济",
    "G": "文化、科学、教育、体育",
    "H": "语言、文字",
    "I": "文学",
    "J": "艺术",
    "K": "历史、地理",
    "N": "自然科学总论",
    "O": "数理科学和化学",
    "P": "天文学、地球科学",
    "Q": "生物科学",
    "R": "医药、卫生",
    "S": "农业科学",
    "T": "工业技术",
    "U": "交通运输",
    "V": "航空、航天",
    "X": "环境科学、安全科学",
    "Z": "综合性图书",
}


def _with_offset(at: datetime) -> str:
    return (at if at.tzinfo is not None else at.astimezone()).isoformat()


#: A datetime that JSON writes as RFC 3339 with the service's UTC offset: the tables and the
#: database keep naive local time, and a date-time without an offset is not RFC 3339.
LocalDateTime = Annotated[datetime, PlainSerializer(_with_offset, return_type=str, when_used="json")]
#: A CLC class: a top letter, optionally a second letter (T only: TP, TN, ...), then digits / dots.
CLC_PATTERN = r"^[A-KN-VXZ][A-Z]?[0-9]*(\.[0-9]+)*$"

BRANCH_KINDS: tuple[str, ...] = (
    "central",
    "district_library",
    "reading_room",
    "model_branch",
    "self_service",
    "cabinet",
    "subway",
    "mobile_bus",
    "delivery_hub",
)
AGE_BANDS: tuple[str, ...] = ("child_0_6", "child_7_12", "teen_13_17", "adult", "senior_60")
CARD_TYPES: tuple[str, ...] = ("child", "standard", "senior", "credit")
AUDIENCES: tuple[str, ...] = ("children", "teen", "general", "adult_only")
FORMATS: tuple[str, ...] = ("print", "ebook", "audio")
COPY_STATUSES: tuple[str, ...] = ("on_shelf", "on_loan", "in_transit", "lost", "withdrawn")
ACQUISITION_SOURCES: tuple[str, ...] = ("regular_order", "reader_choice", "donation")
LOAN_CHANNELS: tuple[str, ...] = ("counter", "self_service", "mobile", "delivery", "bookstore", "online")
EBOOK_ACTIONS: tuple[str, ...] = ("download", "read")
REQUEST_CHANNELS: tuple[str, ...] = ("counter", "online")


class RequestStatus(StrEnum):
    """Where a "you choose, I buy" purchase request is in its lifecycle (the stored strings).

    The allowed moves between them are one table, ``acquisition.lifecycle.REQUEST_TRANSITIONS``,
    enforced there; this layer only names the states because the data model stores them.
    """

    #: An eligible online request waiting for a staff round (the domain's "requested").
    PENDING = "pending"
    #: Approved by staff in a round; its price is committed on the budget.
    APPROVED = "approved"
    #: Refused, with reason codes (at the counter, or rejected by staff).
    DECLINED = "declined"
    #: Approved at the counter; its price is reserved until checkout, cancel or expiry.
    RESERVED = "reserved"
    #: The reader left the bookstore with the book; the reserved money is committed.
    CHECKED_OUT = "checked_out"
    #: Given up: cancelled at the counter, or its reservation expired (money released).
    CANCELLED = "cancelled"
    #: Ordered from the bookstore (ingested data may carry it; no yuedu code sets it yet).
    ORDERED = "ordered"
    #: The book reached the library and was catalogued as a copy (the domain's "catalogued").
    RECEIVED = "received"
    #: A counter purchase that completed its cycle (returned and catalogued; synthetic history).
    FULFILLED = "fulfilled"
    #: Put to staff instead of declined (the mediation band: above the price cap up to a band limit, or
    #: a category the policy marks); its price is held until staff approve or decline.
    MEDIATED = "mediated"


REQUEST_STATUSES: tuple[str, ...] = tuple(s.value for s in RequestStatus)

#: Book categories a bookstore reports for a title; some are excluded by the programme policy.
BOOK_CATEGORIES: tuple[str, ...] = (
    "general",
    "textbook",
    "exam_prep",
    "workbook",
    "reference",
    "comic",
    "audio_visual",
)


@dataclass(frozen=True)
class Column:
    """One column: its polars dtype, whether it may be null, and what it means (with units)."""

    dtype: pl.DataType
    doc: str
    nullable: bool = False
    #: Allowed values for a categorical string column.
    values: tuple[str, ...] | None = None
    #: Inclusive numeric lower bound, if any.
    min: float | None = None
    #: ``"table.column"`` that this column references.
    ref: str | None = None


@dataclass(frozen=True)
class TableSchema:
    name: str
    doc: str
    columns: dict[str, Column]
    primary_key: str | None = None
    #: Columns that may be absent from an input file (they are filled with nulls).
    optional: frozenset[str] = field(default_factory=frozenset)

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({name: col.dtype for name, col in self.columns.items()})

    @property
    def required(self) -> list[str]:
        return [c for c in self.columns if c not in self.optional]

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema)


Datetime = pl.Datetime("us")

BRANCHES = TableSchema(
    "branches",
    "Service points of the network: the central library, district/county libraries and outlets.",
    {
        "branch_id": Column(pl.String, "Stable branch code, e.g. 'CEN', 'D-Chaoyang', 'O-0042'."),
        "name": Column(pl.String, "Display name."),
        "kind": Column(pl.String, "Kind of service point.", values=BRANCH_KINDS),
        "district": Column(pl.String, "District or county the branch belongs to (DISTRICTS in the sample city)."),
        "lat": Column(pl.Float64, "Latitude, degrees."),
        "lon": Column(pl.Float64, "Longitude, degrees."),
        "delivers": Column(pl.Boolean, "Whether home delivery ('U Book to Home') reaches readers here."),
    },
    primary_key="branch_id",
)

READERS = TableSchema(
    "readers",
    "Card holders. reader_id is a pseudonym; names never enter yuedu.",
    {
        "reader_id": Column(pl.String, "Pseudonymous reader id."),
        "home_branch_id": Column(pl.String, "Branch the card is registered at.", ref="branches.branch_id"),
        "age_band": Column(pl.String, "Age band.", values=AGE_BANDS),
        "card_type": Column(pl.String, "Card type; child cards never get adult-only titles.", values=CARD_TYPES),
        "registered_at": Column(pl.Date, "Registration date."),
        "credit_level": Column(pl.Int8, "Credit level 0 (blocked) to 5.", min=0),
        "blocked": Column(pl.Boolean, "Card blocked (overdue items or unpaid fines)."),
    },
    primary_key="reader_id",
    optional=frozenset({"credit_level", "blocked"}),
)

TITLES = TableSchema(
    "titles",
    "Bibliographic records. Copies, loans and holds aggregate to titles.",
    {
        "title_id": Column(pl.String, "Stable title id."),
        "isbn13": Column(pl.String, "ISBN-13, normalised (13 digits, no hyphens).", nullable=True),
        "title": Column(pl.String, "Title proper."),
        "author": Column(pl.String, "Main author.", nullable=True),
        "publisher": Column(pl.String, "Publisher.", nullable=True),
        "pub_year": Column(pl.Int16, "Publication year.", nullable=True, min=1400),
        "clc_class": Column(pl.String, "CLC class, e.g. 'I247' (top class = first letter)."),
        "audience": Column(pl.String, "Intended audience.", values=AUDIENCES),
        "language": Column(pl.String, "ISO 639 language code, e.g. 'zh', 'en'."),
        "list_price": Column(pl.Float64, "List price, yuan.", nullable=True, min=0.01),
        "format": Column(pl.String, "Format.", values=FORMATS),
        "local_literature": Column(pl.Boolean, "Part of the local literature ('City Memory') collection."),
        "subjects": Column(pl.String, "Subject keywords separated by ';'.", nullable=True),
        "added_at": Column(pl.Date, "Date the title entered the collection (new arrivals).", nullable=True),
    },
    primary_key="title_id",
    optional=frozenset({"subjects", "added_at", "publisher", "local_literature", "format", "language"}),
)

COPIES = TableSchema(
    "copies",
    "Physical items (barcodes) of print titles at branches.",
    {
        "copy_id": Column(pl.String, "Barcode."),
        "title_id": Column(pl.String, "Title of the copy.", ref="titles.title_id"),
        "branch_id": Column(pl.String, "Owning branch.", ref="branches.branch_id"),
        "status": Column(pl.String, "Current status.", values=COPY_STATUSES),
        "acquired_at": Column(pl.Date, "Acquisition date."),
        "source": Column(pl.String, "How the copy was acquired.", values=ACQUISITION_SOURCES),
    },
    primary_key="copy_id",
)

LOANS = TableSchema(
    "loans",
    "Print loans. A renewal extends the loan and counts as extra interest.",
    {
        "loan_id": Column(pl.String, "Loan id."),
        "reader_id": Column(pl.String, "Borrower.", ref="readers.reader_id"),
        "copy_id": Column(pl.String, "Borrowed copy.", nullable=True, ref="copies.copy_id"),
        "title_id": Column(pl.String, "Borrowed title.", ref="titles.title_id"),
        "branch_id": Column(pl.String, "Branch where the loan was made.", ref="branches.branch_id"),
        "channel": Column(pl.String, "Channel of the loan.", values=LOAN_CHANNELS),
        "borrowed_at": Column(Datetime, "When borrowed (local time)."),
        "due_at": Column(Datetime, "When due.", nullable=True),
        "returned_at": Column(Datetime, "When returned; null while on loan.", nullable=True),
        "renewals": Column(pl.Int8, "Number of renewals.", min=0),
    },
    primary_key="loan_id",
    optional=frozenset({"copy_id", "due_at", "returned_at", "renewals"}),
)

EBOOK_EVENTS = TableSchema(
    "ebook_events",
    "E-book downloads and reads in the app or mini-program.",
    {
        "event_id": Column(pl.String, "Event id."),
        "reader_id": Column(pl.String, "Reader.", ref="readers.reader_id"),
        "title_id": Column(pl.String, "E-book title.", ref="titles.title_id"),
        "occurred_at": Column(Datetime, "When it happened."),
        "action": Column(pl.String, "Download or read.", values=EBOOK_ACTIONS),
    },
    primary_key="event_id",
)

HOLDS = TableSchema(
    "holds",
    "Reservations: the classic demand signal (holds per copy).",
    {
        "hold_id": Column(pl.String, "Hold id."),
        "reader_id": Column(pl.String, "Reader who placed it.", ref="readers.reader_id"),
        "title_id": Column(pl.String, "Title held.", ref="titles.title_id"),
        "branch_id": Column(pl.String, "Pick-up branch.", ref="branches.branch_id"),
        "placed_at": Column(Datetime, "When placed."),
        "fulfilled_at": Column(Datetime, "When fulfilled; null while waiting or if cancelled.", nullable=True),
    },
    primary_key="hold_id",
    optional=frozenset({"fulfilled_at"}),
)

BOOKSTORES = TableSchema(
    "bookstores",
    "Partner bookstores of the 'you choose, I buy' programme.",
    {
        "bookstore_id": Column(pl.String, "Bookstore code."),
        "name": Column(pl.String, "Display name."),
        "district": Column(pl.String, "District the bookstore is in."),
        "branch_id": Column(pl.String, "Library branch that catalogues its purchases.", ref="branches.branch_id"),
        "lat": Column(pl.Float64, "Latitude, degrees."),
        "lon": Column(pl.Float64, "Longitude, degrees."),
    },
    primary_key="bookstore_id",
)

PURCHASE_REQUESTS = TableSchema(
    "purchase_requests",
    "'You choose, I buy' requests: a reader picks a new book at a bookstore counter or online.",
    {
        "request_id": Column(pl.String, "Request id."),
        "reader_id": Column(pl.String, "Requesting reader.", ref="readers.reader_id"),
        "bookstore_id": Column(pl.String, "Bookstore.", ref="bookstores.bookstore_id"),
        "isbn": Column(pl.String, "ISBN as scanned (may be invalid; the decision checks it)."),
        "title": Column(pl.String, "Title as reported by the bookstore.", nullable=True),
        "author": Column(pl.String, "Author as reported by the bookstore.", nullable=True),
        "publisher": Column(pl.String, "Publisher.", nullable=True),
        "pub_year": Column(pl.Int16, "Publication year.", nullable=True),
        "clc_class": Column(pl.String, "CLC class as catalogued by the bookstore.", nullable=True),
        "category": Column(pl.String, "Book category (textbook, exam_prep, ...).", values=BOOK_CATEGORIES),
        "price": Column(pl.Float64, "Price charged, yuan.", min=0.01),
        "requested_at": Column(Datetime, "When requested."),
        "channel": Column(pl.String, "Counter (decided at once) or online (batched).", values=REQUEST_CHANNELS),
        "status": Column(pl.String, "Current status.", values=REQUEST_STATUSES),
    },
    primary_key="request_id",
    optional=frozenset({"title", "author", "publisher", "pub_year", "clc_class", "status"}),
)

BUDGETS = TableSchema(
    "budgets",
    "Programme budget lines: per period (YYYY-MM) × bookstore × district. Null = any.",
    {
        "budget_id": Column(pl.String, "Budget line id."),
        "period": Column(pl.String, "Month 'YYYY-MM' (or year 'YYYY')."),
        "bookstore_id": Column(pl.String, "Bookstore, null for all.", nullable=True, ref="bookstores.bookstore_id"),
        "district": Column(pl.String, "District, null for all.", nullable=True),
        "amount": Column(pl.Float64, "Amount, yuan.", min=0.0),
    },
    primary_key="budget_id",
)

BOOKLISTS = TableSchema(
    "booklists",
    "Themed booklists and promotion campaigns with their date windows.",
    {
        "booklist_id": Column(pl.String, "Booklist id."),
        "name": Column(pl.String, "Display name, e.g. 'Summer reading for children'."),
        "theme": Column(pl.String, "Theme: world_reading_day, summer_children, local_history, award, ..."),
        "starts_on": Column(pl.Date, "First day the list is promoted."),
        "ends_on": Column(pl.Date, "Last day the list is promoted."),
    },
    primary_key="booklist_id",
)

BOOKLIST_ITEMS = TableSchema(
    "booklist_items",
    "Titles on each booklist.",
    {
        "booklist_id": Column(pl.String, "Booklist.", ref="booklists.booklist_id"),
        "title_id": Column(pl.String, "Title on the list.", ref="titles.title_id"),
    },
)

INTERACTIONS = TableSchema(
    "interactions",
    "Generic reader–title events for data sets that are not library exports (e.g. MovieLens ratings). "
    "A data directory holds either this table or loans/ebook_events; the matrix builder reads both.",
    {
        "reader_id": Column(pl.String, "Reader (user) id."),
        "title_id": Column(pl.String, "Title (item) id."),
        "occurred_at": Column(Datetime, "When it happened.", nullable=True),
        "channel": Column(pl.String, "Channel or event type, e.g. 'rating', 'counter', 'download'."),
        "renewals": Column(pl.Int8, "Renewals (0 when not applicable).", min=0),
        "value": Column(pl.Float32, "Explicit value, e.g. a star rating; 1.0 for plain events."),
    },
    optional=frozenset({"occurred_at", "channel", "renewals", "value"}),
)

#: Every table, in dependency order (referenced tables first).
TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        BRANCHES,
        READERS,
        TITLES,
        COPIES,
        LOANS,
        EBOOK_EVENTS,
        HOLDS,
        BOOKSTORES,
        PURCHASE_REQUESTS,
        BUDGETS,
        BOOKLISTS,
        BOOKLIST_ITEMS,
        INTERACTIONS,
    )
}


def clc_top(expr: pl.Expr) -> pl.Expr:
    """The CLC top class (first letter) of a ``clc_class`` expression."""
    return expr.str.slice(0, 1)


def table_path(data_dir: str | Path, table: str) -> Path:
    """Where a table lives in a data directory: ``DIR/<table>.parquet``."""
    return Path(data_dir) / f"{table}.parquet"


def scan_table(data_dir: str | Path, table: str) -> pl.LazyFrame:
    """Lazily scan one table of a data directory (Parquet)."""
    path = table_path(data_dir, table)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table '{table}' not found in data directory {data_dir}")
    return pl.scan_parquet(path)


def conform(df: pl.DataFrame | pl.LazyFrame, table: str) -> pl.DataFrame | pl.LazyFrame:
    """Select and cast a frame to a table's schema (column order and dtypes), adding absent optional
    columns as nulls."""
    schema = TABLES[table]
    names = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    exprs = [(pl.col(n) if n in names else pl.lit(None)).cast(c.dtype).alias(n) for n, c in schema.columns.items()]
    return df.select(exprs)
