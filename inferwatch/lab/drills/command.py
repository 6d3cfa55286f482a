"""Run fire drills on a local stack: real faults, the shipped rules and routing, timed end to end."""

from __future__ import annotations

import argparse

from inferwatch.config import InferwatchConfig
from inferwatch.kit.commands import CommandError

HELP = "fire drills: inject real faults on a local stack and time alert, notification, action, resolution"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("drills", nargs="*", metavar="NAME", help="drills to run, or `all` (see --list)")
    parser.add_argument("--list", action="store_true", help="list the drills and exit")
    parser.add_argument("--workdir", help="where configs, data and logs go (default: a new temp dir)")
    parser.add_argument("--report", metavar="FILE", help="also write the timing table (markdown) here")


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    from inferwatch.lab.drills import catalog

    if args.list:
        for drill in catalog.DRILLS:
            print(f"{drill.name:20} lane {drill.lane:4} {drill.fault}")
        return 0
    if not args.drills:
        raise CommandError("name the drills to run, or `all` (inferwatch drill --list shows them)")
    try:
        drills = catalog.by_name(args.drills)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    from inferwatch.lab.drills.session import run_session

    return run_session(drills, args.workdir, args.report)
