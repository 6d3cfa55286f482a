"""The `inferwatch` command: one entry point, a subcommand per component."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from inferwatch import __version__
from inferwatch.config import ENV_VAR, ConfigError, InferwatchConfig, load_config

EXIT_CONFIG_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"inferwatch: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return args.run(args, config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch",
        description="Monitor and maintain LLMs served in production: exporters for GPUs and serving "
        "engines, adaptive alert rules, dashboards and a KEDA scaler for Prometheus stacks.",
    )
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    parser.add_argument("-c", "--config", help=f"path to inferwatch.yaml (default: ${ENV_VAR}, else built-in defaults)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    check = sub.add_parser("check-config", help="validate the config file and print the effective settings")
    check.set_defaults(run=_check_config)

    gpu = sub.add_parser("gpu-exporter", help="serve GPU metrics from NVML (dcgm-exporter parity)",
                         description="Serve GPU metrics from NVML on /metrics.")
    gpu.add_argument("--port", type=int, help="listen port (overrides gpu_exporter.port)")
    gpu.add_argument("--listen-address", help="listen address (overrides gpu_exporter.listen_address)")
    gpu.add_argument("--naming", choices=["inferwatch", "dcgm"], help="metric names: ours or dcgm-exporter's")
    gpu.add_argument("--simulate", metavar="SCENARIO",
                     help="use a simulated NVML scenario instead of the driver (demo/testing); "
                     "see `inferwatch gpu-scenarios`")
    gpu.set_defaults(run=_gpu_exporter)

    scenarios = sub.add_parser("gpu-scenarios", help="list the simulated GPU scenarios")
    scenarios.set_defaults(run=_gpu_scenarios)

    engine_exp = sub.add_parser("engine-exporter", help="probe serving endpoints: health, models, versions, "
                                "redundancy", description="Serve serving-engine health metrics on /metrics.")
    engine_exp.add_argument("--port", type=int, help="listen port (overrides engine_exporter.port)")
    engine_exp.add_argument("--listen-address", help="listen address (overrides engine_exporter.listen_address)")
    engine_exp.set_defaults(run=_engine_exporter)

    from inferwatch import rules
    from inferwatch.engine import control
    from inferwatch.inject import cli as inject_cli

    control.add_parser(sub)
    inject_cli.add_parser(sub)
    rules.add_parser(sub)

    demo = sub.add_parser("demo", help="run the local demo stack (vLLM, exporters, Prometheus, Alertmanager)",
                          description="Start the demo stack on loopback and keep it up until Ctrl-C.")
    demo.add_argument("--workdir", help="where configs, data and logs go (default: a new temp dir)")
    demo.add_argument("--duration", type=float, default=0,
                      help="stop after this many seconds (0 = until Ctrl-C)")
    demo.add_argument("--no-engine", action="store_true", help="skip vLLM and the engine exporter (GPU only)")
    demo.add_argument("--load-seconds", type=float, default=15, help="seconds of injected load (default 15)")
    demo.set_defaults(run=_demo)
    return parser


def _check_config(args: argparse.Namespace, config: InferwatchConfig) -> int:
    import dataclasses

    import yaml

    print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), end="")
    return 0


def _gpu_exporter(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.gpu import server

    cfg = config.gpu_exporter
    _override(cfg, args, "port", "listen_address", "naming", "simulate")
    return _serve(server.start, cfg)


def _engine_exporter(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.engine import server

    cfg = config.engine_exporter
    _override(cfg, args, "port", "listen_address")
    if not cfg.endpoints:
        print("inferwatch: engine_exporter.endpoints is empty: nothing to probe (see the example config)",
              file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return _serve(server.start, cfg)


def _override(cfg: object, args: argparse.Namespace, *keys: str) -> None:
    """Command-line flags win over the config file."""
    for key in keys:
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)


def _serve(start: Callable, cfg) -> int:
    """Start an exporter and serve until SIGINT/SIGTERM; bad settings and busy ports are clear errors."""
    try:
        running = start(cfg)
    except ValueError as exc:  # e.g. an unknown GPU scenario
        print(f"inferwatch: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except OSError as exc:
        print(f"inferwatch: cannot listen on {cfg.listen_address}:{cfg.port}: {exc.strerror}", file=sys.stderr)
        return 1
    wait_for_signal(running.stop)
    return 0


def _gpu_scenarios(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.gpu.simnvml import load_scenario, scenario_names

    for name in scenario_names():
        print(f"{name:18} {load_scenario(name).get('description', '')}")
    return 0


def _demo(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.demo import run_demo

    return run_demo(config, workdir=args.workdir, duration=args.duration, engine=not args.no_engine,
                    load_seconds=args.load_seconds)


def wait_for_signal(cleanup: Callable[[], None], timeout: float | None = None) -> None:
    """Block until SIGINT/SIGTERM (or `timeout`), then run `cleanup` once."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait(timeout)
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
