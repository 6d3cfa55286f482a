"""Import direction: production code never imports the lab or the simulator, and nothing forms a cycle.

Read from the source with `ast` (every import statement counts, lazy ones inside functions too),
so a stray import fails here even on a path no other test executes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import inferwatch

PACKAGE = Path(inferwatch.__file__).resolve().parent
REPO = PACKAGE.parent
# import name -> source folder (the same map setup.py installs)
ROOTS = {"inferwatch": REPO / "inferwatch", "inferwatch.exporters": REPO / "exporters",
         "inferwatch.scaler": REPO / "scaler", "inferwatch.dashboards": REPO / "dashboards",
         "inferwatch.alerts": REPO / "alerts", "inferwatch.recording_rules": REPO / "recording_rules"}
LAB = "inferwatch.lab"
SIMULATOR = "inferwatch.exporters.gpu.simnvml"
# The only production modules allowed to reach the simulator, each lazily and only on request.
SIMULATOR_GATES = {"inferwatch.exporters.gpu.nvml", "inferwatch.exporters.gpu.list_scenarios"}
# `inject --fault endpoint-outage` drives an inferwatch-managed (lab) engine: imported only for that drill.
LAB_GATES = {"inferwatch.inject.command": {"inferwatch.lab.engine", "inferwatch.lab.engine.control"}}
# The CLI names the lab's commands by module path; parsing loads only these argument modules.
LAB_COMMAND_MODULES = {"inferwatch.lab", "inferwatch.lab.demo_command", "inferwatch.lab.engine",
                       "inferwatch.lab.engine.command", "inferwatch.lab.drills", "inferwatch.lab.drills.command"}


def modules() -> dict[str, Path]:
    found = {}
    for name, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([name, *parts])] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    """Every inferwatch module `path` imports, anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: climb from the module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.add(base)
            out |= {f"{base}.{alias.name}" for alias in node.names}
    known = modules()
    return {name for name in out if name in known and name != module}


GRAPH = {name: imports_of(path, name) for name, path in modules().items()}
PRODUCTION = sorted(name for name in GRAPH if not name.startswith(LAB))


def test_the_graph_is_not_empty() -> None:
    assert "inferwatch.exporters.gpu.collector" in GRAPH and "inferwatch.lab.demo" in GRAPH
    assert "inferwatch.kit.families" in GRAPH["inferwatch.exporters.gpu.metrics"], "imports are resolved"


@pytest.mark.parametrize("module", PRODUCTION)
def test_production_code_never_imports_the_lab(module: str) -> None:
    lab = {name for name in GRAPH[module] if name.startswith(LAB)} - LAB_GATES.get(module, set())
    assert not lab, f"{module} imports lab code {sorted(lab)}: move the shared part out of inferwatch/lab"


def test_only_the_gates_reach_the_simulator() -> None:
    importers = {name for name, imported in GRAPH.items() if SIMULATOR in imported and not name.startswith(LAB)}
    assert importers == SIMULATOR_GATES


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for child in sorted(GRAPH[node]):
            if state.get(child) == 1:
                cycles.append([*stack[stack.index(child):], child])
            elif child not in state:
                visit(child, [*stack, child])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_production_path_never_loads_the_lab_or_the_simulator() -> None:
    """At run time too: the CLI, every exporter and its real NVML path load neither."""
    code = (
        "import sys\n"
        "from inferwatch import cli\n"
        "cli.build_parser()\n"
        "from inferwatch.config import GpuExporterConfig, EngineExporterConfig\n"
        "from inferwatch.exporters.gpu.collector import GpuCollector\n"
        "from inferwatch.exporters.engine.collector import EngineCollector\n"
        "collector = GpuCollector(GpuExporterConfig(xid_events=False))\n"
        "EngineCollector(EngineExporterConfig())\n"
        f"allowed = {sorted(LAB_COMMAND_MODULES)!r}\n"
        "heavy = ('aiohttp', '_jsonnet', 'docker')\n"
        "loaded = sorted(m for m in sys.modules if (m.startswith('inferwatch.lab') and m not in allowed)\n"
        "                or m.split('.')[0] in heavy or m == 'inferwatch.exporters.gpu.simnvml')\n"
        "print(collector.nv.__name__, loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split(" ", 1) == ["pynvml", "[]\n"], result.stdout
