"""Filter, search, sort and page the lines of an acquisition round for the staff page.

The criteria travel in the page's query string (and, for "apply to all shown", in the bulk form), so
a filtered view can be bookmarked and a bulk decision applies to exactly the lines the staff member
saw. A round holds at most a few thousand lines: the page filters the round it already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlencode

from acquisition.rounds import Round, RoundLine

SORTS = ("rank", "price", "-price", "predicted", "title")
PAGE_SIZE = 50


@dataclass(frozen=True)
class LineFilter:
    q: str = ""
    district: str = ""
    status: str = ""  # the line's decision: pending, approve or reject
    clc: str = ""
    selected: str = ""  # "" all, "yes" selected by the ranking, "no" not selected
    eligible: str = ""  # "" all, "yes", "no"
    sort: str = "rank"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> LineFilter:
        """From a query string or form (unknown values fall back to 'no filter')."""
        get = lambda k: (params.get(k) or "").strip()[:100]  # noqa: E731
        try:
            page = max(1, min(10_000, int(get("page") or 1)))
        except ValueError:
            page = 1
        sort = get("sort") if get("sort") in SORTS else "rank"
        keys = ("q", "district", "status", "clc", "selected", "eligible")
        return cls(**{k: get(k) for k in keys}, sort=sort, page=page)

    def keep(self, line: RoundLine) -> bool:
        q = self.q.casefold()
        return (
            (not q or q in (line.title or "").casefold() or q in line.isbn or q in line.request_id)
            and (not self.district or line.district == self.district)
            and (not self.status or str(line.decision) == self.status)
            and (not self.clc or (line.clc_class or "").upper().startswith(self.clc.upper()))
            and (not self.selected or line.selected == (self.selected == "yes"))
            and (not self.eligible or (not line.reason_codes) == (self.eligible == "yes"))
        )

    def apply(self, round_: Round) -> list[RoundLine]:
        """Every line that passes, in the chosen order (all pages)."""
        lines = [line for line in round_.lines if self.keep(line)]
        key = {
            "rank": lambda x: x.rank,
            "price": lambda x: x.price,
            "-price": lambda x: -x.price,
            "predicted": lambda x: -(x.predicted_loans or 0.0),
            "title": lambda x: x.title or "",
        }[self.sort]
        return sorted(lines, key=key)

    def page_of(self, lines: list[RoundLine]) -> tuple[list[RoundLine], int]:
        """This page's lines and the number of pages."""
        pages = max(1, -(-len(lines) // PAGE_SIZE))
        page = min(self.page, pages)
        return lines[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], pages

    #: The criteria a form carries along (everything but the page).
    CRITERIA = ("q", "district", "status", "clc", "selected", "eligible", "sort")

    def query(self, **change) -> str:
        """The query string of this filter (with ``change`` applied), without empty values."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | change
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and not (k == "page" and v == 1)})
