"""The `inferwatch` command: one entry point, one module per subcommand, loaded on demand.

Each command module follows `inferwatch.kit.commands` (HELP, add_arguments, run). Parsing imports
only those light modules; a command's heavy dependencies are imported when it runs, and a
missing optional dependency is reported as the extra to install. The lab's commands (`engine`,
`demo`) are named here by module path; only their argument definitions load until they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from inferwatch import __version__
from inferwatch.config import ConfigError, load_config
from inferwatch.kit import sentry
from inferwatch.kit.commands import EXIT_USAGE, CommandError, global_flags
from inferwatch.kit.extras import EXTRAS, MissingExtra, require
from inferwatch.kit.logformat import configure_logging


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # has HELP, add_arguments(parser), run(args, config)
    extra: str | None = None  # needed by every use of the command


COMMANDS = (
    Command("check-config", "inferwatch.check_config"),
    Command("gpu-exporter", "inferwatch.exporters.gpu.command"),
    Command("gpu-scenarios", "inferwatch.exporters.gpu.list_scenarios"),
    Command("engine-exporter", "inferwatch.exporters.engine.command"),
    Command("probe-exporter", "inferwatch.exporters.probe.command"),
    Command("feedback-server", "inferwatch.exporters.feedback.command"),
    Command("feedback", "inferwatch.exporters.feedback.export_command"),
    Command("drift-exporter", "inferwatch.exporters.drift.command", extra="drift"),
    Command("drift", "inferwatch.exporters.drift.reference_command", extra="drift"),
    Command("log-exporter", "inferwatch.exporters.logs.command"),
    Command("errors", "inferwatch.exporters.logs.errors_command"),
    Command("remediate", "inferwatch.remediate.command"),
    Command("scaler", "inferwatch.scaler.command", extra="scaler"),
    Command("versions", "inferwatch.versions_command"),
    Command("recommend", "inferwatch.recommend.command"),
    Command("inject", "inferwatch.inject.command", extra="inject"),
    Command("rules", "inferwatch.rules"),
    Command("dashboards", "inferwatch.dashboards.command"),
    Command("engine", "inferwatch.lab.engine.command"),
    Command("demo", "inferwatch.lab.demo_command", extra="demo"),
    Command("drill", "inferwatch.lab.drills.command", extra="inject"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch", parents=[global_flags()],
        description="Monitor and maintain LLMs served in production: exporters for GPUs and serving "
        "engines, adaptive alert rules, dashboards and a KEDA scaler for Prometheus stacks.",
    )
    parser.add_argument("--version", action="version", version=f"inferwatch {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        module = importlib.import_module(command.module)
        description = module.__doc__.strip().splitlines()[0] if module.__doc__ else module.HELP
        child = sub.add_parser(command.name, help=module.HELP, description=description, parents=[global_flags()])
        child.set_defaults(run=module.run, command=command)
        module.add_arguments(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = args.command.name
    level, flag_format = getattr(args, "log_level", "info"), getattr(args, "log_format", None)
    configure_logging(level, flag_format or "text", name)  # the config's format is known once it loads
    try:
        if args.command.extra:
            require(args.command.extra)
        config = load_config(getattr(args, "config", None))
        log_format = flag_format or config.logging.format
        if log_format != (flag_format or "text"):
            configure_logging(level, log_format, name)
        sentry.init(name)
        return args.run(args, config)
    except ConfigError as exc:
        return _fail(f"config error: {exc}", EXIT_USAGE)
    except MissingExtra as exc:
        return _fail(exc.message(name), EXIT_USAGE)
    except ModuleNotFoundError as exc:  # an optional import deeper down
        extra = next((e for e, modules in EXTRAS.items() if exc.name in modules and e != "demo"), None)
        if extra is None:
            raise
        return _fail(MissingExtra(extra).message(name), EXIT_USAGE)
    except CommandError as exc:
        return _fail(str(exc), exc.code)


def _fail(message: str, code: int) -> int:
    print(f"inferwatch: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
