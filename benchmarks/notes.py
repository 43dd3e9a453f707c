"""The profiling history: why a goal is short and what would close it, per row key (``bench/figure``).

The notes themselves are Markdown, in :data:`NOTES_FILE` (``benchmarks/NOTES.md``): one ``## <row
key>`` section of one paragraph per figure. :func:`load_notes` reads them for the report, which
copies the note of every figure that falls short into ``bench.md``.
"""

from __future__ import annotations

from pathlib import Path

NOTES_FILE = Path(__file__).resolve().with_name("NOTES.md")


def load_notes(path: Path = NOTES_FILE) -> dict[str, str]:
    """Notes by row key: each ``## key`` section's lines joined into one line (empty lines dropped).

    Text before the first section (the file's title and introduction) is not a note.
    """
    notes: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = notes.setdefault(line[3:].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return {key: " ".join(lines) for key, lines in notes.items()}
