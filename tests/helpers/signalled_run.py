"""Running a command until it pauses at a chosen step (``WaitForSignal``), then signalling it, as a scheduler would."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def wait_for_signal_overrides(global_step: int, marker: Path) -> list[str]:
    """The overrides that make a run pause after ``global_step`` and create ``marker``."""
    return ["+callbacks.wait._target_=tests.helpers.WaitForSignal", f"+callbacks.wait.global_step={global_step}",
            f"+callbacks.wait.marker={marker}"]


def run_and_signal(command: Sequence[str], *, cwd: Path, marker: Path, signum: int,
                   env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Start ``command``, send ``signum`` once ``marker`` exists, and wait for the process to end."""
    process = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=None if env is None else dict(env))
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the run never reached the step that creates {marker.name}"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
