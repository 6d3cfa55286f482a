"""Start and stop a real vLLM OpenAI-compatible server (CPU build) on loopback.

The server runs in its own process group, so `stop()` reaches the API server and the engine-core
and worker processes it forks: no orphans. Flags follow the CPU recipe: eager mode (25-35 s to
healthy instead of 70-80 s), a bounded KV cache, a short context.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from inferwatch.engine import runtime
from inferwatch.stack import StackError, free_port, wait_until

KV_CACHE_BYTES = 128 * 1024 * 1024


@dataclass
class VllmServer:
    model_dir: Path
    workdir: Path
    served_model_name: str = "tiny-llama"
    port: int = 0
    max_model_len: int = 512
    max_num_seqs: int | None = None
    kv_cache_bytes: int = KV_CACHE_BYTES
    env: dict[str, str] = field(default_factory=dict)  # e.g. INFERWATCH_CONFIG for the plugin
    proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"vllm-{self.port}.log"

    def command(self) -> list[str]:
        cmd = [
            str(runtime.venv_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_model_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), "--dtype", "bfloat16", "--enforce-eager",
            "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
        ]
        if self.max_num_seqs:
            cmd += ["--max-num-seqs", str(self.max_num_seqs)]
        return cmd

    def start(self, timeout: float = 240.0) -> VllmServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        cache = self.workdir / "vllm-cache"
        env = {
            **os.environ,
            "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1", "VLLM_CACHE_ROOT": str(cache), "TOKENIZERS_PARALLELISM": "false",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=self.workdir, start_new_session=True)

        def healthy() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise StackError(f"vLLM exited during start-up; last log lines:\n{self.log_tail()}")
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                return response.status == 200

        try:
            wait_until(healthy, timeout, interval=0.5, what=f"vLLM /health on port {self.port}")
        except StackError:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after `grace` seconds."""
        if self.proc is None:
            return
        stop_process_group(self.proc.pid, grace)
        self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def state(self) -> dict:
        return {"pid": self.proc.pid if self.proc else None, "port": self.port, "model_dir": str(self.model_dir),
                "served_model_name": self.served_model_name, "log": str(self.log_path)}


def stop_process_group(pgid: int, grace: float = 20.0) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def state_file(name: str) -> Path:
    return runtime.home() / "run" / f"engine-{name}.json"


def write_state(name: str, state: dict) -> None:
    path = state_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def read_state(name: str) -> dict | None:
    try:
        return json.loads(state_file(name).read_text())
    except (OSError, ValueError):
        return None
