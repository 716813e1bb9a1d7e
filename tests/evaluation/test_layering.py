"""The standalone sampler must stay standalone, and evaluation must not reach into the CLI."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_sampler_file_imports_only_torch_safetensors_and_the_standard_library():
    third_party = _imports(ROOT / "sampler" / "hiresgan_sampler.py") - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"torch", "safetensors"}


def test_evaluation_and_exports_do_not_import_launch():
    files = list((ROOT / "trainer" / "evaluation").glob("*.py")) + [ROOT / "trainer" / "export.py",
                                                                     ROOT / "trainer" / "sample.py"]
    for path in files:
        assert "launch" not in _imports(path), path
