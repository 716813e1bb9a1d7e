"""Preemption on real multi-process runs: a signal stops every rank at the same step boundary, the
run writes a checkpoint and exits with PREEMPTED_EXIT (75), and running the same command again
ends in exactly the state of an uninterrupted run."""

import os
import signal
import time

import pytest
from launchkit import (
    assert_same_final_state,
    hiresgan,
    logged_step,
    process_tree,
    rank_pids,
    read_marker,
    start,
    train_args,
    wait_for_step,
)

from trainer.preemption import PREEMPTED_EXIT

pytestmark = pytest.mark.slow

# 32 steps of 8 images on 2 ranks (the signal, sent after step 4, lands well before the end even on
# a loaded machine); no periodic checkpoint, so the only mid-run one is the preemption's.
COMMON = [
    "launch.nproc_per_node=2",
    "train.deterministic=true",
    "train.kimg=0.256",
    "train.checkpoint_kimg=10",
    "train.sample_kimg=10",
]


def _preempt(proc, run_dir, pid_of, sig, after_step=4):
    wait_for_step(run_dir, after_step, proc)
    t0 = time.monotonic()
    for pid in pid_of(proc):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    code = proc.wait(timeout=300)
    return code, time.monotonic() - t0


@pytest.fixture(scope="module")
def straight(tmp_path_factory, digit_shards):
    """The uninterrupted reference run."""
    out = tmp_path_factory.mktemp("straight")
    result = hiresgan(*train_args(digit_shards[1], out, "straight", *COMMON))
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "straight"


def test_signal_to_one_rank_stops_all_ranks_and_the_resumed_run_matches_an_uninterrupted_one(
    tmp_path, digit_shards, straight
):
    _, pattern = digit_shards
    args = train_args(pattern, tmp_path, "split", *COMMON)
    proc = start(*args, log=tmp_path / "split-1.log")
    # SIGUSR1 to rank 1 only: rank 0 learns of it through the per-step agreement.
    code, seconds = _preempt(proc, tmp_path / "split", lambda p: [rank_pids(p.pid)[1]], signal.SIGUSR1)
    log = (tmp_path / "split-1.log").read_text()
    assert code == PREEMPTED_EXIT, log[-3000:]
    marker = read_marker(tmp_path / "split")
    assert marker["signal"] == "none"  # rank 0 itself was never signalled
    assert 4 <= marker["step"] < 32, marker
    assert marker["checkpoint"].endswith(f"step-{marker['step']:08d}")
    assert "run the same command again to resume" in log
    print(f"\nSIGUSR1 to rank 1 -> checkpoint at step {marker['step']} and exit {code} in {seconds:.1f} s")

    resumed = hiresgan(*args)  # the same command: automatic resume
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {marker['checkpoint']}" in resumed.stderr
    assert read_marker(tmp_path / "split") is None  # cleared once the run carried on
    assert_same_final_state(straight, tmp_path / "split")


def test_sigterm_to_every_process_checkpoints_within_a_minute(tmp_path, digit_shards):
    """As SLURM does it: the launcher, the ranks and their data-loader workers all get SIGTERM."""
    _, pattern = digit_shards
    proc = start(*train_args(pattern, tmp_path, "term", *COMMON, "data.workers=1"), log=tmp_path / "term.log")
    code, seconds = _preempt(proc, tmp_path / "term", lambda p: process_tree(p.pid), signal.SIGTERM)
    log = (tmp_path / "term.log").read_text()
    assert code == PREEMPTED_EXIT, log[-3000:]
    marker = read_marker(tmp_path / "term")
    assert marker["signal"] == "SIGTERM" and marker["seconds_signal_to_checkpoint"] < 60, marker
    assert (tmp_path / "term" / "checkpoints" / f"step-{marker['step']:08d}" / "MANIFEST.json").is_file()
    print(
        f"\nSIGTERM to all processes -> checkpoint in {marker['seconds_signal_to_checkpoint']:.1f} s, "
        f"exit {code} after {seconds:.1f} s"
    )
    assert seconds < 60


def test_a_killed_rank_is_restarted_and_the_run_ends_like_an_uninterrupted_one(tmp_path, digit_shards, straight):
    """SIGKILL (an out-of-memory kill, a crash): the elastic agent restarts the ranks
    (launch.max_restarts) and they resume from the newest complete checkpoint."""
    _, pattern = digit_shards
    args = train_args(pattern, tmp_path, "crash", *COMMON, "train.checkpoint_kimg=0.032", "launch.max_restarts=1")
    proc = start(*args, log=tmp_path / "crash.log")
    wait_for_step(tmp_path / "crash", 6, proc)
    os.kill(rank_pids(proc.pid)[1], signal.SIGKILL)
    # Read after the kill: the poll above can be a step or two behind, and a checkpoint may have
    # completed in between. Rank 0 logs a step before checkpointing it and cannot log a step that
    # rank 1 did not share (gradients are all-reduced), so this bounds what a resume can find.
    killed_at = logged_step(tmp_path / "crash")
    assert proc.wait(timeout=600) == 0, (tmp_path / "crash.log").read_text()[-3000:]
    log = (tmp_path / "crash.log").read_text()
    resumed = int(log.split("resumed from ")[1].split("step-")[1][:8])
    # Work lost to the crash is at most one checkpoint interval (4 steps here).
    assert resumed % 4 == 0 and killed_at - 4 <= resumed <= killed_at, (killed_at, resumed)
    print(f"\nSIGKILL of rank 1 after logged step {killed_at}: restarted from step {resumed}")
    assert_same_final_state(straight, tmp_path / "crash")
