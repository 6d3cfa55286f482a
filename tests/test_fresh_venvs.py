"""The built wheel in fresh venvs, as a user installs it: bare, and with each extra alone.

Everything runs from a temporary working directory with the venv's own `inferwatch`, so nothing
is read from the checkout: a module, a data file or a dependency the wheel lacks shows up here.
These need PyPI (pip's cache keeps them quick), hence the slow tier.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_packaging import REPO, shared_wheel, source_files

from inferwatch.lab.stack import free_port

pytestmark = pytest.mark.slow

EXTRAS = ("docker", "inject", "rules", "demo", "web", "dashboards")  # each installed alone in its own venv
# This machine's pip config lists local mirrors lacking some projects; pip warns about each. Not ours.
MACHINE_PIP_NOISE = re.compile(r"^WARNING: Location 'file://\S+' is ignored: it is neither a file nor a directory\.$")


def missing_extra(command: str, extra: str) -> str:
    return f"inferwatch: {command} needs the '{extra}' extra: pip install 'inferwatch[{extra}]'"


def our_lines(output: str) -> list[str]:
    """Output lines, less the machine's own pip noise."""
    return [line for line in output.splitlines() if line.strip() and not MACHINE_PIP_NOISE.match(line)]


def clean_env(bin_dir: Path | None = None) -> dict[str, str]:
    """The environment without this checkout's venv or config leaking into a child."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "INFERWATCH_CONFIG")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != Path(sys.executable).parent]
    env["PATH"] = os.pathsep.join([str(bin_dir), *path] if bin_dir else path)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@dataclass(frozen=True)
class Venv:
    root: Path
    extras: tuple[str, ...]
    install_output: str  # what `pip install -q` printed

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "inferwatch"), *args], cwd=cwd, env=clean_env(self.bin),
                              capture_output=True, text=True, timeout=timeout)

    def python(self, code: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "python"), "-c", code], cwd=cwd, env=clean_env(self.bin),
                              capture_output=True, text=True, timeout=60, check=True)

    def popen(self, *args: str, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen([str(self.bin / "inferwatch"), *args], cwd=cwd, env=clean_env(self.bin),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _pip(*args: str) -> str:
    """Run this checkout's pip quietly; return what it printed (it should print nothing)."""
    result = subprocess.run([sys.executable, "-m", "pip", *args, "-q"], capture_output=True, text=True,
                            timeout=600, env=clean_env())
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def _wheelhouse(root: Path, wheel: Path, extras: tuple[str, ...]) -> tuple[Path, str]:
    """The wheel and every dependency of the given extras, fetched from PyPI once."""
    return root, _pip("wheel", "--wheel-dir", str(root), f"{wheel}[{','.join(extras)}]")


def _create(root: Path, wheel: Path, extras: tuple[str, ...], house: concurrent.futures.Future) -> Venv:
    """`python -m venv` (no system site packages), then `pip install <wheel>[extras]` into it.

    The venv's own pip is not needed to use inferwatch, so this checkout's pip installs into it
    (`--python`), offline from the session's wheelhouse: same resolution, a fraction of the time.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True,
                   timeout=120, env=clean_env())
    requirement = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    folder, _ = house.result()
    output = _pip("--python", str(root / "bin" / "python"), "install", "--no-index", "--find-links", str(folder),
                  requirement)
    return Venv(root, extras, output)


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(EXTRAS) + 2, thread_name_prefix="venv")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> concurrent.futures.Future:
    wheel = shared_wheel(tmp_path_factory).path
    return _pool.submit(_wheelhouse, tmp_path_factory.mktemp("wheelhouse"), wheel, EXTRAS)


@pytest.fixture(scope="session")
def venvs(tmp_path_factory: pytest.TempPathFactory, wheelhouse) -> dict[tuple[str, ...], Venv]:
    """The bare venv and one per extra, created in parallel once per session."""
    wheel = shared_wheel(tmp_path_factory).path
    futures = {extras: _pool.submit(_create, tmp_path_factory.mktemp("venv-" + ("-".join(extras) or "bare")),
                                    wheel, extras, wheelhouse)
               for extras in [(), *((extra,) for extra in EXTRAS)]}
    return {extras: future.result() for extras, future in futures.items()}


@pytest.fixture(scope="session")
def bare(venvs) -> Venv:
    return venvs[()]


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def test_installs_print_nothing(venvs, wheelhouse) -> None:
    assert our_lines(wheelhouse.result()[1]) == [], "pip wheel <wheel>[every extra] (fetching from PyPI)"
    for extras, venv in venvs.items():
        assert our_lines(venv.install_output) == [], f"pip install of the wheel[{','.join(extras)}]"


# -- bare install ---------------------------------------------------------------------------

# Runs in the venv: every command path of the installed CLI, from its own parser.
COMMAND_PATHS = """
import argparse, json
from inferwatch.cli import build_parser
def walk(parser, path):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, [*path, name])
print(json.dumps(list(walk(build_parser(), []))))
"""


def test_bare_install_is_the_wheel_under_one_name(bare: Venv, cwd: Path) -> None:
    code = ("import importlib.util as u, inferwatch\n"
            "print(inferwatch.__file__)\n"
            "print([n for n in ('exporters', 'alerts', 'scaler', 'dashboards', 'recording_rules')"
            " if u.find_spec(n)])")
    origin, importable = bare.python(code, cwd).stdout.splitlines()
    assert Path(origin).is_relative_to(bare.root), origin
    assert importable == "[]"


def test_bare_install_help_of_every_command_and_action(bare: Venv, cwd: Path) -> None:
    paths = json.loads(bare.python(COMMAND_PATHS, cwd).stdout)
    assert {"inject", "demo", "gpu-exporter"} <= {p[0] for p in paths if p}
    assert ["rules", "render"] in paths and ["engine", "status"] in paths, "sub-actions are walked"

    def help_of(path: list[str]) -> tuple[list[str], subprocess.CompletedProcess]:
        return path, bare.run(*path, "--help", cwd=cwd)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for path, result in pool.map(help_of, paths):
            shown = " ".join(["inferwatch", *path, "--help"])
            assert result.returncode == 0, f"{shown}: {result.stderr}"
            assert result.stdout.startswith("usage: inferwatch"), shown
            assert result.stderr == "", f"{shown}: {result.stderr}"


TWO_MODELS = """\
slo:
  defaults: {ttft_seconds: 1.0, itl_seconds: 0.1, ttft_sla_seconds: 2.0, itl_sla_seconds: 0.2}
  models:
    alpha: {ttft_sla_seconds: 4.25}
    beta: {ttft_sla_seconds: 1.75}
