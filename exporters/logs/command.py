"""Follow engine logs (files, Docker containers, stdin) and export their error classes as Prometheus series.

Each line is classified by the engine's rule table (exporters/logs/rules/<engine>.yaml plus your
`rules_files`); error lines are reduced to templates and the top ones served on /errors
(`inferwatch errors top`). Prompt and output text that engines log is recognised and never kept.
"""

from __future__ import annotations

import argparse

from inferwatch.config import InferwatchConfig, LogExporterConfig, LogSourceConfig
from inferwatch.kit.commands import (
    EXIT_USAGE,
    CommandError,
    add_listen_arguments,
    checked_section,
    checking_reload,
    listen_overrides,
    serve_until_signal,
)

HELP = "classify engine log lines (files, containers, stdin) into error-class series; rank recurring errors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser, "log_exporter", 9840)
    parser.add_argument("--file", action="append", default=[], metavar="[NAME=]PATH",
                        help="follow this log file (repeatable; NAME defaults to the file's stem)")
    parser.add_argument("--container", action="append", default=[], metavar="[NAME=]CONTAINER",
                        help="follow this Docker container's log (repeatable; needs the 'docker' extra)")
    parser.add_argument("--stdin", metavar="NAME", help="read one stream from stdin, e.g. `kubectl logs -f ... |`")
    parser.add_argument("--engine", default="vllm", choices=("vllm", "sglang", "tgi"),
                        help="rule set for the sources given on the command line (default vllm)")
    parser.add_argument("--rules", dest="rules_files", action="append", metavar="FILE",
                        help="extra rule file, tried before the shipped rules (repeatable)")
    parser.add_argument("--prometheus-url", dest="prometheus_url", metavar="URL",
                        help="read model versions (engine exporter) from here: flags errors new after a deploy")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.exporters.logs import server

    cfg = configured(args, config)
    if not cfg.sources:
        raise CommandError("no log sources: pass --file, --container or --stdin, or set log_exporter.sources",
                           EXIT_USAGE)
    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port,
                              checking_reload(args, "log_exporter", lambda c: configured(args, c)))


def configured(args: argparse.Namespace, config: InferwatchConfig) -> LogExporterConfig:
    overrides = listen_overrides(args, "prometheus_url", "rules_files")
    given = [_source(spec, "file", args.engine) for spec in args.file]
    given += [_source(spec, "container", args.engine) for spec in args.container]
    if args.stdin:
        given.append(LogSourceConfig(name=args.stdin, engine=args.engine, stdin=True))
    if given:
        overrides["sources"] = [*config.log_exporter.sources, *given]
    return checked_section(config.log_exporter, "log_exporter", overrides)


def _source(spec: str, kind: str, engine: str) -> LogSourceConfig:
    name, sep, target = spec.partition("=")
    if not sep:
        target = spec
        name = target.rsplit("/", 1)[-1].rsplit(".", 1)[0] if kind == "file" else target
    return LogSourceConfig(name=name, engine=engine, **{kind: target})
