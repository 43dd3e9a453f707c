"""``python -m benchmarks [--quick] [--only NAME] ...``: the same suite as ``yuedu bench``."""

from __future__ import annotations

import sys

from serving.cli import app

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]], prog_name="python -m benchmarks")
