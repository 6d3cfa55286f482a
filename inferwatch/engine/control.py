"""`inferwatch engine up|down|status`: a named, detached vLLM server that outlives the command.

State (PID = process group, port, model) is kept in $INFERWATCH_HOME/run/engine-<name>.json so
`down` and the outage fault can find the server again; `down` stops the whole process group.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inferwatch.engine import runtime
from inferwatch.engine.server import VllmServer, read_state, stop_process_group, write_state


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="run a real vLLM (CPU build) with a tiny local model",
                       description="Manage a local vLLM CPU server: its venv, a tiny random-weight model, "
                       "the server process.")
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    up_p = actions.add_parser("up", help="install if needed, start, wait until healthy")
    up_p.add_argument("--name", default="default")
    up_p.add_argument("--port", type=int, default=8000)
    up_p.add_argument("--seed", type=int, default=0, help="tiny model seed (another seed = another version)")
    up_p.add_argument("--model-dir", help="serve this model directory instead of the tiny model")
    up_p.add_argument("--served-model-name", default="tiny-llama")
    up_p.add_argument("--max-num-seqs", type=int, help="batch size cap (small values make a queue form)")
    up_p.add_argument("--max-model-len", type=int, default=512)
    up_p.set_defaults(run=_up)
    down_p = actions.add_parser("down", help="stop the server and every process it started")
    down_p.add_argument("--name", default="default")
    down_p.set_defaults(run=_down)
    status_p = actions.add_parser("status", help="print the server's state")
    status_p.add_argument("--name", default="default")
    status_p.set_defaults(run=_status)


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


def _up(args: argparse.Namespace, config) -> int:
    try:
        server = up(args.name, args.port, args.seed, args.model_dir, args.served_model_name, args.max_num_seqs,
                    args.max_model_len, args.config)
    except (runtime.EngineUnavailable, RuntimeError) as exc:
        print(f"inferwatch engine: {exc}", file=sys.stderr)
        return 1
    print(f"vLLM {runtime.VLLM_VERSION} (CPU) serving {server.served_model_name} at {server.base_url} "
          f"(pid {server.proc.pid}, log {server.log_path}); stop with: inferwatch engine down --name {args.name}")
    return 0


def _down(args: argparse.Namespace, config) -> int:
    print("stopped" if down(args.name) else f"no engine named {args.name!r} is running")
    return 0


def _status(args: argparse.Namespace, config) -> int:
    state = read_state(args.name)
    print(json.dumps(state, indent=2) if state else f"no engine named {args.name!r} was started")
    return 0 if state and state.get("running") else 1
