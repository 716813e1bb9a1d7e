"""One table of every quality gate `make quality-all` ran.

    python -m trainer.evaluation.quality_table runs/quality-all.tsv

The input has one line per gate, `NAME<TAB>pass|fail<TAB>SECONDS`, as the Makefile writes it; each
gate's JSON report (`runs/quality-NAME/eval-*.json`) gives the headline figures shown beside it.
Prints a markdown table and exits 1 when any gate failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Report figures worth showing, as dotted paths into each gate's JSON, in order; a report shows
# those it has: digits gates, the edges2digits gate, super-resolution, inpainting, text-to-image.
HEADLINES = (
    "class_accuracy",
    "digits_covered",
    "digits_fid",
    "accuracy",
    "psnr_gain_db",
    "gan_psnr_gain_db",
    "sharpness_ratio",
    "psnr_gap",
    "model.detail",
    "seen.all",
    "withheld.all",
)


def figure(report: dict, path: str):
    value = report
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def headline(report: dict) -> str:
    parts = []
    for path in HEADLINES:
        value = figure(report, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{path} {value:.4g}" if isinstance(value, float) else f"{path} {value}")
    return ", ".join(parts) or "(no report)"


def load_report(runs: Path, name: str) -> dict:
    reports = sorted((runs / f"quality-{name}").glob("eval-*.json"))
    if not reports:
        return {}
    try:
        return json.loads(reports[0].read_text())
    except ValueError:
        return {}


def table(results: Path) -> tuple[str, bool]:
    runs = results.parent
    rows, all_passed = ["| gate | result | wall time | figures |", "|---|---|---|---|"], True
    for line in results.read_text().splitlines():
        if not line.strip():
            continue
        name, result, seconds = line.split("\t")
        all_passed &= result == "pass"
        minutes, secs = divmod(int(seconds), 60)
        rows.append(
            f"| `make quality-{name}` | {result} | {minutes} min {secs:02d} s | {headline(load_report(runs, name))} |"
        )
    return "\n".join(rows), all_passed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="RESULTS.tsv, as make quality-all writes it")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        parser.error(f"{args.results}: no such file (make quality-all writes runs/quality-all.tsv)")
    text, passed = table(args.results)
    print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
