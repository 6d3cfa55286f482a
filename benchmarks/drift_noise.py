"""How often each drift test fires on unchanged traffic, by window size (false alarms), and how
strongly it fires on a doubled prompt length (detection). Prompt lengths are drawn with
replacement from the Azure conversation trace (tests/data), scaled by 1/10 and clamped to
[lo, 400] tokens, binned on vLLM's prompt-token buckets.

    .venv/bin/python benchmarks/drift_noise.py [--draws 200]
"""

from __future__ import annotations

import argparse
import bisect
import csv
import random
from pathlib import Path

from inferwatch.exporters.drift.stats import METHODS, compare_bins

TRACE = Path(__file__).resolve().parent.parent / "tests" / "data" / "azure-conv-300.csv"
VLLM_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, float("inf")]


def histogram(lengths: list[int]) -> list[int]:
    counts = [0] * len(VLLM_BUCKETS)
    for length in lengths:
        counts[bisect.bisect_left(VLLM_BUCKETS, length)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    base = [int(row["ContextTokens"]) for row in csv.DictReader(TRACE.open())]
    print(f"| shortest prompt | requests per window | false alarms of {args.draws} (psi / js / ks) | "
          "largest unchanged score (psi / js / ks) | smallest score, prompts doubled (psi / js / ks) |")
    print("|---|---|---|---|---|")
    for low in (1, 12):
        for n in (150, 300, 400, 600, 1000, 2000):
            alarms, worst, weakest = dict.fromkeys(METHODS, 0), dict.fromkeys(METHODS, 0.0), dict.fromkeys(METHODS, 9.9)
            for seed in range(args.draws):
                rng = random.Random(seed)

                def draw(scale: int = 1) -> list[int]:
                    return [min(400, max(low, rng.choice(base) // 10)) * scale for _ in range(n)]  # noqa: B023

                reference = histogram(draw())
                for score in compare_bins("prompt_tokens", reference, histogram(draw())):
                    alarms[score.method] += score.drifted
                    worst[score.method] = max(worst[score.method], score.score)
                for score in compare_bins("prompt_tokens", reference, histogram(draw(2))):
                    weakest[score.method] = min(weakest[score.method], score.score)
            print(f"| {low} | {n} | {' / '.join(str(alarms[m]) for m in METHODS)} | "
                  f"{' / '.join(f'{worst[m]:.3f}' for m in METHODS)} | "
                  f"{' / '.join(f'{weakest[m]:.3f}' for m in METHODS)} |")


if __name__ == "__main__":
    main()