"""
SLA_VALUES = ("4.25", "1.75")


@pytest.mark.parametrize(("args", "command", "extra"), [
    (["inject", "--url", "http://127.0.0.1:9"], "inject", "inject"),
    (["demo", "--no-engine", "--duration", "1"], "demo", "demo"),
    (["rules", "render", "-c", "two-models.yaml", "--out", "out"], "rules", "rules"),
    (["-c", "two-models.yaml", "rules", "render", "--out", "out"], "rules", "rules"),
    (["dashboards", "build", "--out", "out"], "dashboards", "dashboards"),
    (["dashboards", "preview", "--prometheus", "http://127.0.0.1:9", "--out", "out"], "dashboards", "preview"),
], ids=["inject", "demo", "rules-render-c-after", "rules-render-c-before", "dashboards-build", "dashboards-preview"])
def test_bare_install_names_the_missing_extra(bare: Venv, cwd: Path, args: list[str], command: str,
                                              extra: str) -> None:
    (cwd / "two-models.yaml").write_text(TWO_MODELS)
    result = bare.run(*args, cwd=cwd)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    # `rules render` may name itself as the command or as the action of `rules`.
    accepted = {missing_extra(command, extra), missing_extra(" ".join(args[:2]), extra)}
    assert len(lines) == 1 and lines[0] in accepted, result.stderr
    assert result.stdout == ""


# -- inject: a real load run against a small OpenAI-compatible server -----------------------

def test_inject_extra_runs_a_load(venvs, cwd: Path) -> None:
    from inferwatch.lab.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        result = venvs[("inject",)].run("inject", "--url", server.url, "--rate", "8", "--duration", "1.5",
                                        "--prompt-tokens", "8", "--output-tokens", "4", "--no-progress",
                                        "--json", "report.json", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((cwd / "report.json").read_text())
    planned = report["requests_planned"]
    assert planned > 0 and report["requests_ok"] == planned == server.requests["POST /v1/completions"]
    assert report["errors"] == {}
    assert f"requests: {planned} ok of {planned} planned" in result.stdout
    assert report["ttft_seconds"]["p50"] is not None


# -- rules: per-model SLAs rendered from the packaged mixin ---------------------------------

def _rule_text(out: Path) -> str:
    files = sorted(p for folder in ("alerts", "recording_rules") for p in (out / folder).rglob("*.y*ml"))
    assert files, f"no rule files under {out}/alerts or {out}/recording_rules"
    for path in files:
        assert yaml.safe_load(path.read_text())["groups"], path
    return "\n".join(path.read_text() for path in files)


def test_rules_extra_renders_per_model_slas(venvs, cwd: Path) -> None:
    committed = (REPO / "alerts" / "inferwatch.alerts.yaml").read_text() + (
        REPO / "recording_rules" / "inferwatch.rules.yaml").read_text()
    assert not any(re.search(rf"(?<![\d.]){re.escape(v)}(?!\d)", committed) for v in SLA_VALUES), "unusual values"
    (cwd / "two-models.yaml").write_text(TWO_MODELS)
    venv = venvs[("rules",)]
    after = venv.run("rules", "render", "-c", "two-models.yaml", "--out", "after", cwd=cwd)
    assert after.returncode == 0, after.stdout + after.stderr
    before = venv.run("-c", "two-models.yaml", "rules", "render", "--out", "before", cwd=cwd)
    assert before.returncode == 0, before.stdout + before.stderr
    text = _rule_text(cwd / "after")
    for value in (*SLA_VALUES, "alpha", "beta"):
        assert re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text), f"{value} not in the rendered rules"
    assert _rule_text(cwd / "before") == text, "-c before or after the subcommand: the same rules"


# -- dashboards: the JSON ships built; the extra re-builds exactly it ---------------------------

def test_bare_install_lists_the_shipped_dashboards(bare: Venv, cwd: Path) -> None:
    result = bare.run("dashboards", "list", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == sorted(
        p.name for p in (REPO / "dashboards").glob("inferwatch-*.json"))


def test_dashboards_extra_builds_what_ships(venvs, cwd: Path) -> None:
    result = venvs[("dashboards",)].run("dashboards", "build", "--out", "built", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    for shipped in [*(REPO / "dashboards").glob("inferwatch-*.json"), REPO / "dashboards" / "dashboards.libsonnet"]:
        assert (cwd / "built" / shipped.name).read_text() == shipped.read_text(), shipped.name


# -- docker: container names through the real Docker SDK ------------------------------------

CONTAINER_ID = "3f" * 32
CONTAINER_NAME = "vllm-0"


class FakeDockerDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Enough of the Engine API on a unix socket for the SDK: /version, /_ping, /containers/<id>/json."""

    daemon_threads = True

    def __init__(self, path: Path, containers: dict[str, str]):
        self.containers, self.requests = containers, []
        super().__init__(str(path), _DockerHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _DockerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the SDK keeps its connection open
    server: FakeDockerDaemon

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = re.sub(r"^/v[\d.]+", "", self.path.split("?")[0])
        self.server.requests.append(path)
        match = re.fullmatch(r"/containers/([^/]+)/json", path)
        if path == "/version":
            self._json(200, {"ApiVersion": "1.43", "MinAPIVersion": "1.12", "Version": "24.0.7", "Os": "linux"})
        elif path == "/_ping":
            self._send(200, b"OK", "text/plain")
        elif match and match.group(1) in self.server.containers:
            cid = match.group(1)
            self._json(200, {"Id": cid, "Name": "/" + self.server.containers[cid], "State": {"Running": True}})
        else:
            self._json(404, {"message": f"No such container: {path}"})

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def docker_host(tmp_path: Path) -> Iterator[tuple[Path, Path, FakeDockerDaemon]]:
    """(proc root, socket path, daemon): PID 4242 of the h100x2 scenario runs in a docker container."""
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(f"0::/system.slice/docker-{CONTAINER_ID}.scope\n")
    folder = Path(tempfile.mkdtemp(prefix="iw-docker-"))  # unix socket paths are short
    daemon = FakeDockerDaemon(folder / "docker.sock", {CONTAINER_ID: CONTAINER_NAME})
    try:
        yield proc, folder / "docker.sock", daemon
    finally:
        daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


def samples(url: str, name: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def serve_and_scrape(venv: Venv, args: list[str], cwd: Path, port: int, name: str,
                     until=lambda found: bool(found), timeout: float = 30) -> list[dict[str, str]]:
    """Run an exporter command, scrape `name` until `until(samples)` holds, stop it with SIGTERM."""
    process = venv.popen(*args, cwd=cwd)
    found: list[dict[str, str]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.poll() is None, f"exited {process.returncode}: {process.stdout.read()}"
            try:
                found = samples(f"http://127.0.0.1:{port}/metrics", name)
            except OSError:
                found = []
            if until(found):
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert until(found), f"{name} on :{port}: {found}\n{output}"
    return found


def gpu_config(cwd: Path, proc: Path, socket_path: Path) -> tuple[Path, int]:
    port = free_port()
    config = {"gpu_exporter": {"listen_address": "127.0.0.1", "port": port, "proc_root": str(proc),
                               "docker_socket": str(socket_path), "xid_events": False}}
    (cwd / "gpu.yaml").write_text(yaml.safe_dump(config))
    return cwd / "gpu.yaml", port


def test_docker_extra_names_gpu_containers(venvs, cwd: Path, docker_host) -> None:
    proc, socket_path, daemon = docker_host
    config, port = gpu_config(cwd, proc, socket_path)
    found = serve_and_scrape(venvs[("docker",)], ["-c", str(config), "gpu-exporter", "--simulate", "h100x2"], cwd,
                             port, "inferwatch_gpu_container_memory_used_bytes",
                             until=lambda s: any(x.get("container_name") == CONTAINER_NAME for x in s))
    assert {(s["container_id"], s["container_name"]) for s in found} == {(CONTAINER_ID, CONTAINER_NAME)}
    assert {s["gpu"] for s in found} == {"0", "1"}
    assert "/version" in daemon.requests and f"/containers/{CONTAINER_ID}/json" in daemon.requests


def test_without_the_docker_extra_containers_keep_their_ids(bare: Venv, cwd: Path, docker_host) -> None:
    proc, socket_path, daemon = docker_host
    config, port = gpu_config(cwd, proc, socket_path)
    found = serve_and_scrape(bare, ["-c", str(config), "gpu-exporter", "--simulate", "h100x2"], cwd, port,
                             "inferwatch_gpu_container_memory_used_bytes")
    assert {(s["container_id"], s["container_name"]) for s in found} == {(CONTAINER_ID, "")}
    assert daemon.requests == [], "no SDK, no daemon calls"


# -- web: basic-auth users in a web-config file need bcrypt ---------------------------------

def web_config(cwd: Path) -> tuple[Path, int]:
    """A GPU exporter config whose /metrics needs basic auth (user "prometheus", password "pw")."""
    import bcrypt

    port = free_port()
    web = cwd / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4)).decode()}'\n")
    config = {"gpu_exporter": {"listen_address": "127.0.0.1", "port": port, "xid_events": False,
                               "process_attribution": False, "web_config_file": str(web)}}
    (cwd / "gpu.yaml").write_text(yaml.safe_dump(config))
    return cwd / "gpu.yaml", port


