"""The compose stack cannot run here (no Docker engine): check it structurally with the real tools."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from inferwatch.config import load_config

COMPOSE = Path(__file__).resolve().parent.parent / "compose"


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
