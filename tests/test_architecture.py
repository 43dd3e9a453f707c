"""The layers import one way only: features -> recsys -> acquisition -> training -> serving."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("features", "recsys", "acquisition", "training", "serving")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
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
