"""Receive Alertmanager's webhook and run the allow-listed remediation actions of the config.

Dry run unless `remediation.execute: true` or `--execute`: actions are rendered, logged and
audited, never run. See docs/remediation.md.
"""

from __future__ import annotations

import argparse

from inferwatch.config import InferwatchConfig, RemediationConfig
from inferwatch.kit.commands import (
    add_listen_arguments,
    checked_section,
    checking_reload,
    listen_overrides,
    serve_until_signal,
)

HELP = "receive Alertmanager's webhook (POST /v1/alerts) and run allow-listed remediation actions"
KEYS = ("bearer_token_file", "audit_log", "execute")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser, "remediation", 9841)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--execute", dest="execute", action="store_true", default=None,
                      help="run the actions (overrides remediation.execute)")
    mode.add_argument("--dry-run", dest="execute", action="store_false",
                      help="only log and audit what would run (overrides remediation.execute)")
    parser.add_argument("--audit-log", dest="audit_log", metavar="FILE",
                        help="append audit records here, JSON Lines (overrides remediation.audit_log)")
    parser.add_argument("--bearer-token-file", dest="bearer_token_file", metavar="FILE",
                        help="Alertmanager must send Authorization: Bearer <the token in FILE>")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.remediate import server

    cfg = configured(args, config)
    return serve_until_signal(lambda: server.start(cfg), cfg.listen_address, cfg.port,
                              checking_reload(args, "remediation", lambda c: configured(args, c)))


def configured(args: argparse.Namespace, config: InferwatchConfig) -> RemediationConfig:
    return checked_section(config.remediation, "remediation", listen_overrides(args, *KEYS))
