"""`inferwatch remediate` against a real Alertmanager: webhook in, real commands, HTTP and (fake) kubectl out.

Idempotency, refusals and argv injection by direct POSTs; rate limit and cool-down on the pure policy
with a hand-driven clock; config mistakes through the real loader (`file:line: key: message`).
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.config import ConfigError, load_config, parse_config
from inferwatch.kit.exporter import Exporter
from inferwatch.lab.stack import Alertmanager, wait_until
from inferwatch.remediate import server
from inferwatch.remediate.policy import Limits, Policy, idempotency_key

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token"
RECORDER = "import json, sys\nwith open({path!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"


def fake_program(path: Path, records: Path) -> Path:
    """An executable that appends its argv (as a JSON line) to `records`: a stand-in for kubectl."""
    path.write_text(f"#!{sys.executable}\n" + RECORDER.format(path=str(records)))
    path.chmod(0o755)
    return path


def lines(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP target that records (method, path, headers, body) of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append(("POST", self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    target = Recorder()
    yield target
    target.shutdown()
    target.server_close()


def remediation(tmp_path: Path, actions: list[dict], **settings: Any):
    """The `remediation` section through the real loader (so every check runs)."""
    section = {"listen_address": "127.0.0.1", "port": 0, "actions": actions, **settings}
    path = tmp_path / f"remediation-{len(list(tmp_path.glob('remediation-*')))}.yaml"
    path.write_text(yaml.safe_dump({"remediation": section}, sort_keys=False))
    return load_config(path).remediation


class Receivers:
    def __init__(self) -> None:
        self.running: list[Exporter] = []

    def start(self, config) -> Exporter:
        exporter = server.start(config)
        self.running.append(exporter)
        return exporter


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started = Receivers()
    yield started
    for exporter in started.running:
        exporter.stop()


def alerts_url(exporter: Exporter) -> str:
    return exporter.url.replace("/metrics", "/v1/alerts")


def post(exporter: Exporter, body: bytes | dict, token: str | None = TOKEN) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(alerts_url(exporter), data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def metric(exporter: Exporter, name: str, **labels: str) -> float:
    with urllib.request.urlopen(exporter.url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} not exported")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook(*alerts: dict, status: str = "firing") -> dict:
    return {"version": "4", "groupKey": '{}:{alertname="LLMEngineDown"}', "status": status, "receiver": "remediate",
            "groupLabels": {"alertname": "LLMEngineDown"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://alertmanager", "truncatedAlerts": 0, "alerts": list(alerts)}


def alert(fingerprint: str = "fp1", status: str = "firing", **labels: str) -> dict:
    return {"status": status, "labels": {"alertname": "LLMEngineDown", "role": "primary", "model_name": "m1", **labels},
            "annotations": {"summary": "An LLM serving endpoint is down."}, "startsAt": "2025-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}


def command_action(records: Path, **extra: Any) -> dict:
    return {"name": "note", "kind": "command", "alerts": ["LLMEngineDown"], "matchers": {"role": "primary"},
            "argv": [sys.executable, "-c", RECORDER.format(path=str(records)), "{labels.model_name}", "{status}"],
            "cooldown_seconds": 0, **extra}


def kube_actions(kubectl: Path) -> list[dict]:
    switch = {"kind": "kubernetes", "alerts": ["LLMEngineDown"], "matchers": {"role": "primary"},
              "operation": "switch_service", "namespace": "llm", "service": "{labels.model_name}",
              "kubectl": str(kubectl)}
    return [{"name": "failover", **switch, "selector": {"app": "vllm", "role": "backup"}, "undo": "failback"},
            {"name": "failback", **switch, "when": "resolved", "selector": {"app": "vllm", "role": "primary"}}]


def patch_of(role: str) -> str:
    return json.dumps({"spec": {"selector": {"app": "vllm", "role": role}}}, separators=(",", ":"), sort_keys=True)


# -- end to end: a real Alertmanager delivering to an executing and a dry-run receiver ---------------


def test_alertmanager_drives_actions_and_undo(tmp_path: Path, recorder: Recorder, receivers: Receivers) -> None:
    if shutil.which("prometheus-alertmanager") is None or shutil.which("amtool") is None:
        pytest.fail("prometheus-alertmanager and amtool are needed: run the README's test command")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    live, dry = tmp_path / "live", tmp_path / "dry"
    live.mkdir(), dry.mkdir()
    http_action = {"name": "router", "kind": "http", "alerts": ["LLMEngineDown"], "matchers": {"role": "primary"},
                   "url": recorder.url + "/drain/{labels.model_name}", "headers": {"X-Alert": "{alertname}"},
                   "body": '{"model": "{labels.model_name}", "summary": "{annotations.summary}"}'}

    def actions(where: Path) -> list[dict]:
        return [command_action(where / "command.jsonl"), http_action,
                *kube_actions(fake_program(where / "kubectl", where / "kubectl.jsonl"))]

    executing = receivers.start(remediation(tmp_path, actions(live), execute=True, bearer_token_file=str(token_file),
                                            audit_log=str(live / "audit.jsonl")))
    dry_run = receivers.start(remediation(tmp_path, [a for a in actions(dry) if a["kind"] != "http"], execute=False,
                                          bearer_token_file=str(token_file), audit_log=str(dry / "audit.jsonl")))
    hook = {"send_resolved": True, "max_alerts": 10,
            "http_config": {"authorization": {"credentials_file": str(token_file)}}}
    config = {"route": {"receiver": "remediate", "group_by": ["alertname", "model_name"], "group_wait": "1s",
                        "group_interval": "1s", "repeat_interval": "1h"},
              "receivers": [{"name": "remediate", "webhook_configs": [
                  {"url": alerts_url(executing), **hook}, {"url": alerts_url(dry_run), **hook}]}]}
    am = Alertmanager(tmp_path / "am", config=config).start()
    try:
        checked = subprocess.run(["amtool", "check-config", str(am.workdir / "alertmanager.yml")],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        started = datetime.now(UTC) - timedelta(seconds=30)
        labels = {"alertname": "LLMEngineDown", "role": "primary", "model_name": "m1", "endpoint": "vllm-0"}
        annotations = {"summary": "An LLM serving endpoint is down."}
        am.post_alerts([{"labels": labels, "annotations": annotations, "startsAt": iso(started)}])

        wait_until(lambda: lines(live / "kubectl.jsonl") and lines(live / "command.jsonl") and recorder.requests,
                   20, what="the firing actions")
        assert lines(live / "command.jsonl") == [["m1", "firing"]]
        assert lines(live / "kubectl.jsonl") == [["patch", "service", "m1", "-n", "llm", "--type", "merge",
                                                  "-p", patch_of("backup")]]
        method, path, headers, body = recorder.requests[0]
        assert (method, path, headers["X-Alert"]) == ("POST", "/drain/m1", "LLMEngineDown")
        assert json.loads(body) == {"model": "m1", "summary": "An LLM serving endpoint is down."}

        am.post_alerts([{"labels": labels, "annotations": annotations, "startsAt": iso(started),
                         "endsAt": iso(datetime.now(UTC) - timedelta(seconds=1))}])
        wait_until(lambda: len(lines(live / "kubectl.jsonl")) == 2, 20, what="the undo on resolve")
        assert lines(live / "kubectl.jsonl")[1][-1] == patch_of("primary")
        assert lines(live / "command.jsonl") == [["m1", "firing"]], "the command has no undo: it ran once"
        wait_until(lambda: metric(executing, "inferwatch_remediation_actions_total", action="failback",
                                  result="succeeded") == 1, 10, what="failback counted")
        for name in ("note", "router", "failover"):
            assert metric(executing, "inferwatch_remediation_actions_total", action=name, result="succeeded") == 1
        assert metric(executing, "inferwatch_remediation_rejected_requests_total", reason="unauthorized") == 0

        audit = [json.loads(line) for line in (live / "audit.jsonl").read_text().splitlines()]
        failover = next(r for r in audit if r["action"] == "failover" and r["result"] == "succeeded")
        assert failover["request"]["argv"][1:3] == ["patch", "service"] and failover["exit_code"] == 0
        assert next(r for r in audit if r["action"] == "failback")["undo"] is True

        # The dry-run receiver got the same notifications: audited and counted, nothing ran.
        wait_until(lambda: metric(dry_run, "inferwatch_remediation_actions_total", action="failback",
                                  result="dry_run") == 1, 10, what="the dry run of the undo")
        assert metric(dry_run, "inferwatch_remediation_actions_total", action="failover", result="dry_run") == 1
        assert metric(dry_run, "inferwatch_remediation_actions_total", action="failover", result="succeeded") == 0
        assert not (dry / "kubectl.jsonl").exists() and not (dry / "command.jsonl").exists()
        dry_audit = [json.loads(line) for line in (dry / "audit.jsonl").read_text().splitlines()]
        planned = next(r for r in dry_audit if r["action"] == "failover")
        assert planned["result"] == "dry_run" and planned["execute"] is False
        assert planned["request"]["argv"] == [str(dry / "kubectl"), "patch", "service", "m1", "-n", "llm",
                                              "--type", "merge", "-p", patch_of("backup")]
    finally:
        am.stop()


# -- direct POSTs: re-sends, refusals, injection --------------------------------------------------


def test_resent_notification_runs_once(tmp_path: Path, receivers: Receivers) -> None:
    records = tmp_path / "command.jsonl"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    receiver = receivers.start(remediation(tmp_path, [command_action(records)], execute=True,
                                           bearer_token_file=str(token_file)))
    first = post(receiver, webhook(alert()))
    second = post(receiver, webhook(alert()))
    assert first == (200, {"results": [{"fingerprint": "fp1", "alertname": "LLMEngineDown", "action": "note",
                                        "result": "queued"}]})
    assert second[1]["results"][0] == {"fingerprint": "fp1", "alertname": "LLMEngineDown", "action": "note",
                                            "result": "skipped", "reason": "duplicate"}
    assert receiver.collector.remediator.drain(10)
    assert lines(records) == [["m1", "firing"]]
    assert metric(receiver, "inferwatch_remediation_actions_total", action="note", result="succeeded") == 1
    assert metric(receiver, "inferwatch_remediation_skipped_total", action="note", reason="duplicate") == 1
    # A new occurrence of the same alert (another startsAt) is not a duplicate.
    again = alert() | {"startsAt": "2025-01-02T00:00:00Z"}
    assert post(receiver, webhook(again))[1]["results"][0]["result"] == "queued"


def test_refusals_are_answered_and_counted(tmp_path: Path, receivers: Receivers) -> None:
    records = tmp_path / "command.jsonl"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    receiver = receivers.start(remediation(tmp_path, [command_action(records)], execute=True, max_body_bytes=2048,
                                           bearer_token_file=str(token_file)))
    assert post(receiver, webhook(alert()), token="wrong")[0] == 401
    assert post(receiver, webhook(alert()), token=None)[0] == 401
    assert post(receiver, b"x" * 4096)[0] == 413
    assert post(receiver, b"{not json")[0] == 400
    assert post(receiver, {"version": "4", "alerts": "nope"})[0] == 400
    assert post(receiver, webhook({"status": "firing", "labels": {}}))[0] == 400

    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    connection.request("POST", "/v1/alerts", body=iter([b"{}"]), encode_chunked=True,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert connection.getresponse().status == 411
    connection.close()

    status, reply = post(receiver, webhook(alert(alertname="SomethingElse", fingerprint="fp9"), alert()))
    assert status == 200
    assert reply["results"][0] == {"fingerprint": "fp9", "alertname": "SomethingElse", "action": None,
                                   "result": "rejected", "reason": "unknown_alert"}
    assert reply["results"][1]["result"] == "queued"
    # Allow-listed but not for these labels: ignored, not an unknown alert.
    reply = post(receiver, webhook(alert(role="backup", fingerprint="fp2")))[1]
    assert reply["results"][0]["result"] == "ignored"

    expected = {"unauthorized": 2, "too_large": 1, "bad_json": 1, "schema": 3}
    for reason, count in expected.items():
        assert metric(receiver, "inferwatch_remediation_rejected_requests_total", reason=reason) == count, reason
    assert metric(receiver, "inferwatch_remediation_rejected_alerts_total", reason="unknown_alert") == 1
    assert receiver.collector.remediator.drain(10)
    assert lines(records) == [["m1", "firing"]]


def test_label_value_that_looks_like_a_flag_is_refused(tmp_path: Path, receivers: Receivers) -> None:
    records, kube_records = tmp_path / "command.jsonl", tmp_path / "kubectl.jsonl"
    kubectl = fake_program(tmp_path / "kubectl", kube_records)
    receiver = receivers.start(remediation(tmp_path, [command_action(records), *kube_actions(kubectl)], execute=True))
    reply = post(receiver, webhook(alert(model_name="--kubeconfig=/tmp/evil")), token=None)[1]
    assert {(r["action"], r["result"], r.get("reason")) for r in reply["results"]} == {
        ("note", "failed", "injected_flag"), ("failover", "failed", "injected_flag")}
    reply = post(receiver, webhook(alert(model_name="Not_A_Name", fingerprint="fp2")), token=None)[1]
    assert [(r["action"], r.get("reason")) for r in reply["results"]] == [("note", None), ("failover", "bad_value")]
    assert receiver.collector.remediator.drain(10)
    assert not kube_records.exists()
    assert lines(records) == [["Not_A_Name", "firing"]], "the command takes any single argument that is no flag"
    assert metric(receiver, "inferwatch_remediation_action_failures_total", action="note", reason="injected_flag") == 1
    assert metric(receiver, "inferwatch_remediation_actions_total", action="failover", result="failed") == 2


def test_failed_command_and_http_are_counted(tmp_path: Path, receivers: Receivers) -> None:
    actions = [{"name": "fails", "kind": "command", "alerts": ["LLMEngineDown"], "cooldown_seconds": 0,
                "argv": [sys.executable, "-c", "import sys; print('x' * 5000); sys.exit(3)"]},
               {"name": "refused", "kind": "http", "alerts": ["LLMEngineDown"], "url": "http://127.0.0.1:1/x",
                "timeout_seconds": 2}]
    audit = tmp_path / "audit.jsonl"
    receiver = receivers.start(remediation(tmp_path, actions, execute=True, audit_log=str(audit)))
    post(receiver, webhook(alert()), token=None)
    assert receiver.collector.remediator.drain(15)
    assert metric(receiver, "inferwatch_remediation_action_failures_total", action="fails", reason="exit_status") == 1
    assert metric(receiver, "inferwatch_remediation_action_failures_total", action="refused",
                  reason="connection_error") == 1
    record = next(json.loads(line) for line in audit.read_text().splitlines() if '"fails"' in line)
    assert record["exit_code"] == 3 and len(record["output"]) < 2100 and record["output"].endswith("bytes)")


class Health(http.server.ThreadingHTTPServer):
    """A loopback /health answering `status`, and recording the paths checked."""

    def __init__(self) -> None:
        self.status, self.paths = 503, []
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                health.paths.append(self.path)
                self.send_response(health.status if self.path.startswith("/health") else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_precondition_keeps_a_failback_off_a_dead_primary(tmp_path: Path, recorder: Recorder,
                                                          receivers: Receivers) -> None:
    """A resolution while the primary's /health fails (Alertmanager resolving a firing alert whose
    re-sends were late) skips the failback and counts it; once healthy, the next resolution runs it."""
    health = Health()
    port = health.server_address[1]
    actions = [{"name": "failback", "kind": "http", "alerts": ["LLMEngineDown"], "when": "resolved",
                "cooldown_seconds": 0, "url": f"{recorder.url}/route",
                "precondition_url": f"http://127.0.0.1:{port}/health?model={{labels.model_name}}"}]
    audit = tmp_path / "audit.jsonl"
    receiver = receivers.start(remediation(tmp_path, actions, execute=True, audit_log=str(audit)))
    try:
        post(receiver, webhook(alert(status="resolved"), status="resolved"), token=None)
        assert receiver.collector.remediator.drain(15)
        assert recorder.requests == [] and health.paths == ["/health?model=m1"]
        assert metric(receiver, "inferwatch_remediation_skipped_total", action="failback",
                      reason="precondition_failed") == 1
        record = json.loads(audit.read_text().splitlines()[-1])
        assert (record["result"], record["reason"], record["http_status"]) == ("skipped", "precondition_failed", 503)
        health.status = 200
        later = alert(status="resolved") | {"startsAt": "2025-01-02T00:00:00Z"}
        post(receiver, webhook(later, status="resolved"), token=None)
        assert receiver.collector.remediator.drain(15)
        assert [r[1] for r in recorder.requests] == ["/route"] and len(health.paths) == 2
        assert metric(receiver, "inferwatch_remediation_actions_total", action="failback", result="succeeded") == 1
    finally:
        health.shutdown()
        health.server_close()


# -- the pure policy, on a hand-driven clock -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_a_sliding_hour() -> None:
    clock = Clock()
    policy = Policy({"a": Limits(max_per_hour=2, cooldown_seconds=0)}, clock)
    admit = [policy.admit(idempotency_key("a", f"fp{i}", "firing", "t"), {"alertname": "X", "n": str(i)})
             for i in range(3)]
    assert admit == [None, None, "rate_limited"]
    clock.now += 3599
    assert policy.admit(idempotency_key("a", "fp3", "firing", "t"), {}) == "rate_limited"
    clock.now += 1
    assert policy.admit(idempotency_key("a", "fp3", "firing", "t"), {}) is None


def test_cooldown_per_action_and_labels() -> None:
    clock = Clock()
    policy = Policy({"a": Limits(10, 300, frozenset({"pod"})), "b": Limits(10, 300)}, clock)
    labels = {"alertname": "X", "model_name": "m1", "pod": "vllm-abc"}
    assert policy.admit(idempotency_key("a", "fp1", "firing", "t1"), labels) is None
    # The same outage from a new pod (another fingerprint) is still cooling down; another model is not.
    assert policy.admit(idempotency_key("a", "fp2", "firing", "t2"), {**labels, "pod": "vllm-def"}) == "cooldown"
    assert policy.admit(idempotency_key("a", "fp3", "firing", "t3"), {**labels, "model_name": "m2"}) is None
    assert policy.admit(idempotency_key("b", "fp2", "firing", "t2"), labels) is None, "cool-down is per action"
    clock.now += 300
    assert policy.admit(idempotency_key("a", "fp2", "firing", "t2"), {**labels, "pod": "vllm-def"}) is None


def test_duplicates_forget_beyond_the_bound_and_skips_are_retried() -> None:
    clock = Clock()
    policy = Policy({"a": Limits(1000, 0)}, clock, max_keys=2)
    keys = [idempotency_key("a", f"fp{i}", "firing", "t") for i in range(3)]
    assert [policy.admit(k, {}) for k in keys] == [None, None, None]
    assert policy.admit(keys[2], {}) == "duplicate"
    assert policy.admit(keys[0], {}) is None, "the oldest key was evicted (bounded memory)"
    limited = Policy({"a": Limits(1, 0)}, clock)
    assert limited.admit(keys[0], {}) is None
    assert limited.admit(keys[1], {}) == "rate_limited"
    clock.now += 3600
    assert limited.admit(keys[1], {}) is None, "a skipped alert is not remembered as done"


# -- config ----------------------------------------------------------------------------------------


def test_shipped_example_loads() -> None:
    config = load_config(REPO / "inferwatch" / "examples" / "remediation.yaml").remediation
    assert [a.name for a in config.actions] == ["failover-llama-3-8b", "failback-llama-3-8b",
                                                "litellm-add-fallback", "litellm-remove-fallback"]
    assert config.execute is False and config.port == 9841


ACTION = "remediation:\n  actions:\n    - name: a\n      kind: http\n      alerts: [X]\n"


@pytest.mark.parametrize(("text", "expected"), [
    (ACTION + "      url: http://h/{foo}\n",
     r"6: remediation\.actions\[0\]\.url: unknown placeholder \{foo\} \(allowed: "),
    (ACTION + "      url: http://h/x\n      headers: {X-A: '{labels.a-b}'}\n",
     r"7: remediation\.actions\[0\]\.headers\.X-A: unknown placeholder \{labels\.a-b\}"),
    (ACTION + "      url: http://h/x\n      undo: missing\n",
     r"3: remediation\.actions\[0\]\.undo: names no configured action: 'missing'"),
    (ACTION, r"3: remediation\.actions\[0\]\.url: required for kind http"),
    (ACTION + "      url: ftp://h/x\n", r"6: remediation\.actions\[0\]\.url: must be an http:// or https:// URL"),
    ("remediation:\n  actions:\n    - {name: a, kind: command, alerts: []}\n",
     r"3: remediation\.actions\[0\]\.alerts: must list at least one alertname"),
    ("remediation:\n  actions:\n    - {name: a, kind: command, argv: [x]}\n",
     r"3: remediation\.actions\[0\]\.alerts: required key is missing"),
    ("remediation:\n  actions:\n    - {name: a, kind: command, alerts: [X], argv: [x], url: 'http://h'}\n",
     r"3: remediation\.actions\[0\]\.url: is for kind http, not command"),
    ("remediation:\n  actions:\n    - {name: a, kind: kubernetes, alerts: [X], operation: switch_service, "
     "namespace: n, service: s}\n", r"3: remediation\.actions\[0\]\.selector: required for operation switch_service"),
    ("remediation:\n  actions:\n    - {name: a, kind: command, alerts: [X], argv: [x]}\n"
     "    - {name: a, kind: command, alerts: [X], argv: [y]}\n",
     r"3: remediation\.actions: action names must be unique; repeated: a"),
])
def test_config_errors_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "r.yaml")
    assert re.match("r\\.yaml:" + expected, str(info.value)), str(info.value)


def test_cli_flags_override_execute(tmp_path: Path) -> None:
    from inferwatch.cli import build_parser
    from inferwatch.remediate.command import configured

    config = load_config(REPO / "inferwatch" / "examples" / "remediation.yaml")
    parser = build_parser()
    assert configured(parser.parse_args(["remediate", "--execute", "--port", "0"]), config).execute is True
    assert configured(parser.parse_args(["remediate", "--dry-run"]), config).execute is False
    assert configured(parser.parse_args(["remediate"]), config).execute is False
    with pytest.raises(SystemExit):
        parser.parse_args(["remediate", "--execute", "--dry-run"])


def test_audit_log_without_file_goes_to_the_log(caplog: pytest.LogCaptureFixture, tmp_path: Path,
                                                receivers: Receivers) -> None:
    receiver = receivers.start(remediation(tmp_path, [command_action(tmp_path / "c.jsonl")]))
    with caplog.at_level("INFO"):
        assert post(receiver, webhook(alert()), token=None)[1]["results"][0]["result"] == "dry_run"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("would run note for LLMEngineDown fp1") for m in messages)
    assert any(m.startswith("audit {") and '"result":"dry_run"' in m for m in messages)
    time.sleep(0.1)
    assert not (tmp_path / "c.jsonl").exists()
