"""`inferwatch engine up|down|status`: a named, detached vLLM server that outlives the command.

State (PID = process group, port, model) is kept in $INFERWATCH_HOME/run/engine-<name>.json so
`down` and the outage fault can find the server again; `down` stops the whole process group.
"""

from __future__ import annotations

from pathlib import Path

from inferwatch.lab.engine import runtime
from inferwatch.lab.engine.server import VllmServer, read_state, stop_process_group, write_state


def up(name: str, port: int, seed: int = 0, model_dir: str | None = None, served_model_name: str = "tiny-llama",
       max_num_seqs: int | None = None, max_model_len: int = 512, config_path: str | None = None) -> VllmServer:
    down(name)
    runtime.ensure_venv()
    directory = Path(model_dir) if model_dir else runtime.ensure_tiny_model(seed)
    env = {"INFERWATCH_CONFIG": str(Path(config_path).resolve())} if config_path else {}
    server = VllmServer(directory, runtime.home() / "run", served_model_name, port, max_model_len, max_num_seqs,
                        env=env)
    server.start()
    write_state(name, {**server.state(), "running": True, "settings": dict(
        port=port, seed=seed, model_dir=model_dir, served_model_name=served_model_name,
        max_num_seqs=max_num_seqs, max_model_len=max_model_len, config_path=config_path)})
    return server


def down(name: str) -> bool:
    """Stop the named engine's process group; its settings are kept for `restart`."""
    state = read_state(name)
    if not state or not state.get("running"):
        return False
    stop_process_group(int(state["pid"]))
    write_state(name, {**state, "running": False})
    return True


def restart(name: str, **changes) -> VllmServer:
    """Start the named engine again with its last settings, changed by `changes`."""
    state = read_state(name)
    if not state:
        raise runtime.EngineUnavailable(f"no engine named {name!r} was ever started")
    return up(name, **{**state["settings"], **changes})
