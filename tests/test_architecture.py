"""The layers import one way only: features, then recsys and acquisition (acquisition may use recsys,
not the reverse), then training, then serving; and no product layer imports the tooling
(``benchmarks``), which may import any of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("features", "recsys", "acquisition", "training", "serving")
TOOLING = "benchmarks"
#: The one product module allowed to import the tooling: ``yuedu bench``, lazily inside the command.
TOOLING_ENTRY = "serving/cli/bench_cmds.py"


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Top-level package names ``path`` imports (``top_level_only``: at module level, not in functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(p.relative_to(REPO)): sorted(_imports(p) & above)
        for p in (REPO / layer).rglob("*.py")
        if _imports(p) & above
    }
    assert not offenders, f"{layer} imports from layers above it: {offenders}"


@pytest.mark.parametrize("layer", LAYERS)
def test_product_never_imports_the_benchmarks(layer):
    offenders = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / layer).rglob("*.py")
        if TOOLING in _imports(p) and str(p.relative_to(REPO)) != TOOLING_ENTRY
    )
    assert not offenders, f"{layer} imports the benchmarks (tooling): {offenders}"


def test_the_bench_command_imports_the_benchmarks_lazily():
    entry = REPO / TOOLING_ENTRY
    assert TOOLING in _imports(entry), "yuedu bench no longer runs the benchmarks package?"
    assert TOOLING not in _imports(entry, top_level_only=True), "import benchmarks inside the command only"


def test_training_does_not_import_acquisition():
    offenders = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "training").rglob("*.py") if "acquisition" in _imports(p)
    )
    assert not offenders, f"training imports acquisition: {offenders}"


#: Production functions allowed over the size limit, each with its reason (issue 14 rewrites them).
LONG_FUNCTIONS = {
    "features/synth.py:synthesize": "the generator's stages in order; rewritten by the physical-world work (issue 14)",
    "features/synth_programme.py:sample_requests": "purchase-request truth; rewritten with capacity-aware value (issue 14)",
}
MAX_FUNCTION_LINES = 80


def test_no_long_production_functions():
    long = {}
    for layer in LAYERS:
        for path in (REPO / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    size = node.end_lineno - node.lineno + 1
                    if size > MAX_FUNCTION_LINES:
                        long[f"{path.relative_to(REPO)}:{node.name}"] = size
    assert set(long) <= set(LONG_FUNCTIONS), f"functions over {MAX_FUNCTION_LINES} lines: {long}"
