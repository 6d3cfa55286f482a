"""List the simulated GPU scenarios `gpu-exporter --simulate` accepts."""

from __future__ import annotations

import argparse

HELP = "list the simulated GPU scenarios"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, config: object) -> int:
    from inferwatch.exporters.gpu.simnvml import load_scenario, scenario_names

    for name in scenario_names():
        print(f"{name:18} {load_scenario(name).get('description', '')}")
    return 0
