"""`inferwatch rules backtest`: replay over a real Prometheus holding backfilled history, and the pieces.

A small raw vLLM history (two models, 18 hours at 1 minute) is generated here, with two faults:
a TTFT regression on `llama` (p95 far above the 2 s SLA for an hour) and `qwen`'s target down
(`up == 0`) for 10 minutes. It is backfilled into a real Prometheus with `promtool tsdb
create-blocks-from openmetrics`; the backtest reads it back through the HTTP API and must report
the same firing times as promtool replaying the History directly, and as hand-written promtool
alert tests at the reported minutes.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import backfilled_prometheus

from inferwatch import assets
from inferwatch.backtest import BacktestError
from inferwatch.backtest.history import History, fetch, parse_series_key, series_key
from inferwatch.backtest.replay import (
    Episode,
    episodes_from,
    expr_names,
    load_rules,
    parse_duration,
    parse_failures,
    replay,
    required_series,
    values_text,
)
from inferwatch.backtest.score import Incident, load_incidents, score
from inferwatch.cli import main
from inferwatch.lab.stack import Prometheus, free_port

STEP = 60
DAYS = 0.75
MODELS = {"llama": "host-a:8000", "qwen": "host-b:8000"}
T_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0, 160.0, 640.0, 2560.0)
I_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REGRESSION = (14 * 3600, 15 * 3600)  # llama's TTFT median 0.25 s -> 2.5 s (seconds after the history's start)
OUTAGE = (16 * 3600, 16 * 3600 + 600)  # qwen's target down
# what the end-to-end tests replay (the full shipped rules take ~100 s of CPU per simulated day)
ALERTS = ("LLMTimeToFirstTokenSLABreach", "LLMTTFTBudgetBurn", "LLMEngineTargetDown")


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@functools.cache
def _below(le: float, median: float, sigma: float) -> float:
    """Share of a lognormal distribution at or below `le`."""
    return _phi(math.log(le / median) / sigma)


class _Columns:
    """One model's series, appended one step at a time; counters given as increments."""

    def __init__(self, labels: dict[str, str]):
        self.labels = labels
        self.totals: dict[str, float] = {}
        self.columns: dict[str, list[float | None]] = {}

    def __call__(self, name: str, labels: dict[str, str], value: float, counter: bool = True) -> None:
        key = series_key(name, {**self.labels, **labels})
        if counter:
            self.totals[key] = self.totals.get(key, 0.0) + value
            value = round(self.totals[key], 3)
        self.columns.setdefault(key, []).append(value)


