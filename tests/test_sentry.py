"""Sentry reporting: the real sentry-sdk against a loopback receiver, and no prompt text ever leaves.

The SDK runs in a subprocess, so its global client, hooks and threads never touch this process.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from inferwatch.kit import sentry

SECRET = "SECRET-PROMPT-123"


@dataclass
class Receiver:
    url: str
    bodies: list[bytes] = field(default_factory=list)  # decompressed envelopes, as received
    paths: list[str] = field(default_factory=list)

    def items(self) -> list[tuple[dict, bytes]]:
        return [item for body in self.bodies for item in parse_envelope(body)]

    def events(self) -> list[dict]:
        return [json.loads(payload) for header, payload in self.items() if header.get("type") == "event"]


def parse_envelope(body: bytes) -> list[tuple[dict, bytes]]:
    """Sentry's envelope: a header line, then items of (header line, payload of `length` bytes or one line)."""
    _, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"]:].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Accepts POSTs at /api/<project>/envelope/ on 127.0.0.1, like a Sentry (or Relay) ingest endpoint."""
    got = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "br":
                import brotli  # only if the SDK found it installed

                body = brotli.decompress(body)
            parts = self.path.strip("/").split("/")
            ok = len(parts) == 3 and parts[0] == "api" and parts[2] == "envelope"
            if ok:
                got.bodies.append(body)
                got.paths.append(self.path)
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://public@127.0.0.1:{server.server_address[1]}/1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**clean, **env})


# What a component does: an exception carrying a prompt (message and locals), a log line with the
# prompt as an argument, a collector bug in a scrape thread, new engine error templates. The secret is
# built at run time, as a prompt would arrive: it is in no source line the SDK could quote.
REPORTER = """
import logging, sys, threading
from inferwatch.kit import sentry
from inferwatch.kit.logformat import configure_logging
from inferwatch.kit.selfmetrics import InstrumentedCollector, SelfMetrics

configure_logging("info", "text", "gpu-exporter")
assert sentry.init("gpu-exporter") is True
secret = "-".join(["SECRET", "PROMPT", "123"])

def handle(prompt):
    messages = [{"role": "user", "content": prompt}]
    raise ValueError(f"engine rejected prompt {prompt!r}")

try:
    handle(secret)
except ValueError as exc:
    sentry.capture_exception(exc, stage="probe")
logging.getLogger("inferwatch.test").info("sending prompt %s", secret)  # a breadcrumb of later events
logging.getLogger("inferwatch.test").error("prompt %s was too long", secret, extra={"prompt": secret})

class Broken:
    self_metrics = SelfMetrics("gpu")
    def describe(self): return []
    def collect(self): raise RuntimeError("nvml went away")
    def close(self): pass

scrape = threading.Thread(target=lambda: list(InstrumentedCollector(Broken()).collect()))
scrape.start(); scrape.join()

sent = [sentry.capture_new_template("vllm", "cuda_oom", "critical", "CUDA out of memory. Tried to allocate <num> GiB",
                                    "0.6.3")]
sent.append(sentry.capture_new_template("vllm", "cuda_oom", "critical",
                                        "CUDA out of memory. Tried to allocate <num> GiB", "0.6.3"))  # the same
sent += [sentry.capture_new_template("vllm", "engine_dead", "error", f"template number {i}", None) for i in range(19)]
print(sum(sent))
sentry.flush(10)
"""


