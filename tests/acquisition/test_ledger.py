"""Money moves in one module: only acquisition/ledger.py writes budget_lines amounts."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: A write of a budget line's money: an ORM ``.values(reserved_fen=...)`` or raw SQL.
WRITE = re.compile(r"\.values\(\s*(reserved|committed|encumbered|spent|paid)_fen\s*=|UPDATE budget_lines SET")


def test_only_the_ledger_writes_budget_line_money():
    writers = sorted(
        str(p.relative_to(REPO))
        for top in REPO.iterdir()
        if top.is_dir() and top.name != "tests" and not top.name.startswith(".")
        for p in top.rglob("*.py")
        if WRITE.search(p.read_text(encoding="utf-8"))
    )
    assert writers == ["acquisition/ledger.py"]
