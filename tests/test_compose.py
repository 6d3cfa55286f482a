"""The compose stack without a Docker engine: its files checked with the real tools, its image emulated.

The image is built here the way compose/Dockerfile builds it (its COPY and pip steps, with the
image's root mapped to a folder and a fresh venv for its Python), and each service built from it
runs its compose `command` from that install.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml
from test_packaging import BUILD_INPUTS, SOURCE_FOLDERS

from inferwatch.config import load_config

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "compose"


def test_compose_file_references_existing_files() -> None:
    spec = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    assert set(spec["services"]) >= {"gpu-exporter", "engine-exporter", "vllm", "prometheus", "alertmanager"}
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):  # repo files; ${...} host paths are the user's
                assert (COMPOSE / source).exists(), f"{name}: {source} missing"
        build = service.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).exists()
    assert spec["services"]["gpu-exporter"]["pid"] == "host", "PID -> container attribution needs host PIDs"


def test_compose_configs_pass_the_real_checkers() -> None:
    for command in (["promtool", "check", "config", str(COMPOSE / "prometheus.yml")],
                    ["amtool", "check-config", str(COMPOSE.parent / "alerts" / "alertmanager" / "alertmanager.yml")]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_compose_inferwatch_config_is_valid() -> None:
    config = load_config(COMPOSE / "inferwatch.yaml")
    assert config.gpu_exporter.port == 9835
    assert [e.base_url for e in config.engine_exporter.endpoints] == ["http://vllm:8000"]


def test_scrape_targets_match_services() -> None:
    spec = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in spec["services"], target
            published = [p.split(":")[-1] for p in spec["services"][host].get("ports", [])]
            assert port in published, target


# -- the image: compose/Dockerfile --------------------------------------------------------------

DOCKERFILE = COMPOSE / "Dockerfile"
INSTRUCTIONS = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "ADD", "RUN", "ENTRYPOINT", "CMD", "LABEL", "USER", "EXPOSE",
                "HEALTHCHECK", "STOPSIGNAL", "VOLUME", "SHELL", "ONBUILD"}


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for keyword, args in self.steps if keyword == instruction]

    def workdir(self) -> PurePosixPath:
        return PurePosixPath("/", *self.all("WORKDIR"))  # each WORKDIR is relative to the previous one

    def env(self) -> dict[str, str]:
        return dict(word.split("=", 1) for env in self.all("ENV") for word in shlex.split(env))

    def runs(self) -> list[tuple[list[str], list[list[str]]]]:
        """Each RUN as (its --options, its commands split at && and ;)."""
        out = []
        for run in self.all("RUN"):
            words = shlex.split(run)
            options = []
            while words and words[0].startswith("--"):
                options.append(words.pop(0))
            commands: list[list[str]] = [[]]
            for word in words:
                if word in ("&&", ";"):
                    commands.append([])
                else:
                    commands[-1].append(word)
            out.append((options, [c for c in commands if c]))
        return out

    def pip_commands(self) -> list[list[str]]:
        """The arguments of the `pip ...` commands its RUN steps run."""
        return [command[command.index("pip") + 1:] for _, commands in self.runs() for command in commands
                if command[:1] == ["pip"] or command[:3] == ["python", "-m", "pip"]]


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        assert keyword in INSTRUCTIONS, f"unknown Dockerfile instruction: {line}"
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].steps.append((keyword, " ".join(args.split())))
    return stages


def requested_extras(pip_args: list[str]) -> set[str]:
    """The extras of the one project requirement (`.[x]` or `inferwatch[x,y]`) of a pip command."""
    projects = [m for a in pip_args if (m := re.fullmatch(r"(?:\.|inferwatch)(?:\[([\w,-]*)\])?", a))]
    assert len(projects) == 1, f"pip {' '.join(pip_args)}: expected one inferwatch requirement"
    return set(filter(None, (projects[0].group(1) or "").split(",")))


def image_services() -> dict[str, dict]:
    services = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]
    return {name: s for name, s in services.items()
            if s.get("build") and (COMPOSE / s["build"]["context"] / s["build"]["dockerfile"]).resolve() == DOCKERFILE}


def build_context() -> Path:
    contexts = {(COMPOSE / s["build"]["context"]).resolve() for s in image_services().values()}
    (context,) = contexts
    return context


def test_dockerfile_is_well_formed_and_installs_what_its_services_run() -> None:
    text = DOCKERFILE.read_text()
    stages = parse_dockerfile(text)
    names = [s.name for s in stages]
    final = stages[-1]
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["inferwatch"]
    json.loads(final.all("CMD")[-1])
    context = build_context()
    for index, stage in enumerate(stages):
        for copy in stage.all("COPY") + stage.all("RUN"):
            for reference in re.findall(r"(?:--from=|from=)([\w.-]+)", copy):
                assert reference in names[:index], f"{reference!r} is not an earlier stage"
            if "--mount" in copy:
                assert text.startswith("# syntax=docker/dockerfile:1"), "RUN --mount needs the dockerfile:1 syntax"
    # The wheel stage copies everything building the wheel reads, from the repository root.
    builders = [s for s in stages if any(c[0] == "wheel" for c in s.pip_commands())]
    assert len(builders) == 1, "one stage builds the wheel (pip wheel), from the package sources"
    builder = builders[0]
    copied = set()
    for copy in builder.all("COPY"):
        assert not copy.startswith("--from"), copy
        *sources, _ = copy.split()
        for source in sources:
            assert (context / source).exists(), f"COPY {source}: not in the build context"
            copied.add(source.rstrip("/"))
    needed = {*SOURCE_FOLDERS, *BUILD_INPUTS}
    assert copied >= needed, f"not copied into the wheels stage: {sorted(needed - copied)}"
    # What the final stage installs: the package with the extras its services need.
    (install,) = [c for c in final.pip_commands() if c[0] == "install"]
    (wheel,) = [c for c in builder.pip_commands() if c[0] == "wheel"]
    extras = requested_extras(install)
    assert extras == requested_extras(wheel), "the wheels stage builds what the final stage installs"
    offered = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(offered), f"unknown extras: {extras - set(offered)}"
    mounts_docker_socket = any("docker.sock" in v for s in image_services().values() for v in s.get("volumes", []))
    assert mounts_docker_socket and "docker" in extras, "container names need the docker SDK in the image"


def emulate_image(workdir: Path) -> Path:
    """Build the Dockerfile's install without Docker: its COPY, bind mounts and pip steps, / mapped to a folder.

    Returns the bin/ folder the image's `inferwatch` lives in (a fresh venv stands for the image's Python).
    Commands other than pip (there are none today) are the image's own business and are skipped.
    """
    root = workdir / "fs"  # the image's filesystem, one for all stages (their paths do not collide)

    def host(path: str, cwd: PurePosixPath) -> Path:
        return root / (cwd / path).relative_to("/")

    def copy(source: Path, target: Path, into: bool) -> None:
        if source.is_dir():  # a folder's contents go to the target, as Docker copies them
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        else:
            target = target / source.name if into else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    context = build_context()
    venv = workdir / "image"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    for stage in parse_dockerfile(DOCKERFILE.read_text()):
        cwd = stage.workdir()
        host(".", cwd).mkdir(parents=True, exist_ok=True)
        for step in stage.all("COPY"):
            *sources, dest = step.split()
            from_stage = sources[0].startswith("--from=")
            sources = [s for s in sources if not s.startswith("--")]
            for source in sources:
                origin = host(source, cwd) if from_stage else context / source
                if origin != host(dest, cwd):
                    copy(origin, host(dest, cwd), into=dest.endswith("/") or len(sources) > 1)
        env = {**os.environ, **stage.env()}
        for options, commands in stage.runs():
            for option in options:  # --mount=type=bind,from=STAGE,source=S,target=T: T shows S
                if not option.startswith("--mount="):
                    continue
                mount = dict(part.split("=", 1) for part in option.removeprefix("--mount=").split(","))
                if mount.get("type") == "bind":
                    source, target = host(mount["source"], cwd), host(mount["target"], cwd)
                    if source != target:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.symlink_to(source)
            for command in commands:
                if not (command[:1] == ["pip"] or command[:3] == ["python", "-m", "pip"]):
                    continue
                # Absolute paths move under the emulated root; --no-cache-dir only keeps layers small.
                args = [str(host(a, cwd)) if a.startswith("/") else a
                        for a in command[command.index("pip") + 1:] if a != "--no-cache-dir"]
                python = ["--python", str(venv / "bin" / "python")] if args[0] == "install" else []
                result = subprocess.run([sys.executable, "-m", "pip", *python, *args, "-q"], cwd=host(".", cwd),
                                        env=env, capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, f"pip {' '.join(command)}:\n{result.stdout}{result.stderr}"
    return venv / "bin"


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default}, from this environment."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: os.environ.get(m.group(1)) or m.group(2) or "", value)


def metric_samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def no_gpu_here() -> bool:
    return not Path("/dev/nvidiactl").exists()


SERVICE_CHECKS = {
    # The GPU exporter without a GPU (or driver) says so and keeps serving.
    "gpu-exporter": ("inferwatch_gpu_exporter_nvml_up", lambda s: [v for _, v in s] == [0.0] or not no_gpu_here()),
    # The engine exporter without its vLLM reports the endpoint down.
    "engine-exporter": ("inferwatch_engine_up", lambda s: [(x["endpoint"], v) for x, v in s] == [("vllm-0", 0.0)]),
    # The probe exporter loads the stack's two modules; /probe answers when Prometheus asks.
    "probe-exporter": ("inferwatch_probe_exporter_modules", lambda s: [v for _, v in s] == [2.0]),
    # The feedback server serves its refusal counters (all zero) from the first scrape.
    "feedback-server": ("inferwatch_feedback_rejected_total", lambda s: len(s) == 6 and not any(v for _, v in s)),
    # The drift exporter without its Prometheus reports it unreachable and keeps serving.
    "drift-exporter": ("inferwatch_drift_prometheus_up", lambda s: [v for _, v in s] == [0.0]),
    # The scaler serves its own series before KEDA's first call (and with no Prometheus to ask).
    "scaler": ("inferwatch_scaler_tracked_objects", lambda s: [v for _, v in s] == [0.0]),
}
# Services whose /metrics is not on --port (the scaler's --port is gRPC).
METRICS_PORT_FLAGS = {"scaler": "--metrics-port"}


@pytest.fixture(scope="module")
def image_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return emulate_image(tmp_path_factory.mktemp("image"))


def test_every_image_service_has_a_check() -> None:
    assert set(image_services()) == set(SERVICE_CHECKS), "a service built from the Dockerfile needs a check here"


def command_line(name: str, service: dict, bin_dir: Path, port: int, scratch: Path) -> list[str]:
    """The service's command under the image's ENTRYPOINT, mounted files mapped back to the repository
    and named volumes to folders under `scratch`; its /metrics on `port`."""
    from inferwatch.lab.stack import free_port

    entrypoint = json.loads(parse_dockerfile(DOCKERFILE.read_text())[-1].all("ENTRYPOINT")[-1])
    mounts = {}  # container path -> the repository file compose mounts there
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = str((COMPOSE / source).resolve())
        elif not source.startswith("/"):  # a named volume
            mounts[target] = str(scratch / source)
    command = [mounts.get(arg, arg) for arg in service["command"]]
    flag = METRICS_PORT_FLAGS.get(name, "--port")
    ports = [flag, str(port)] + (["--port", str(free_port())] if flag != "--port" else [])
    return [str(bin_dir / entrypoint[0]), *entrypoint[1:], *command, *ports, "--listen-address", "127.0.0.1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SERVICE_CHECKS))
def test_compose_service_runs_from_the_image_install(name: str, image_bin: Path, tmp_path: Path) -> None:
    from inferwatch.lab.stack import free_port, wait_until

    service = image_services()[name]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "INFERWATCH_CONFIG")}
    env.update({k: interpolate(str(v)) for k, v in service.get("environment", {}).items()})
    process = subprocess.Popen(command_line(name, service, image_bin, port, tmp_path), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metric, healthy = SERVICE_CHECKS[name]

    def reported() -> list | None:
        assert process.poll() is None, f"{name} exited {process.returncode}: {process.stdout.read()}"
        try:
            return metric_samples(f"http://127.0.0.1:{port}/metrics").get(metric)
        except OSError:
            return None

    try:
        found = wait_until(reported, 30, what=f"{name} serving {metric}")
        assert healthy(found), f"{name}: {metric} = {found}"
        assert process.poll() is None, f"{name} keeps serving"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, f"{name}: {output}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_nothing_is_published_beyond_loopback() -> None:
    spec = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    for name, service in spec["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
