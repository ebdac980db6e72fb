"""A lakeflyd for a benchmark: started on an ephemeral loopback port with a temporary
state directory, called over its API, stopped with SIGTERM. Shared by the benchmark
scripts."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request


class Daemon:
    """A running lakeflyd; use as a context manager, or call `close()`."""

    def __init__(self, binary, *args):
        if not os.path.exists(binary):
            raise SystemExit(f"{binary} not found: run `cargo build --release` first")
        self.state = tempfile.mkdtemp(prefix="lakefly-bench-")
        self.proc = subprocess.Popen(
            [binary, "--api", "127.0.0.1:0", "--state", self.state, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "LAKEFLY_LOG": "warn"})
        ready = self.proc.stdout.readline()
        if not ready:
            self.close()
            raise SystemExit(f"{binary} exited before it was ready")
        self.api = json.loads(ready)["api"]
        self.pid = self.proc.pid

    def call(self, method, path, body=None, timeout=60):
        """One API call; the decoded JSON answer (None for an empty one)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