def generate(start: float, days: float = DAYS, regression: tuple[float, float] = REGRESSION,
             outage: tuple[float, float] = OUTAGE) -> History:
    """Raw vLLM series as Prometheus would have scraped them: counters as running totals."""
    steps = int(days * 86_400 // STEP) + 1
    series: dict[str, list[float | None]] = {}
    for model, instance in MODELS.items():
        put = _Columns({"job": "vllm", "instance": instance, "engine": "0", "model_name": model})

        for i in range(steps):
            t = i * STEP
            phase = (t % 86_400) / 86_400
            rate = 2 + 1.5 * math.sin(2 * math.pi * phase) + (0.5 if model == "qwen" else 0)  # requests/s
            n = rate * STEP
            slow = model == "llama" and regression[0] <= t < regression[1]
            median = 2.5 if slow else 0.25
            for le in T_BUCKETS:
                put("vllm:time_to_first_token_seconds_bucket", {"le": repr(le)}, n * _below(le, median, 0.6))
            put("vllm:time_to_first_token_seconds_bucket", {"le": "+Inf"}, n)
            put("vllm:time_to_first_token_seconds_count", {}, n)
            put("vllm:time_to_first_token_seconds_sum", {}, n * median * 1.2)
            tokens = n * 100
            for le in I_BUCKETS:
                put("vllm:inter_token_latency_seconds_bucket", {"le": repr(le)}, tokens * _below(le, 0.03, 0.5))
            put("vllm:inter_token_latency_seconds_bucket", {"le": "+Inf"}, tokens)
            put("vllm:inter_token_latency_seconds_count", {}, tokens)
            put("vllm:inter_token_latency_seconds_sum", {}, tokens * 0.034)
            put("vllm:request_success_total", {"finished_reason": "stop"}, n * 0.969)
            put("vllm:request_success_total", {"finished_reason": "length"}, n * 0.03)
            put("vllm:request_success_total", {"finished_reason": "abort"}, n * 0.001)
            put("vllm:prompt_tokens_total", {}, n * 500)
            put("vllm:generation_tokens_total", {}, tokens)
            put("vllm:num_preemptions_total", {}, 0)
            put("vllm:num_requests_running", {}, round(rate * 2), counter=False)
            put("vllm:num_requests_waiting", {}, 0, counter=False)
            put("vllm:kv_cache_usage_perc", {}, round(0.2 + 0.05 * rate, 4), counter=False)
            put("process_start_time_seconds", {}, start - 3600, counter=False)
        series.update(put.columns)
        down = [0.0 if model == "qwen" and outage[0] <= i * STEP < outage[1] else 1.0 for i in range(steps)]
        series[series_key("up", {"job": "vllm", "instance": instance})] = list(down)
    return History(start, STEP, series)


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rule_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The shipped rule files, written out once (promtool reads paths)."""
    return assets.write_rule_files(tmp_path_factory.mktemp("rules"))


@pytest.fixture(scope="session")
def history() -> History:
    end = (time.time() // 3600 - 1) * 3600  # whole hours, an hour before now
    return generate(end - DAYS * 86_400)


@pytest.fixture(scope="session")
def backfilled(history: History, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus whose TSDB holds exactly `history` (backfilled, nothing scraped)."""
    server = backfilled_prometheus(tmp_path_factory.mktemp("backfilled"), history.to_openmetrics())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def direct(rule_files: list[Path], history: History) -> list[Episode]:
    """What promtool reports replaying the generated History itself (full shipped rules)."""
    return replay(rule_files, history, alerts=ALERTS, jobs=2)


def _backtest(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rules", "backtest", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _firing(episodes: list[Episode], name: str, model: str | None = None) -> list[Episode]:
    return [e for e in episodes if e.alertname == name and (model is None or e.label("model_name") == model)]


# -- against a real Prometheus -------------------------------------------------------------------

def test_backtest_of_a_prometheus_matches_promtool_on_the_same_history(
        backfilled: Prometheus, history: History, direct: list[Episode], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    saved = tmp_path / "fetched.json.gz"
    code, out, err = _backtest(capsys, "--prometheus", backfilled.url, "--from", str(int(history.start)),
                               "--to", str(int(history.end())), "--json", "--save-history", str(saved),
                               *[arg for name in ALERTS for arg in ("--alert", name)])
    assert code == 0, err
    report = json.loads(out)
    fetched = History.load(saved)
    assert fetched.start == history.start and fetched.steps() == history.steps()
    assert fetched.series == {k: v for k, v in history.series.items() if k.split("{")[0] in fetched.names()}
    got = sorted((e["alertname"], tuple(sorted(e["labels"].items())), e["start"], e["end"]) for e in report["episodes"])
    want = sorted((e.alertname, e.labels, e.start, e.end) for e in direct)
    assert got == want
    (sla,) = _firing(direct, "LLMTimeToFirstTokenSLABreach", "llama")
    # p95 over 5m crosses 2 s a few minutes into the regression, then `for: 5m`
    assert history.start + REGRESSION[0] < sla.start <= history.start + REGRESSION[0] + 15 * 60
    assert report["alerts"]["LLMTimeToFirstTokenSLABreach"]["first_firing"] == sla.start
    (down,) = _firing(direct, "LLMEngineTargetDown")
    assert dict(down.labels)["instance"] == MODELS["qwen"]
    assert history.start + OUTAGE[0] < down.start <= history.start + OUTAGE[0] + 3 * 60
    assert _firing(direct, "LLMTTFTBudgetBurn", "llama"), "the fast burn fires during an hour of 95% slow requests"
    assert not [e for e in direct if e.label("model_name") == "qwen" and "TimeToFirstToken" in e.alertname]


def test_reported_times_agree_with_a_hand_written_promtool_test(
        rule_files: list[Path], history: History, direct: list[Episode], tmp_path: Path) -> None:
    """Independent of the failure parser: promtool must pass a test expecting the alert firing at
    the reported first and last minutes, and not at the minutes just outside."""
    (sla,) = _firing(direct, "LLMTimeToFirstTokenSLABreach", "llama")
    rules = load_rules(rule_files, [sla.alertname])
    keep = rules.closure(rules.alerts())
    groups: dict[int, list[dict]] = {}
    for i in sorted(keep):
        rule = {k: v for k, v in rules.rules[i].rule.items() if k != "annotations"}  # compared only when given
        groups.setdefault(rules.rules[i].group, []).append(rule)
    subset = tmp_path / "rules.yaml"
    subset.write_text(yaml.safe_dump({"groups": [{**rules.groups[g], "rules": r} for g, r in groups.items()]}))
    checks = []
    for t in (sla.start - STEP, sla.start, sla.end - STEP, sla.end):
        expected = [{"exp_labels": dict(sla.labels)}] if sla.start <= t < sla.end else []
        checks.append({"eval_time": f"{int((t - history.start) // 60)}m", "alertname": sla.alertname,
                       "exp_alerts": expected})
    steps = int((sla.end - history.start) // STEP) + 1
    series = [{"series": k, "values": values_text(v[:steps])} for k, v in history.series.items()
              if parse_series_key(k)[1].get("model_name") == "llama"]
    test = {"rule_files": [str(subset)], "evaluation_interval": "1m",
            # file order, as the replay uses: without it promtool picks a random order per run
            "group_eval_order": [rules.groups[g]["name"] for g in groups],
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}]}
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(test))
    done = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_parallel_runs_equal_a_single_run(rule_files: list[Path], history: History, direct: list[Episode]) -> None:
    assert replay(rule_files, history, alerts=ALERTS, jobs=1) == direct


def test_prometheus_down_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = _backtest(capsys, "--prometheus", url, "--from", "now-1h")
    assert code == 1 and not out
    assert err.strip() == f"inferwatch: cannot reach Prometheus at {url}: Connection refused"


def test_a_range_without_data_and_a_match_selecting_nothing(
        backfilled: Prometheus, history: History, capsys: pytest.CaptureFixture[str]) -> None:
    old = str(int(history.start - 30 * 86_400))
    code, _, err = _backtest(capsys, "--prometheus", backfilled.url, "--from", old, "--to", str(int(old) + 3600))
    assert code == 1 and err.startswith(f"inferwatch: Prometheus at {backfilled.url} has no data for the series")
    assert len(err.strip().splitlines()) == 1
    code, _, err = _backtest(capsys, "--prometheus", backfilled.url, "--from", "now-1d", "--match", '{job="nope"}')
    assert code == 1
    assert err.strip().startswith('inferwatch: --match {job="nope"} selects none of the series the rules read')


def test_max_samples_stops_before_fetching(backfilled: Prometheus, history: History) -> None:
    with pytest.raises(BacktestError, match=r"above --max-samples 1,000"):
        fetch(backfilled.url, history.start, history.end(), 60, ["up", "vllm:num_requests_running"],
              max_samples=1000)


def test_fetch_in_chunks_with_progress(backfilled: Prometheus, history: History) -> None:
    seen: list[tuple[int, int]] = []
    got = fetch(backfilled.url, history.start, history.start + 3 * 3600, 60, ["up"], match='job="vllm"',
                chunk_seconds=3600, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)  # 181 steps in chunks of 60
    assert got.steps() == 181 and set(got.series) == {k for k in history.series if k.startswith("up{")}


# -- errors and options --------------------------------------------------------------------------

def test_bad_times_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _backtest(capsys, "--prometheus", "http://127.0.0.1:1", "--from", "yesterday")
    assert code == 2 and "--from/--to: not an RFC 3339 time or unix seconds: 'yesterday'" in err
    code, _, err = _backtest(capsys, "--prometheus", "http://127.0.0.1:1", "--from", "now", "--to", "now-1h")
    assert code == 2 and "--to must be after --from" in err
    code, _, err = _backtest(capsys, "--from", "now-1h")
    assert code == 2 and "exactly one of --prometheus" in err


def test_bad_incidents_file_names_file_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "incidents.yaml"
    path.write_text("- model: llama\n  kind: slow\n  start: 2024-05-06T14:00:00Z\n  end: 2024-05-06T15:00:00Z\n"
                    "- model: qwen\n  kind: down\n  start: 2024-05-06T14:00:00Z\n  end: sometime\n")
    code, _, err = _backtest(capsys, "--history", str(tmp_path / "none.json"), "--incidents", str(path))
    assert code == 2
    assert err.strip() == (f"inferwatch: incidents file: {path}:8: [1].end: not an RFC 3339 time or unix seconds: "
                           "'sometime'")
    path.write_text("- model: llama\n  kind: slow\n  start: 1\n  end: 2\n  expect: '('\n")
    with pytest.raises(Exception, match=r":5: \[0\].expect: not a regular expression"):
        load_incidents(path)
    path.write_text("- model: llama\n  start: 1\n  end: 2\n")
    with pytest.raises(Exception, match=r":1: \[0\].kind: required key is missing"):
        load_incidents(path)


def test_history_file_round_trip_and_replay_with_incidents(
        history: History, rule_files: list[Path], direct: list[Episode], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "history.json.gz"
    history.save(saved)
    assert History.load(saved) == history
    with gzip.open(saved, "rt") as handle:
        assert set(json.load(handle)) == {"start", "step", "series"}
    incidents = tmp_path / "incidents.yaml"
    incidents.write_text(yaml.safe_dump([
        {"model": "llama", "kind": "ttft_regression", "start": history.start + REGRESSION[0],
         "end": history.start + REGRESSION[1], "expect": "LLMTimeToFirstTokenSLABreach", "forbid": "LLMEngine.*"},
        {"model": "qwen", "kind": "target_down", "start": history.start + OUTAGE[0],
         "end": history.start + OUTAGE[1], "expect": "LLMEngineTargetDown"},
    ]))
    code, out, err = _backtest(capsys, "--history", str(saved), "--incidents", str(incidents), "--json",
                               "--alert", "LLMTimeToFirstTokenSLABreach", "--alert", "LLMEngineTargetDown")
    assert code == 0, err
    report = json.loads(out)
    sla, down = report["incidents"]
    assert sla["detected"] and sla["alert"] == "LLMTimeToFirstTokenSLABreach"
    (episode,) = _firing(direct, "LLMTimeToFirstTokenSLABreach", "llama")
    assert sla["delay_seconds"] == episode.start - (history.start + REGRESSION[0])
    assert down["detected"] and 0 < down["delay_seconds"] <= 180 and sla["forbid_violations"] == []
    assert {e["alertname"] for e in report["episodes"]} == {"LLMTimeToFirstTokenSLABreach", "LLMEngineTargetDown"}
    code, out, _ = _backtest(capsys, "--history", str(saved), "--incidents", str(incidents),
                             "--alert", "LLMTimeToFirstTokenSLABreach", "--alert", "LLMEngineTargetDown")
    assert code == 0 and "2/2 incidents detected, 0 false episodes" in out


# -- the pieces ----------------------------------------------------------------------------------

def test_required_series_are_the_raw_names(rule_files: list[Path]) -> None:
    names = required_series(rule_files)
    assert {"up", "vllm:time_to_first_token_seconds_bucket", "vllm:request_success_total"} <= set(names)
    assert not [n for n in names if n in ("sum", "rate", "by", "le", "model_name", "group", "max")]
    assert not [n for n in names if n.startswith("model_name:") or n.startswith("model_name_le:")]
    parsed = expr_names('sum by (a, le) (rate(x{le="1.0", __name__!="q"}[5m:1m] offset 1h30m)) > on () group_left (z) '
                        'label_replace(y, "dst", "$1", "src", "(.*)") * 1e3 and bool {__name__="w"} or topk(3, v)')
    assert parsed.metrics == {"x", "y", "w", "v"} and not parsed.nameless
    assert expr_names('{job="vllm"}').nameless


def test_values_notation() -> None:
    assert values_text([1.0, 1.0, 1.0, None, None, 2.0, 3.0, 4.0, 5.0, None]) == "1.0x2 stale _ 2.0+1.0x3 stale"
    assert values_text([None, None, 0.5, float("inf"), float("nan"), 7.0, 6.0]) == "_x2 0.5 Inf NaN 7.0 6.0"
    assert values_text([10.0, 7.5, 5.0, 2.5]) == "10.0-2.5x3"
    assert parse_duration("1d1h30m") == 91_800 and parse_duration("0s") == 0 and parse_duration("1m30s") == 90


def test_failure_output_is_parsed() -> None:
    output = '''Unit Testing:  t.json
  FAILED:
    alertname: Up0, time: 1d1m,|
        exp:[],|
        got:[
            0:
              Labels:{alertname="Up0", instance="a:8000", weird="a\\"b\\\\c, d}=e"}
              Annotations:{summary="x a:8000, Labels:{no}"}
            ]
    alertname: Up0, time: 1d2m,|
        exp:[],|
        got:[
            0:
              Labels:{alertname="Up0", instance="a:8000", weird="a\\"b\\\\c, d}=e"}
              Annotations:{}
            ]
'''.replace("|", " ")  # promtool ends these lines with a space
    firing = parse_failures(output)
    assert firing[0] == ("Up0", 86_460, {"alertname": "Up0", "instance": "a:8000", "weird": 'a"b\\c, d}=e'})
    (episode,) = episodes_from(firing, 60, 1000.0)
    assert episode == Episode("Up0", (("instance", "a:8000"), ("weird", 'a"b\\c, d}=e')), 87_460, 87_580)
    with pytest.raises(BacktestError, match="rule Bad failed to evaluate"):
        parse_failures("    rule: Bad, time: 0s, err: many-to-one matching must be explicit\n")
    # several alerts at one time: every entry but the last ends with `},`
    two = '''    alertname: A, time: 2m,
        got:[
            0:
              Labels:{alertname="A", model_name="m1"}
              Annotations:{},
            1:
              Labels:{alertname="A", model_name="m2"},
              Annotations:{}
            ]
'''
    assert [labels["model_name"] for _, _, labels in parse_failures(two)] == ["m1", "m2"]


def test_group_interval_and_stale_as_promtool_does_them(tmp_path: Path) -> None:
    """promtool evaluates a `interval: 5m` group every step; `stale` ends a series at once."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [
        {"name": "slow", "interval": "5m", "rules": [{"record": "recorded_at", "expr": "vector(time())"}]},
        {"name": "alerts", "rules": [{"alert": "RecordingIsOld", "expr": "recorded_at < time()"},
                                     {"alert": "Gone", "expr": "absent(thing)", "labels": {"severity": "info"}}]}]}))
    values: list[float | None] = [1.0] * 3 + [None] * 3 + [1.0] * 4
    got = replay([rules], History(600.0, 60, {"thing": values}), jobs=2)
    assert got == [Episode("Gone", (("severity", "info"),), 780.0, 960.0)]  # `_` alone would keep it 5 minutes


def test_time_of_day_and_timestamp_values_mean_what_they_meant_live(tmp_path: Path) -> None:
    """promtool's clock starts at 1970-01-01: the replay pads to UTC midnight for `hour()` and
    shifts `*_timestamp_seconds` values by the same offset for `time() - x`."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "clock", "rules": [
        {"alert": "ThreeOClock", "expr": "hour() == 3 and on () count(thing_timestamp_seconds) > 0"},
        {"alert": "Fresh", "expr": "time() - thing_timestamp_seconds < 150"}]}]}))
    start = 1_700_000_000 // 86_400 * 86_400 + 2 * 3600 + 30 * 60  # 02:30 UTC
    stamps: list[float | None] = [start - 600.0] * 60 + [start + 3600.0] * 90  # refreshed at 03:30
    got = replay([rules], History(float(start), 60, {"thing_timestamp_seconds": stamps}), jobs=1)
    assert got == [Episode("ThreeOClock", (), start + 1800.0, start + 5400.0),
                   Episode("Fresh", (), start + 3600.0, start + 3600.0 + 180)]


