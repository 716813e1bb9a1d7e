"""The README's "Train on your own images" walkthrough, run as written at tiny scale: its commands
are read from the README (so the two cannot drift apart) and run from a folder outside the
checkout, with these substitutions only: a folder of generated images for ~/my-images, 32x32
gray images (so the built-in digits features can score them; the README says 64 and RGB), a
model and run of a few steps (TINY overrides appended to `train`), CPU nodes for `slurm`, and the
digits features for `eval`. `slurm --submit` needs a cluster: tests/launch/test_slurm_cluster.py
submits the same kind of render there."""

import io
import json
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from launchkit import ROOT, TINY
from PIL import Image

pytestmark = pytest.mark.slow

SECTION = re.compile(r"<!-- walkthrough:.*?-->(.*?)<!-- walkthrough: end -->", re.S)


def walkthrough() -> tuple[list[str], list[str]]:
    """(commands, yaml blocks) of the README section, in order."""
    text = SECTION.search((ROOT / "README.md").read_text()).group(1)
    commands = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("hiresgan ")
    ]
    return commands, re.findall(r"```yaml\n(.*?)```", text, re.S)


def my_images(folder):
    """What a user has: mixed formats, sizes and one truncated download."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        size = (40 + i % 3 * 8, 40)
        img = Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8), "L")
        img.save(folder / f"{i:02d}.{('png', 'jpg', 'tif', 'gif')[i % 4]}")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), "L").save(buf, "JPEG")
    (folder / "broken.jpg").write_bytes(buf.getvalue()[:300])


def adapt(cmd: str, images, faces) -> list[str]:
    cmd = cmd.replace("~/my-images", str(images)).replace("--resolution 64", "--resolution 32")
    argv = shlex.split(cmd)[1:]
    if argv[0] == "train" and "--print-config" not in argv:
        argv += [*TINY, "train.kimg=0.032", "launch.nproc_per_node=1"]
    if argv[0] == "slurm":
        argv[argv.index("--gpus-per-node") + 1] = "0"
    if argv[0] == "eval":
        at = argv.index("--features")
        argv[at : at + 4] = ["--features", "digits", "--num", "16", "--num-real", "24", "--cache", str(faces / "cache")]
    return argv


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(argv, faces, capsys) -> Result:
    """Training in its own processes (as users run it); the quick commands in this one (saves the
    start-up of six interpreters)."""
    if argv[0] == "train" and "--print-config" not in argv:
        done = subprocess.run(
            [sys.executable, "-m", "launch", *argv], cwd=faces, capture_output=True, text=True, timeout=300
        )
        return Result(done.returncode, done.stdout, done.stderr)
    from launch.cli import main

    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def test_the_readme_walkthrough_runs_as_written(tmp_path, capsys, monkeypatch):
    commands, yamls = walkthrough()
    assert [shlex.split(c)[1] for c in commands] == [
        "shards",
        "train",
        "shards",
        "train",
        "slurm",
        "slurm",
        "sample",
        "eval",
    ]
    images, faces = tmp_path / "my-images", tmp_path / "faces"
    my_images(images)
    faces.mkdir()
    monkeypatch.chdir(faces)
    config, prometheus = yamls
    (faces / "mine.yaml").write_text(
        config.replace("resolution: 64", "resolution: 32").replace("channels: 3", "channels: 1")
    )
    outputs = {}
    for cmd in commands:
        if "--submit" in cmd:
            continue  # no cluster here (see the module docstring)
        argv = adapt(cmd, images, faces)
        result = run(argv, faces, capsys)
        assert result.returncode == 0, f"{cmd}\n{result.stderr[-3000:]}"
        outputs.setdefault(argv[0], []).append(result)
    manifest = json.loads((faces / "data" / "mine" / "manifest.json").read_text())
    assert manifest["num_samples"] == 24 and [s.split(":")[0] for s in manifest["skipped"]] == ["broken.jpg"]
    assert "skipped broken.jpg" in outputs["shards"][0].stderr
    assert "name: mine" in outputs["train"][0].stdout  # --print-config
    assert (faces / "runs" / "mine" / "export" / "generator.safetensors").is_file()
    assert sorted((faces / "runs" / "mine" / "checkpoints").glob("step-*"))
    script = outputs["slurm"][0].stdout
    assert f"#SBATCH --output={faces}/runs/mine/slurm/%x-%j.out" in script and f"cd {ROOT}" in script
    assert (faces / "samples" / "grid.png").is_file()
    assert "fid" in json.loads((faces / "eval.json").read_text())
    if shutil.which("promtool"):
        path = faces / "prometheus.yml"
        path.write_text(prometheus.replace("/home/me/faces", str(faces)))
        check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
