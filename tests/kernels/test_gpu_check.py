"""`python -m kernels.gpu_check` in plumbing mode (no GPU): every section runs at tiny sizes on the
same code paths and writes the same files a GPU run writes; failures and the time budget are
reported per section."""

import json

import pytest

from kernels import gpu_check


@pytest.mark.slow  # spawns pytest and the step timing as subprocesses (~50 s on 2 cores)
def test_plumbing_run_writes_every_section(tmp_path):
    out = tmp_path / "check"
    assert gpu_check.main(["--out", str(out), "--plumbing"]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    sections = report["sections"]
    assert report["plumbing"] and list(sections) == list(gpu_check.CAPS)
    assert {n: r["status"] for n, r in sections.items()} == {
        **{n: "ok" for n in gpu_check.CAPS},
        "sanitizer": "skipped",
    }
    assert all(sections["parity"][op]["ok"] for op in ("upfirdn2d", "bias_act", "modulated_conv2d"))
    assert sections["tests"]["passed"] > 0 and sections["tests"]["failed"] == 0 and (out / "tests.xml").exists()
    index = sections["index_64bit"]
    assert {"bias_act_one_row", "upfirdn2d_strided", "epilogue_strided_noise"} <= set(index)
    bench = sections["bench"]
    assert {(r["op"], r["impl"], r["dtype"]) for r in bench["results"]} == {
        (op, impl, "bf16") for op in ("upfirdn2d", "bias_act", "modulated_conv2d") for impl in ("ref", "compiled")
    }
    assert bench["copy_GBps"] > 0 and (out / "bench.json").exists()
    runs = sections["train_steps"]["runs"]
    assert set(runs) == {"auto", "ref"}
    for run in runs.values():
        assert set(run["phase_ms"]) == {"G_main", "D_main", "G_reg", "D_reg"}
        assert run["sec_per_kimg"] > 0 and run["peak_memory_bytes"] > 0
    md = (out / "gpu_check.md").read_text()
    assert "PLUMBING" in md and "| train_steps | ok |" in md and "| bias_act | quick | fwd | ref |" in md
    assert "sec/kimg" in md


def test_a_failed_section_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    from kernels import gpu_check_index

    monkeypatch.setattr(gpu_check, "CAPS", {"environment": 10, "index_64bit": 40, "sanitizer": 60})
    monkeypatch.setattr(
        gpu_check_index, "plan", lambda device, plumbing: (_ for _ in ()).throw(RuntimeError("8 GiB free on cuda:0"))
    )
    assert gpu_check.main(["--out", str(tmp_path), "--plumbing"]) == 1
    sections = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert sections["index_64bit"] == {
        "status": "failed",
        "error": "RuntimeError: 8 GiB free on cuda:0",
        "seconds": sections["index_64bit"]["seconds"],
    }
    assert sections["sanitizer"]["status"] == "skipped"
    assert "| index_64bit | failed |" in (tmp_path / "gpu_check.md").read_text()


def test_a_spent_budget_skips_the_remaining_sections(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path), "--plumbing", "--budget-s", "0"]) == 0
    sections = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert all(r["status"] == "skipped" and "time budget" in r["reason"] for r in sections.values())


def test_junit_counts(tmp_path):
    xml = tmp_path / "t.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
        '<testcase classname="a" name="ok"/><testcase classname="a" name="bad"><failure/></testcase>'
        "</testsuite></testsuites>"
    )
    assert gpu_check.junit_counts(xml) == {"passed": 2, "failed": 1, "errors": 0, "skipped": 1, "failures": ["a::bad"]}
    assert gpu_check.junit_counts(tmp_path / "absent.xml") == {}


def test_a_test_run_past_its_cap_is_interrupted_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "CAPS", {"tests": 6})  # waits 1 s, then SIGINT
    assert gpu_check.main(["--out", str(tmp_path), "--plumbing"]) == 1
    tests = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]["tests"]
    assert tests["status"] == "failed" and "interrupted at the time cap" in tests["error"]
    assert tests["seconds"] < 30 and (tmp_path / "tests.log").exists()


def test_gpu_bench_shapes_exist_and_cover_every_op():
    from collections import Counter

    from kernels.bench_cases import cases

    labels = {c.label: c.op for c in cases(False)}
    assert set(gpu_check.BENCH_LABELS) <= set(labels)  # a renamed case would silently drop rows
    assert all(2 <= n <= 3 for n in Counter(labels[lb] for lb in gpu_check.BENCH_LABELS).values())
    assert len({labels[lb] for lb in gpu_check.BENCH_LABELS}) == 3


@pytest.mark.parametrize(
    "argv, msg",
    [(["mlp.yaml"], "this times the stylegan2 recipe"), (["digits.yaml", "--kernels", "triton"], "--kernels")],
)
def test_step_timing_refuses_what_it_cannot_time(tmp_path, argv, msg, capsys):
    from trainer.telemetry import step_timing

    with pytest.raises(SystemExit):
        step_timing.main(
            ["--config", str(gpu_check.ROOT / "configs" / argv[0]), *argv[1:], "--out", str(tmp_path / "s.json")]
        )
    assert msg in capsys.readouterr().err