def test_score_delay_and_false_episodes() -> None:
    def ep(name: str, model: str | None, start: float, end: float) -> Episode:
        labels = (("model_name", model), ("severity", "critical")) if model else (("instance", "h:1"),)
        return Episode(name, labels, start, end)

    incidents = [Incident("a", "slow", 1000, 2000, expect="Slow.*", forbid="Down"),
                 Incident("b", "down", 5000, 5600, expect="Down"),
                 Incident("c", "quiet", 8000, 9000, expect="Never")]
    episodes = [ep("SlowA", "a", 1300, 1900),  # detects a after 300 s
                ep("SlowA", "a", 2500, 2600),  # after the end but within the grace hour: not false
                ep("Down", "a", 1500, 1600),  # forbidden during a's incident
                ep("Down", None, 4900, 5200),  # no model_name: may be b's, already firing -> delay 0
                ep("SlowA", "b", 100, 200),  # false: before anything
                ep("SlowA", "a", 2000 + 3600 + 60, 7000),  # false: past the grace
                ep("Never", "d", 8500, 8600)]  # false: another model's window
    report = score(episodes, incidents, (0, 10_000))
    a, b, c = report.incidents
    assert (a.detected, a.alert, a.delay_seconds, a.forbid_violations) == (True, "SlowA", 300, ["Down"])
    assert (b.detected, b.alert, b.delay_seconds) == (True, "Down", 0)
    assert (c.detected, c.alert, c.delay_seconds) == (False, None, None)
    assert report.alerts["SlowA"].episodes == 4 and report.alerts["SlowA"].false_episodes == 2
    assert report.alerts["Down"].false_episodes == 0 and report.alerts["Never"].false_episodes == 1
    assert report.alerts["SlowA"].first_firing == 100 and report.alerts["SlowA"].last_firing == 7000
    assert report.alerts["Down"].firing_minutes == pytest.approx((100 + 300) / 60)
    data = json.loads(report.to_json())
    assert data["incidents"][0]["delay_seconds"] == 300 and len(data["episodes"]) == 7
    text = report.to_text()
    assert "2/3 incidents detected, 3 false episodes" in text and "SlowA (false)" in text
    unscored = score(episodes, None, (0, 10_000))
    assert unscored.alerts["SlowA"].false_episodes == 0 and not unscored.incidents
