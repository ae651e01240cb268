"""serve.py in a child process: started with its overrides, its port once it listens, stopped with SIGTERM.

For what drives the service from outside, as a client would (``benchmarks/serve_load.py``,
``tests/e2e/test_serve.py``). The child is started with ``port=0`` (any free port); uvicorn names the port it
bound in its log line ``Uvicorn running on http://HOST:PORT``, read back from the log file the child writes.
Needs the repository's ``serve.py`` (a clone or an editable install).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SERVE_SCRIPT = Path(__file__).resolve().parents[2] / "serve.py"
LISTENING = re.compile(r"Uvicorn running on http://[^\s:]+:(\d+)")


class ServeProcess:
    """``python serve.py port=0 OVERRIDES`` writing to ``log_path``; ``port`` is set once it listens."""

    def __init__(self, overrides: Sequence[str], log_path: Path, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = 300) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, str(SERVE_SCRIPT), "port=0", *overrides], cwd=cwd,
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env or dict(os.environ))
        self.port = self._wait_until_listening(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def stop(self, timeout: float = 300) -> int:
        """SIGTERM (answer the requests in flight, then exit) unless it has exited already; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def _wait_until_listening(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                return int(match[1])
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop(timeout=60)
        raise RuntimeError(f"serve.py did not start:\n{self.log_text()[-3000:]}")
