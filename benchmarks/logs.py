"""Engine log classification: lines/s for classify + template on one core, and memory over many lines.

The mix is built (seeded) from the real lines in tests/data/logs/: the vLLM CPU demo run's INFO
lines (periodic stats, access lines, start-up) as ~96% of the traffic, corpus warnings and errors
(numbers re-drawn per line so they vary like a real log) as ~4%, and 0.05% of error lines with
a random word in them, each a new template, so the store keeps evicting. Throughput is the median
of 5 runs over the same lines; memory is RSS and the store's size sampled as lines are fed.

    .venv/bin/python benchmarks/logs.py            # 10M lines for the memory run
    .venv/bin/python benchmarks/logs.py --quick    # 1M
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import string
import time
from pathlib import Path

from inferwatch.exporters.logs.rules import Classifier
from inferwatch.exporters.logs.templates import TemplateStore, template

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "logs"
_NUMBER = re.compile(r"\d+")


def _corpus_errors() -> list[str]:
    lines = []
    for raw in (DATA / "vllm.tsv").read_text(encoding="utf-8").splitlines():
        if raw and not raw.startswith("#"):
            expected, _, line = raw.split("\t", 2)
            if expected != "-":
                lines.append(line)
    return lines


def build_mix(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    info = (DATA / "vllm-cpu-demo.log").read_text(encoding="utf-8").splitlines()
    errors = _corpus_errors()
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.0005:
            word = "".join(rng.choices(string.ascii_lowercase, k=8))
            out.append(f"(APIServer pid=1) ERROR 12-02 13:05:01 [x.py:1] unexpected {word} state")
        elif roll < 0.04:
            out.append(_NUMBER.sub(lambda m: str(rng.randint(0, 99999)), rng.choice(errors)))
        else:
            out.append(rng.choice(info))
    return out


def run(classifier: Classifier, store: TemplateStore, lines: list[str]) -> int:
    counted = 0
    now = time.time()
    for line in lines:
        verdict = classifier.classify(line)
        if verdict is not None:
            store.add("vllm-0", template(line), verdict.klass, verdict.severity, now)
            counted += 1
    return counted


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines fed in the memory run")
    parser.add_argument("--quick", action="store_true", help="1M lines for the memory run")
    parser.add_argument("--throughput-lines", type=int, default=200_000)
    args = parser.parse_args()
    total = 1_000_000 if args.quick else args.lines
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    classifier = Classifier.for_engine("vllm")
    lines = build_mix(args.throughput_lines)
    rates = []
    for _ in range(5):
        store = TemplateStore()
        start = time.perf_counter()
        counted = run(classifier, store, lines)
        rates.append(len(lines) / (time.perf_counter() - start))
    print(f"throughput: {len(lines):,} lines, {counted:,} counted ({counted / len(lines):.1%}), "
          f"median {statistics.median(rates):,.0f} lines/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    info_only = [line for line in lines if classifier.classify(line) is None][:100_000]
    start = time.perf_counter()
    for line in info_only:
        classifier.classify(line)
    print(f"uncounted lines only: {len(info_only) / (time.perf_counter() - start):,.0f} lines/s")

    store = TemplateStore()
    chunk = 100_000
    step = 1_000_000 if total >= 5_000_000 else 100_000
    print("\n| lines fed | RSS MB | templates held |\n|---|---|---|")
    fed, seed = 0, 2
    while fed < total:
        batch = build_mix(chunk, seed)
        seed += 1
        run(classifier, store, batch)
        fed += chunk
        if fed % step == 0:
            print(f"| {fed:,} | {rss_mb():.1f} | {store.size('vllm-0')} |", flush=True)


if __name__ == "__main__":
    main()
