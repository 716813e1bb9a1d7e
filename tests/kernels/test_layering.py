"""kernels/ imports only the standard library, torch, triton, numpy and itself (docs/ARCHITECTURE.md)."""

import ast
import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "kernels"
ALLOWED = {"torch", "triton", "numpy", "kernels", "__future__"}


def test_kernels_import_only_torch_triton_numpy():
    bad = []
    for path in sorted(KERNELS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in sys.stdlib_module_names:
                    bad.append(f"{path.relative_to(KERNELS.parent)} imports {name}")
    assert not bad, bad
