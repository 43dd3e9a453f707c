"""Adapters from public data sets to yuedu data directories (``features.schema`` tables as Parquet).

* :func:`adapt_sco` - Shakespeare and Company lending library loans (real, messy, 1919-1941).
* :func:`adapt_goodbooks` - the goodbooks-10k catalogue (10,000 real books with ISBNs).
* :func:`adapt_interactions` - any user-item CSV / CSV.GZ / Parquet file (e.g. MovieLens ratings).

Each returns an :class:`AdapterReport` and writes ``DIR/adapter_report.json``; field-level problems go to
``DIR/rejects/<table>.parquet`` in the ingestion reject layout. See ``docs/public-data.md``.
"""

from features.adapters.generic import adapt_interactions
from features.adapters.goodbooks import adapt_goodbooks
from features.adapters.report import AdapterError, AdapterReport
from features.adapters.sco import adapt_sco

__all__ = ["AdapterError", "AdapterReport", "adapt_goodbooks", "adapt_interactions", "adapt_sco"]
