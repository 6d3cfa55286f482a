"""Probe LLM endpoints with golden prompts, blackbox_exporter style: GET /probe?target=...&module=...

Scheduled targets (probe_exporter.targets) are probed in the background and served on /metrics.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from inferwatch.config import ConfigError, InferwatchConfig, ProbeExporterConfig
from inferwatch.kit.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_listen_arguments,
    checked_section,
    listen_overrides,
    reload_section,
    serve_until_signal,
)

log = logging.getLogger(__name__)

HELP = "probe endpoints with golden prompts: quality, latency, served model (GET /probe)"
KEYS = ("modules_file", "timeout_offset_seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modules", dest="modules_file", metavar="FILE",
                        help="the probe modules file (overrides probe_exporter.modules_file; "
                        "see inferwatch/examples/probe-modules.yaml)")
    add_listen_arguments(parser, "probe_exporter", 9837)
    parser.add_argument("--timeout-offset", dest="timeout_offset_seconds", type=float, metavar="SECONDS",
                        help="subtracted from Prometheus' scrape timeout to get the probe deadline (default 0.5)")
    once = parser.add_argument_group("one-shot probe (debugging, CI gates)")
    once.add_argument("--once", action="store_true",
                      help="run one probe, print its metrics and exit: 0 if it succeeded, 1 if not")
    once.add_argument("--target", help="with --once: the endpoint's base URL (http://host:8000)")
    once.add_argument("--module", help="with --once: the module to run")
    once.add_argument("--debug", action="store_true", help="with --once: also print what happened to stderr")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (the `similar` embedder)
    from inferwatch.exporters.probe import server

    cfg = configured(args, config)
    modules = load_checked(cfg)
    if args.once:
        return once(args, cfg, modules)
    if args.target or args.module or args.debug:
        raise CommandError("--target, --module and --debug go with --once (else use GET /probe)", EXIT_USAGE)

    def reload(running: Any) -> None:
        from inferwatch.exporters.probe.collector import ProbeCollector, signals_blocked

        try:
            section = reload_section(args, running, lambda c: configured(args, c))
            if section is None:
                return
            reloaded = load_checked(section)
        except (ConfigError, CommandError) as exc:
            log.error("config reload failed, keeping the running config and modules: %s", exc)
            running.collector.self_metrics.config_ok = False
            return
        with signals_blocked():  # the old collector's closing timer is a thread too
            running.replace_collector(ProbeCollector(section, reloaded, previous=running.collector))

    return serve_until_signal(lambda: server.start(cfg, modules), cfg.listen_address, cfg.port, reload)


def configured(args: argparse.Namespace, config: InferwatchConfig) -> ProbeExporterConfig:
    """The probe_exporter section with the command line's overrides."""
    return checked_section(config.probe_exporter, "probe_exporter", listen_overrides(args, *KEYS))


def load_checked(cfg: ProbeExporterConfig) -> Any:
    """The modules file, validated, with every scheduled target's module in it (ConfigError / CommandError)."""
    from inferwatch.exporters.probe.modules import load_modules

    if not cfg.modules_file:
        raise CommandError("no probe modules file: pass --modules FILE or set probe_exporter.modules_file "
                           "(see inferwatch/examples/probe-modules.yaml)", EXIT_USAGE)
    modules = load_modules(cfg.modules_file)
    for i, target in enumerate(cfg.targets):
        if target.module not in modules.modules:
            known = ", ".join(sorted(modules.modules)) or "none"
            raise CommandError(f"probe_exporter.targets[{i}].module: unknown module {target.module!r} "
                               f"(modules in {cfg.modules_file}: {known})", EXIT_USAGE)
    return modules


def once(args: argparse.Namespace, cfg: ProbeExporterConfig, modules: Any) -> int:
    from prometheus_client.exposition import generate_latest

    from inferwatch.exporters.probe.collector import load_embedder_for
    from inferwatch.exporters.probe.metrics import Families, render_probe
    from inferwatch.exporters.probe.prober import probe
    from inferwatch.exporters.probe.server import BadRequest, check_params, debug_text

    if not args.target or not args.module:
        raise CommandError("--once needs --target URL and --module NAME", EXIT_USAGE)
    try:
        module, target = check_params(args.module, args.target, modules)
    except BadRequest as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    result = probe(args.module, module, target, module.timeout_seconds, load_embedder_for(modules))
    if args.debug:
        print(debug_text(result, target, module.timeout_seconds), file=sys.stderr, end="")
    sys.stdout.write(generate_latest(Families(render_probe(result))).decode())  # type: ignore[arg-type]
    return EXIT_OK if result.success else EXIT_FAILED
