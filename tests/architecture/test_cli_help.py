"""Every command-line entry point (`def main(argv)`) answers --help: argparse %-formats help
strings, so one help text with a bare percent sign ("accuracy >= 90%") crashes the whole --help."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("trainer", "launch", "kernels")
    for path in (ROOT / package).rglob("*.py")
    if re.search(r"^def main\(argv", path.read_text(), re.MULTILINE)
)


def test_entry_points_are_found():
    assert {"trainer.evaluation.digits_gate", "trainer.evaluation.edges2digits_gate", "launch.cli"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_prints_usage_and_exits_0(module, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()
