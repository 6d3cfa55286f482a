"""Manage a local vLLM CPU server (lab): its venv, a tiny random-weight model, the server process."""

from __future__ import annotations

import argparse
import json

from inferwatch.kit.commands import CommandError, add_actions

HELP = "run a real vLLM (CPU build) with a tiny local model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = add_actions(parser)
    up_p = add("up", "install if needed, start, wait until healthy", _up)
    up_p.add_argument("--name", default="default")
    up_p.add_argument("--port", type=int, default=8000)
    up_p.add_argument("--seed", type=int, default=0, help="tiny model seed (another seed = another version)")
    up_p.add_argument("--model-dir", help="serve this model directory instead of the tiny model")
    up_p.add_argument("--served-model-name", default="tiny-llama")
    up_p.add_argument("--max-num-seqs", type=int, help="batch size cap (small values make a queue form)")
    up_p.add_argument("--max-model-len", type=int, default=512)
    down_p = add("down", "stop the server and every process it started", _down)
    down_p.add_argument("--name", default="default")
    status_p = add("status", "print the server's state", _status)
    status_p.add_argument("--name", default="default")


def run(args: argparse.Namespace, config) -> int:
    return args.action(args, config)


def _up(args: argparse.Namespace, config) -> int:
    from inferwatch.lab.engine import control, runtime
    from inferwatch.lab.process import StackError

    try:
        server = control.up(args.name, args.port, args.seed, args.model_dir, args.served_model_name,
                            args.max_num_seqs, args.max_model_len, getattr(args, "config", None))
    except (runtime.EngineUnavailable, StackError) as exc:
        raise CommandError(f"engine: {exc}") from None
    print(f"vLLM {runtime.VLLM_VERSION} (CPU) serving {server.served_model_name} at {server.base_url} "
          f"(pid {server.pid}, log {server.log_path}); stop with: inferwatch engine down --name {args.name}")
    return 0


def _down(args: argparse.Namespace, config) -> int:
    from inferwatch.lab.engine import control

    print("stopped" if control.down(args.name) else f"no engine named {args.name!r} is running")
    return 0


def _status(args: argparse.Namespace, config) -> int:
    from inferwatch.lab.engine.server import read_state

    state = read_state(args.name)
    print(json.dumps(state, indent=2) if state else f"no engine named {args.name!r} was started")
    return 0 if state and state.get("running") else 1
