"""The command line as users type it: overrides before or after options, --version, the resolved
config printed without training, and help that shows defaults, choices and an example."""

import re
import subprocess
import sys

import tomllib
from launchkit import ROOT

from launch.cli import build_parser, main


def test_version_is_the_packages(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"hiresgan {version}"


def test_print_config_resolves_validates_and_exits(tmp_path, capsys):
    # Overrides on both sides of the option, the later one winning, as on one line.
    assert (
        main(
            [
                "train",
                "configs/digits.yaml",
                "train.kimg=3",
                "--print-config",
                "train.kimg=7",
                f"run.out_dir={tmp_path}",
                "run.name=p",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"^  kimg: 7\.0$", out, re.M) and "family: stylegan2" in out
    assert not (tmp_path / "p").exists()  # nothing written, nothing trained
    assert main(["train", "configs/digits.yaml", "--print-config", "train.batch_size=0"]) == 2
    assert "train.batch_size" in capsys.readouterr().err


def test_flags_after_overrides_are_taken_and_unknown_words_still_refused(capsys):
    from launch.args import parse

    ns = parse(build_parser(), ["train", "configs/digits.yaml", "a.b=1", "--resume", "runs/x", "c.d=2"])
    assert ns.overrides == ["a.b=1", "c.d=2"] and ns.resume == "runs/x"
    try:
        parse(build_parser(), ["train", "configs/digits.yaml", "--resume", "r", "not-an-override"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "unrecognized arguments: not-an-override" in capsys.readouterr().err


def test_every_subcommand_help_has_defaults_choices_and_an_example():
    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001
    for name, parser in sub.choices.items():
        text = parser.format_help()
        assert "example:\n  hiresgan " + name in text, name
    sample = sub.choices["sample"].format_help()
    assert "(default: 4)" in " ".join(sample.split())  # --mix-cutoff
    shards = " ".join(sub.choices["shards"].format_help().split())
    assert "{skip,stop}" in shards and "(default: skip)" in shards


def test_help_runs_as_a_command():
    result = subprocess.run(
        [sys.executable, "-m", "launch", "slurm", "-h"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "example:" in result.stdout and "--sbatch-arg" in result.stdout
