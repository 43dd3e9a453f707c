"""A keyword heuristic that guesses a Chinese Library Classification top class from a title.

Public catalogues (goodbooks-10k, the Shakespeare and Company lending library) carry no subject class,
yet every yuedu title needs a ``clc_class``. Both are mostly fiction and literature, so the default is
``I`` (literature); a title is moved to another class only when it contains an unambiguous English
keyword (whole word, case-insensitive). The first matching rule wins, so the order matters: specific
rules (dictionaries, cookery) come before broad ones (history). The guess is coarse on purpose: it
shapes class-level analytics (shares of loans per class), not cataloguing.
"""

from __future__ import annotations

import polars as pl

#: Default class when no keyword matches: literature.
DEFAULT_CLC = "I"

#: Goodreads-style series marker in a title, e.g. "(The Princess Diaries, #5)".
SERIES_MARKER = r"#[0-9]"

#: Ordered ``(clc_class, regex)`` rules applied to lower-cased titles; the first match wins.
CLC_KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("H", r"\b(dictionary|grammar|lexicon|phrasebook|thesaurus|vocabulary)\b"),
    ("TS9", r"\b(cookbook|cookery|recipes|cooking)\b"),
    ("B", r"\b(philosophy|philosophical|metaphysics|ethics|religion|theology|buddhism|psychology)\b"),
    ("F", r"\b(economics|economy|finance|investing|money|capitalism|business|marketing)\b"),
    ("D", r"\b(politics|political|law|government|democracy|socialism)\b"),
    ("E", r"\b(war|military|army|navy|warfare)\b.*\b(history|campaign|strategy)\b"),
    (
        "J",
        r"\b(art history|history of art|painting|painters|sculpture|architecture|music|musicians|photography|theatre|cinema)\b",
    ),
    ("TP3", r"\b(programming|computer|computers|software|algorithms?)\b"),
    ("O", r"\b(mathematics|physics|chemistry|geometry|quantum)\b"),
    ("P", r"\b(astronomy|geology|cosmos)\b"),
    ("Q", r"\b(biology|evolution|genes?|botany|zoology|species)\b"),
    ("R", r"\b(medicine|medical|health|diet|nutrition|surgery|disease)\b"),
    ("K81", r"\b(biography|autobiography|memoirs?|letters of|journals of)\b"),
    ("K", r"\b(history|historical survey)\b"),
    ("G", r"\b(education|teaching|sport|sports|football|baseball|chess)\b"),
)


def clc_from_title(title: pl.Expr, default: str = DEFAULT_CLC) -> pl.Expr:
    """A CLC class for each title (vectorised), ``default`` when no keyword rule matches."""
    lowered = title.fill_null("").str.to_lowercase()
    expr = pl.lit(default)
    for clc, pattern in reversed(CLC_KEYWORD_RULES):
        expr = pl.when(lowered.str.contains(pattern)).then(pl.lit(clc)).otherwise(expr)
    # A series marker ("(Dork Diaries, #3)") means a novel in a series, whatever its keywords say.
    return pl.when(lowered.str.contains(SERIES_MARKER)).then(pl.lit(default)).otherwise(expr).alias("clc_class")