def test_web_extra_serves_metrics_behind_basic_auth(venvs, cwd: Path) -> None:
    import base64

    config, port = web_config(cwd)
    process = venvs[("web",)].popen("-c", str(config), "gpu-exporter", "--simulate", "h100x2", cwd=cwd)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def answer(headers: dict[str, str]) -> int:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        good = {"Authorization": "Basic " + base64.b64encode(b"prometheus:pw").decode()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if answer(good) == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert answer(good) == 200
        assert answer({}) == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)


def test_bare_install_names_the_web_extra(bare: Venv, cwd: Path) -> None:
    config, _ = web_config(cwd)
    result = bare.run("-c", str(config), "gpu-exporter", "--simulate", "h100x2", cwd=cwd)
    assert result.returncode == 2
    assert result.stderr == missing_extra("gpu-exporter", "web") + "\n"


# -- demo: the GPU-only demo stack with the installed Prometheus and Alertmanager -----------

def test_demo_extra_runs_the_demo_without_engine(venvs, cwd: Path) -> None:
    for binary in ("prometheus", "prometheus-alertmanager"):
        assert shutil.which(binary), f"{binary} is not installed: run scripts/setup.sh"
    result = venvs[("demo",)].run("--log-level", "warning", "demo", "--no-engine", "--duration", "1",
                                  "--workdir", str(cwd / "demo"), cwd=cwd, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s*GPUs up\s+2$", result.stdout, re.MULTILINE), result.stdout
    assert "stopped everything it started" in result.stdout


# -- scripts/setup.sh: quiet on a fresh checkout, loud when pip fails ------------------------

def test_setup_sh_prints_only_its_progress_lines(tmp_path: Path) -> None:
    for binary in ("prometheus", "prometheus-alertmanager"):
        assert shutil.which(binary), f"{binary} is not installed: run scripts/setup.sh"  # so apt is skipped
    checkout = tmp_path / "checkout"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split("\0")
    for path in {*filter(None, listed), *source_files()}:
        if (REPO / path).is_file():
            (checkout / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, checkout / path)

    def setup(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "scripts/setup.sh"], cwd=checkout, env={**clean_env(), **env},
                              capture_output=True, text=True, timeout=600)

    first = setup()
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines() == ["setup: creating .venv", "setup: installing inferwatch into .venv"]
    assert first.stderr == ""
    assert "Successfully installed" in (checkout / ".venv" / "pip-install.log").read_text()
    again = setup()
    assert (again.returncode, again.stdout, again.stderr) == (0, "", ""), "nothing left to do"
    # A failing install shows pip's log. Without an index, the build backend cannot be fetched.
    later = time.time() + 10
    os.utime(checkout / "pyproject.toml", (later, later))
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    failed = setup(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty))
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == ["setup: installing inferwatch into .venv"]
    assert "setup: failed: .venv/bin/pip install -e .[test]" in failed.stderr
    assert "ERROR:" in failed.stderr, "pip's own output is shown"