def test_events_reach_sentry_without_prompt_text(receiver: Receiver) -> None:
    result = run_python(REPORTER, SENTRY_DSN=receiver.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sentry.TEMPLATES_PER_MINUTE), "the bucket caps templates"
    assert receiver.bodies and all(p == "/api/1/envelope/" for p in receiver.paths)
    for body in receiver.bodies:
        assert SECRET.encode() not in body, body[:2000]
    events = receiver.events()
    assert all(e["tags"]["component"] == "gpu-exporter" for e in events), [e.get("tags") for e in events]

    def exceptions(kind: str) -> list[dict]:
        return [e for e in events if any(v["type"] == kind for v in e.get("exception", {}).get("values", []))]

    [probe] = exceptions("ValueError")
    assert probe["exception"]["values"][-1]["value"] == "engine rejected prompt '[redacted]'"
    assert probe["tags"]["stage"] == "probe"
    assert all("vars" not in f for f in probe["exception"]["values"][-1]["stacktrace"]["frames"])

    [scrape] = exceptions("RuntimeError")  # once: the logging integration's copy is deduplicated
    assert scrape["exception"]["values"][-1]["value"] == "nvml went away"
    assert (scrape["tags"]["stage"], scrape["tags"]["collector"]) == ("collect", "gpu")

    [logged] = [e for e in events if e.get("logentry", {}).get("message") == "prompt %s was too long"]
    assert logged["logentry"]["formatted"] == "prompt [redacted] was too long"
    assert logged["extra"].get("prompt") in (None, "[redacted]")
    crumbs = [c["message"] for c in logged.get("breadcrumbs", {}).get("values", [])]
    assert "sending prompt [redacted]" in crumbs, crumbs

    def message(event: dict) -> str:
        return event.get("message") or event.get("logentry", {}).get("message") or ""

    templates = [e for e in events if message(e).startswith("new vllm error template")]
    assert len(templates) == sentry.TEMPLATES_PER_MINUTE
    [oom] = [e for e in templates if "cuda_oom" in message(e)]
    assert message(oom) == "new vllm error template (cuda_oom): CUDA out of memory. Tried to allocate <num> GiB"
    assert oom["level"] == "fatal"
    assert {k: oom["tags"][k] for k in ("source", "class", "version")} == {
        "source": "vllm", "class": "cuda_oom", "version": "0.6.3"}
    assert len({message(e) for e in templates}) == len(templates), "never the same template twice"


def test_no_dsn_is_off() -> None:
    result = run_python("from inferwatch.kit import sentry; import sys\n"
                        "print(sentry.init('x'), 'sentry_sdk' in sys.modules)\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "False False\n", "")


def test_dsn_without_sentry_sdk_is_one_warning_line() -> None:
    code = ("import sys\nsys.modules['sentry_sdk'] = None\n"
            "from inferwatch.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", code, "check-config"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SENTRY_DSN": "http://public@127.0.0.1:9/1"})
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "SENTRY_DSN is set but sentry-sdk is not installed" in line
    assert "pip install 'inferwatch[sentry]'" in line


@pytest.fixture
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """An active module with sentry_sdk replaced by a recorder and a clock we move by hand."""
    sent: list[dict] = []
    fake = type(sys)("sentry_sdk")
    fake.capture_message = lambda message, **kwargs: sent.append({"message": message, **kwargs})
    monkeypatch.setitem(sys.modules, "sentry_sdk", fake)
    sentry._reset_for_tests()
    monkeypatch.setattr(sentry, "_active", True)
    yield sent
    sentry._reset_for_tests()


def test_template_bucket_refills_and_never_repeats(fake_sdk: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(sentry, "_bucket", sentry.TokenBucket(sentry.TEMPLATES_PER_MINUTE, 60.0, lambda: now[0]))
    results = [sentry.capture_new_template("tgi", "oom", "warning", f"t{i}") for i in range(20)]
    assert sum(results) == sentry.TEMPLATES_PER_MINUTE and results[:10] == [True] * 10
    now[0] += 6.0  # one token back per 6 s
    assert sentry.capture_new_template("tgi", "oom", "warning", "t0") is False  # already sent
    assert sentry.capture_new_template("tgi", "oom", "warning", "t10") is True
    assert sentry.capture_new_template("tgi", "oom", "warning", "t11") is False
    assert fake_sdk[0]["level"] == "warning" and fake_sdk[0]["tags"] == {
        "source": "tgi", "class": "oom", "severity": "warning"}


def test_scrubber_drops_prompt_like_data() -> None:
    event = {
        "message": 'output "hello there" rejected',
        "extra": {"prompt": SECRET, "nested": {"messages": [SECRET]}, "gpu": 3},
        "request": {"url": "http://x/v1", "data": {"prompt": SECRET}},
        "exception": {"values": [{"type": "E", "value": f"bad output '{SECRET}'",
                                  "stacktrace": {"frames": [{"function": "f", "vars": {"p": SECRET}}]}}]},
        "logentry": {"message": "completion %r failed", "params": [SECRET],
                     "formatted": f"completion '{SECRET}' failed"},
        "breadcrumbs": {"values": [{"message": f"prompt='{SECRET}'", "data": {"text": SECRET}}]},
    }
    scrubbed = sentry.scrub_event(event)
    assert SECRET not in json.dumps(scrubbed)
    assert scrubbed["message"] == 'output "[redacted]" rejected'
    assert scrubbed["extra"]["gpu"] == 3 and "data" not in scrubbed["request"]
    assert scrubbed["logentry"]["formatted"] == "completion '[redacted]' failed"
    assert sentry.redact("GPU 'a100' is hot") == "GPU 'a100' is hot", "quotes are kept when nothing mentions prompts"
