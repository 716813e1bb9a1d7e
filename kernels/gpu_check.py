"""One prepared run that validates the GPU path (`make gpu-check`), at most 8 minutes on one
H100/H200, writing JSON and a markdown table to one folder:

    python -m kernels.gpu_check --out bench/gpu-check

Sections, in order, each with its own time cap (the run stops starting work when the total
budget, --budget-s, is spent; what was skipped is listed):

1. environment: device, capability, memory, torch / Triton / CUDA versions.
2. parity: the first-use check of every op (kernels/guard.py) on this device.
3. tests: `pytest -m gpu tests/kernels`, compiled (TRITON_INTERPRET unset), JUnit XML kept.
4. index_64bit: each op past 2**31 elements, 1.7e10 where memory allows (kernels/gpu_check_index.py).
5. bench: each op at 2-3 StyleGAN2 layer shapes in bf16, Triton vs reference vs torch.compile,
   do_bench timing (CUDA events, L2 flushed), as fractions of the measured copy bandwidth and
   bf16 matmul rate (kernels/bench.py).
6. train_steps: 256x256 StyleGAN2 steps with Triton on and off: sec/kimg, ms per phase, peak
   memory (`python -m trainer.telemetry.step_timing`, a subprocess: kernels does not import the trainer).
7. sanitizer: `compute-sanitizer --tool memcheck` on a few kernel tests, when it is installed.

Without a GPU (or with --plumbing) it runs in plumbing mode: the same sections and files at tiny
sizes, the reference and the Triton interpreter; no figure it writes says anything about a GPU.
Exit status 1 when a section failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = [
    "model.channel_base=128",
    "model.channel_max=8",
    "model.z_dim=8",
    "model.w_dim=8",
    "model.mapping_layers=1",
]
# Bench shapes (kernels/bench_cases.py labels): 2-3 per op, the 1024x1024 layers of config F.
BENCH_LABELS = (
    "G upsample 512->1024",
    "D downsample 1024->512",
    "G/D 1024 lrelu",
    "G/D 512 lrelu",
    "G conv1 1024 (32->32)",
    "G conv0 up 512->1024 (64->32)",
    "G conv1 512 (64->64)",
)
SANITIZER_TESTS = [
    "tests/kernels/test_bias_act.py",
    "tests/kernels/test_upfirdn2d.py",
    "tests/kernels/test_modulated_conv2d.py",
    "-k",
    "cuda and (many_small_tiles or every_output_element_written or epilogue_writes_every_element "
    "or non_contiguous or channel_groups)",
]
NEEDED_MODULES = ("pytest", "numpy", "yaml", "omegaconf")
# Seconds each section may take on a GPU (sum 470 < 480); plumbing runs are far shorter.
CAPS = {
    "environment": 10,
    "parity": 30,
    "tests": 170,
    "index_64bit": 40,
    "bench": 90,
    "train_steps": 90,
    "sanitizer": 60,
}


class Check:
    """Runs the sections against one time budget and writes the report after each."""

    def __init__(self, out: Path, budget_s: float, plumbing: bool, device: torch.device, argv: list[str]):
        self.out, self.plumbing, self.device = out, plumbing, device
        out.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget_s
        self.report = {
            "command": " ".join(["python -m kernels.gpu_check"] + argv),
            "plumbing": plumbing,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": budget_s,
            "sections": {},
        }

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, fn) -> None:
        cap = min(CAPS[name], self.left())
        if cap < 5:
            result = {"status": "skipped", "reason": f"time budget spent ({self.left():.0f} s left)"}
        else:
            t0 = time.monotonic()
            try:
                result = fn(cap)
                result.setdefault("status", "ok")
            except Exception as exc:  # noqa: BLE001 - a failed section is reported; the next ones still run
                result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            result["seconds"] = round(time.monotonic() - t0, 1)
        self.report["sections"][name] = result
        print(f"gpu_check: {name}: {result['status']} ({result.get('seconds', 0)} s)", flush=True)
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.report, indent=1, default=str))
        (self.out / "gpu_check.md").write_text(markdown(self.report))

    # ---- sections ---------------------------------------------------------------------------

    def environment(self, cap) -> dict:
        import triton

        info = {
            "torch": torch.__version__,
            "triton": triton.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "device": str(self.device),
            # what the tests and the step timing import besides torch and triton (docs/KERNELS.md)
            "missing_modules": [m for m in NEEDED_MODULES if importlib.util.find_spec(m) is None],
        }
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            info.update(
                name=props.name,
                capability=f"sm_{props.major}{props.minor}",
                memory_GiB=round(props.total_memory / 2**30, 1),
                sms=props.multi_processor_count,
            )
        else:
            info.update(name=f"cpu ({platform.machine()}, {os.cpu_count()} cores)", interpreter=True)
        return info

    def parity(self, cap) -> dict:
        from kernels import guard

        guard.reset()
        found = {op: guard.run_check(op, self.device) for op in guard.OPS}
        result = {op: {"ok": ok, "detail": detail} for op, (ok, detail) in found.items()}
        if not all(ok for ok, _ in found.values()):
            result["status"] = "failed"
        return result

    def _pytest(self, args: list[str], timeout: float, junit: Path, prefix: list[str] = (), extra_env=None) -> dict:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **(extra_env or {}))
        if not self.plumbing:
            env.pop("TRITON_INTERPRET", None)  # compiled kernels
        cmd = [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
        out_path = junit.with_suffix(".log")
        with open(out_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            timed_out = False
            try:
                proc.wait(timeout=max(1.0, timeout - 20))
            except subprocess.TimeoutExpired:
                # SIGINT: pytest stops, then still writes its summary and the JUnit XML of what ran
                timed_out = True
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        result = {
            "command": " ".join(cmd),
            "returncode": proc.returncode,
            **junit_counts(junit),
            "output_tail": out_path.read_text(errors="replace")[-3000:],
        }
        if timed_out:
            result.update(
                status="failed",
                error=f"interrupted at the time cap ({timeout:.0f} s); counts are of the tests that ran",
            )
        elif proc.returncode != 0:
            result["status"] = "failed"
        return result

    def tests(self, cap) -> dict:
        if importlib.util.find_spec("pytest") is None:
            return {"status": "failed", "error": "pytest is not installed: carry its wheels (docs/KERNELS.md)"}
        # Plumbing: a few interpreter probes (what is tested is the run, its timeout and its report).
        args = (
            ["tests/kernels/test_index_64bit.py", "-k", "pixel_offsets"]
            if self.plumbing
            else ["-m", "gpu", "tests/kernels"]
        )
        return self._pytest(args, cap, self.out / "tests.xml")

    def index_64bit(self, cap) -> dict:
        from kernels import gpu_check_index

        return gpu_check_index.run(self.device, self.plumbing)

    def bench(self, cap) -> dict:
        from kernels import bench

        args = SimpleNamespace(
            device=str(self.device),
            quick=self.plumbing,
            dtypes=["bf16"],
            ops=[],
            no_compile=False,
            compile_backend="aot_eager" if self.plumbing else "inductor",
            warmup=1 if self.plumbing else 3,
            iters=1 if self.plumbing else 10,
            rep_ms=50.0,
            argv=["(from kernels.gpu_check)"],
        )
        report = bench.bench(
            args,
            selected=None if self.plumbing else (lambda c: c.label in BENCH_LABELS),
            deadline=time.monotonic() + cap - 5,
        )
        (self.out / "bench.json").write_text(json.dumps(report, indent=1))
        return {k: report[k] for k in ("copy_GBps", "matmul_TFLOPs", "timing", "results", "skipped")}

    def train_steps(self, cap) -> dict:
        out = self.out / "train_steps.json"
        if self.plumbing:
            args = [
                "--config",
                "configs/digits.yaml",
                "--device",
                "cpu",
                "--batch",
                "2",
                "--warmup",
                "0",
                "--steps",
                "1",
                "--threads",
                "1",
                *TINY_TRAIN,
            ]
        else:
            args = [
                "--config",
                "configs/ffhq256.yaml",
                "--device",
                str(self.device),
                "--batch",
                "16",
                "--warmup",
                "2",
                "--steps",
                "5",
            ]
        cmd = [sys.executable, "-m", "trainer.telemetry.step_timing", "--kernels", "auto,ref", "--out", str(out), *args]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=cap)
        except subprocess.TimeoutExpired:
            return {"status": "failed", "error": f"timed out after {cap:.0f} s", "command": " ".join(cmd)}
        if done.returncode != 0:
            return {"status": "failed", "command": " ".join(cmd), "error": (done.stdout + done.stderr)[-2000:]}
        runs = json.loads(out.read_text())["runs"]
        on, off = runs["auto"], runs["ref"]
        return {
            "command": " ".join(cmd),
            "runs": runs,
            "triton_over_reference_sec_per_kimg": on["sec_per_kimg"] / off["sec_per_kimg"],
        }

    def sanitizer(self, cap) -> dict:
        tool = shutil.which("compute-sanitizer") or next(
            (
                p
                for p in ("/usr/local/cuda/bin/compute-sanitizer", "/opt/cuda/bin/compute-sanitizer")
                if Path(p).exists()
            ),
            None,
        )
        if self.plumbing or tool is None:
            return {
                "status": "skipped",
                "reason": "no GPU (plumbing mode)"
                if self.plumbing
                else "compute-sanitizer not found (PATH, /usr/local/cuda/bin)",
                "tests": SANITIZER_TESTS,
            }
        # No caching allocator: an out-of-bounds access inside a cached block would go unseen.
        return self._pytest(
            SANITIZER_TESTS,
            cap,
            self.out / "sanitizer.xml",
            prefix=[tool, "--tool", "memcheck", "--error-exitcode", "86", "--print-limit", "20"],
            extra_env={"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"},
        )


def junit_counts(path: Path) -> dict:
    """passed / failed / errors / skipped from a pytest JUnit XML file (absent: empty)."""
    if not path.exists():
        return {}
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    total, failed, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    failures = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {
        "passed": total - failed - errors - skipped,
        "failed": failed,
        "errors": errors,
        "skipped": skipped,
        "failures": failures[:20],
    }


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(report: dict) -> str:
    """The report as markdown: one status table, then the tables of the bench and the steps."""
    s = report["sections"]
    env = s.get("environment", {})
    lines = [
        f"# gpu_check {'(PLUMBING: no GPU, nothing here is a GPU figure)' if report['plumbing'] else ''}",
        "",
        f"{report['date']}, {env.get('name', '?')}, torch {env.get('torch', '?')}, triton "
        f"{env.get('triton', '?')}; `{report['command']}`",
        "",
        "| section | status | seconds | summary |",
        "|---|---|---|---|",
    ]
    for name, r in s.items():
        summary = r.get("error") or r.get("reason") or ""
        if name == "tests" and "passed" in r:
            summary = f"{r['passed']} passed, {r['failed']} failed, {r['errors']} errors, {r['skipped']} skipped"
        elif name == "parity" and r.get("status") != "failed" and "error" not in r:
            summary = ", ".join(f"{op} {'ok' if v['ok'] else 'MISMATCH'}" for op, v in r.items() if isinstance(v, dict))
        elif name == "index_64bit" and "plan" in r:
            summary = f"n={r['plan']['n']:.3g} elements, int64 {'on' if r['int64_indexing'] else 'off'}"
        elif name == "environment" and "name" in r:
            missing = f"; MISSING: {', '.join(r['missing_modules'])}" if r["missing_modules"] else ""
            summary = f"{r['name']} {r.get('capability', '')}{missing}"
        elif name == "bench" and "results" in r:
            summary = f"{len(r['results'])} rows, {len(r['skipped'])} skipped (time budget); table below"
        elif name == "train_steps" and "runs" in r:
            summary = f"Triton/reference sec/kimg = {r['triton_over_reference_sec_per_kimg']:.3f}"
        first = (str(summary).splitlines() or [""])[0][:160]
        lines.append(f"| {name} | {r['status']} | {r.get('seconds', '-')} | {first} |")
    bench = s.get("bench", {})
    if bench.get("results"):
        lines += [
            "",
            f"Bench: copy {bench['copy_GBps']:.1f} GB/s, bf16 matmul "
            f"{_fmt(bench['matmul_TFLOPs'].get('bf16'))} TFLOP/s; {bench['timing']}",
            "",
            "| op | case | dir | impl | ms | GB/s | % copy | TFLOP/s | % matmul | x ref |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bench["results"]:
            lines.append(
                f"| {r['op']} | {r['case']} | {r['direction']} | {r['impl']} | {r['ms']:.3f} | "
                f"{r['GBps']:.1f} | {100 * r['frac_copy']:.1f} | {_fmt(r['TFLOPs'])} | "
                f"{_fmt(None if r['frac_matmul'] is None else 100 * r['frac_matmul'], '.1f')} | "
                f"{_fmt(r['speedup_vs_ref'])} |"
            )
        if bench.get("skipped"):
            lines.append(f"\nSkipped (time budget): {len(bench['skipped'])} rows")
    train = s.get("train_steps", {})
    if train.get("runs"):
        phases = sorted({p for run in train["runs"].values() for p in run["phase_ms"]})
        lines += [
            "",
            "| kernels | sec/kimg | step ms | " + " | ".join(f"{p} ms" for p in phases) + " | peak GiB |",
            "|---" * (4 + len(phases)) + "|",
        ]
        for name, run in train["runs"].items():
            lines.append(
                f"| {name} | {run['sec_per_kimg']:.2f} | {run['step_ms']:.1f} | "
                + " | ".join(_fmt(run["phase_ms"].get(p), ".1f") for p in phases)
                + f" | {run['peak_memory_bytes'] / 2**30:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kernels.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, gpu_check.md and the rest")
    p.add_argument("--budget-s", type=float, default=480.0, help="total time budget in seconds (default 8 minutes)")
    p.add_argument("--plumbing", action="store_true", help="tiny sizes on CPU even where a GPU is present")
    p.add_argument("--device", default="cuda", help="the GPU to check (cuda, cuda:1, ...)")
    args = p.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    plumbing = args.plumbing or not torch.cuda.is_available()
    if plumbing:
        # The interpreter runs the kernels on CPU tensors; it is read when the kernels are first
        # defined, so it is set before any of them is imported.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    device = torch.device("cpu") if plumbing else torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    check = Check(args.out, args.budget_s, plumbing, device, argv)
    for name in CAPS:
        check.section(name, getattr(check, name))
    failed = [n for n, r in check.report["sections"].items() if r["status"] == "failed"]
    print(
        f"gpu_check: {'plumbing, ' if plumbing else ''}{len(failed)} failed section(s) {failed or ''}; "
        f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
