"""Spark is an optional extra: with pyspark unimportable every product module but the Spark
subpackages still imports, ``yuedu --help`` works, and the commands that need Spark say so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("features", "recsys", "acquisition", "training", "serving")
#: Spark subpackages whose import needs pyspark (features.spark's package and session module do not).
SPARK_ONLY = ("features.spark.interactions", "recsys.spark", "training.spark")

#: Run first in every child: pyspark cannot be imported, as in an install without the spark extra.
_NO_PYSPARK = "import sys; sys.modules['pyspark'] = None\n"

_IMPORT_ALL = """
import importlib, json, pkgutil
layers, spark_only = {layers!r}, {spark_only!r}
names, failed = [], {{}}
for layer in layers:
    package = importlib.import_module(layer)
    names.append(layer)
    for info in pkgutil.walk_packages(package.__path__, layer + "."):
        if not info.name.startswith(spark_only):
            names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{{type(exc).__name__}}: {{exc}}"
guarded = {{}}
for name in ("recsys.spark", "training.spark"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        from features.errors import Unavailable
        guarded[name] = [isinstance(exc, Unavailable), str(exc)]
print(json.dumps({{"imported": len(names), "failed": failed, "guarded": guarded}}))
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", _NO_PYSPARK + code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=240,
    )


def test_every_product_module_imports_without_pyspark():
    proc = _run(_IMPORT_ALL.format(layers=LAYERS, spark_only=SPARK_ONLY))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["imported"] > 100  # the walk really found the modules
    # the Spark subpackages refuse with the one-line Unavailable error, not a bare ModuleNotFoundError
    for name in ("recsys.spark", "training.spark"):
        is_unavailable, message = result["guarded"][name]
        assert is_unavailable and message.startswith("pyspark is not installed"), (name, message)


def test_cli_help_and_the_spark_engine_without_pyspark():
    cli = "from serving.cli import main; sys.argv[0] = 'yuedu'; main()\n"
    help_ = _run(cli, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "train" in help_.stdout and "bench" in help_.stdout
    train = _run(cli, "train", str(REPO / "experiments" / "city_als.toml"), "--engine", "spark", "--no-track")
    assert train.returncode == 3, train.stderr
    lines = train.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pyspark is not installed"), train.stderr
