"""README "Your own data", executed: the bash block is run as written, in a fresh folder, on a CSV of
loans this test writes (CSV -> ingest -> evaluate --data -> train -> recommend -> serve -> one HTTP
request), and no step may print a traceback. The only change to the block: the HTTP port, so that
parallel test runs do not collide."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from serving.server import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the README's step 5 uses curl")


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README: the 'Your own data' section has no bash block"
    return match.group(1)


def write_loans(path: Path, seed: int = 3) -> None:
    """~6,000 loans of 300 card holders over 500 books in two years; C00042 borrows too."""
    rng = np.random.default_rng(seed)
    n = 6000
    cards = np.r_[np.full(12, 42), rng.integers(1, 301, n - 12)]
    books = rng.zipf(1.5, n) % 500 + 1
    days = rng.integers(0, 730, n)
    start = date(2024, 1, 1)
    rows = [f"C{c:05d},B{b:04d},{start + timedelta(days=int(d))}" for c, b, d in zip(cards, books, days, strict=True)]
    path.write_text("card,book,borrowed\n" + "\n".join(rows) + "\n")


def test_readme_own_data_section_runs_verbatim(tmp_path):
    if not (REPO / ".venv" / "bin" / "yuedu").exists():
        pytest.skip("the README's commands need .venv/bin/yuedu (make install)")
    script = readme_block()
    assert "--port 8000" in script and "127.0.0.1:8000" in script
    port = str(free_port())
    script = script.replace("--port 8000", f"--port {port}").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    write_loans(tmp_path / "my_loans.csv")
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/ml.db"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    # every step left what it promises
    assert (tmp_path / "my_library" / "interactions.parquet").exists()
    assert list((tmp_path / "my_results").glob("*.md")), "evaluate --data wrote no report"
    assert (tmp_path / "my_model" / "model.json").exists()
    # the last line is the HTTP answer: the reader's list, with what the data could not tell
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["reader_id"] == "C00042" and len(answer["items"]) == 10
    assert {x["code"] for x in answer["limitations"]} >= {"no_holdings", "no_branches"}
    assert all(item["reasons"] for item in answer["items"])
