"""Render the data model (features.schema) as Markdown: ``python -m features.docs > docs/data-model.md``."""

from __future__ import annotations

from features.schema import CLC_TOP_CLASSES, DISTRICTS, TABLES


def data_model_markdown() -> str:
    out = [
        "# Data model",
        "",
        "Generated from `features/schema.py` by `python -m features.docs > docs/data-model.md`"
        " (a test keeps it in sync). Each table is one Parquet file `<table>.parquet` in a data directory,",
        "read lazily with polars (`features.schema.scan_table`). Ingestion (`yuedu data ingest`) validates"
        " exports against these schemas; rejected rows go to `rejects/<table>.parquet` with reason codes.",
        "",
        f"Sample-city districts: {', '.join(DISTRICTS)}.",
        "",
        "CLC top classes: " + "; ".join(f"{k} {v}" for k, v in CLC_TOP_CLASSES.items()) + ".",
        "",
    ]
    for t in TABLES.values():
        out += [f"## `{t.name}`", "", t.doc, ""]
        if t.primary_key:
            out += [f"Primary key: `{t.primary_key}`.", ""]
        out += ["| column | type | required | null | rule | meaning |", "|---|---|---|---|---|---|"]
        for name, c in t.columns.items():
            rules = []
            if c.values:
                rules.append("one of " + ", ".join(f"`{v}`" for v in c.values))
            if c.min is not None:
                rules.append(f">= {c.min:g}")
            if c.ref:
                rules.append(f"→ `{c.ref}`")
            out.append(
                f"| `{name}` | {c.dtype} | {'no' if name in t.optional else 'yes'} | "
                f"{'yes' if c.nullable else 'no'} | {'; '.join(rules)} | {c.doc} |"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(data_model_markdown(), end="")
