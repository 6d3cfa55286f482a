"""Validate inferwatch.yaml and print the effective settings (defaults filled in)."""

from __future__ import annotations

import argparse
import dataclasses

from inferwatch.config import InferwatchConfig

HELP = "validate the config file and print the effective settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: InferwatchConfig) -> int:
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), end="")
    return 0
