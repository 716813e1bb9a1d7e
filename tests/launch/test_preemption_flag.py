"""The signal -> flag -> decision path in one process (the multi-rank agreement is covered by
test_preemption.py with real ranks)."""

import os
import signal
import time

from trainer.preemption import MARKER, PreemptionWatcher, clear_marker, read_marker, write_marker


def test_a_signal_sets_the_flag_and_close_restores_the_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    watcher = PreemptionWatcher().install()
    try:
        assert not watcher.should_stop()
        os.kill(os.getpid(), signal.SIGUSR1)  # would end the process without the handler
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert watcher.should_stop() and watcher.signal_name == "SIGUSR1"  # the first one counts
    finally:
        watcher.close()
    assert signal.getsignal(signal.SIGUSR1) is before


def test_marker_round_trip_and_staleness(tmp_path):
    t0 = time.time()
    write_marker(
        tmp_path,
        step=12,
        kimg=0.096,
        signal_name="SIGTERM",
        checkpoint=tmp_path / "step-00000012",
        requeued=False,
        seconds_to_checkpoint=1.5,
    )
    marker = read_marker(tmp_path, newer_than=t0)
    assert marker["step"] == 12 and marker["signal"] == "SIGTERM" and marker["checkpoint"].endswith("step-00000012")
    assert read_marker(tmp_path, newer_than=time.time() + 10) is None  # from an earlier launch
    clear_marker(tmp_path)
    assert not (tmp_path / MARKER).exists() and read_marker(tmp_path) is None


def test_children_started_while_blocked_survive_and_the_signal_is_not_lost():
    import subprocess
    import sys

    from trainer.preemption import signals_blocked

    watcher = PreemptionWatcher().install()
    try:
        with signals_blocked(watcher.signals):
            # A child started now (like a data-loader worker) survives SIGTERM: it inherited the block.
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            os.kill(os.getpid(), signal.SIGTERM)
            child.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert child.poll() is None
            child.kill()
            child.wait()
        time.sleep(0.05)
        assert watcher.signal_name == "SIGTERM"  # not lost: handled by now
    finally:
        watcher.close()
