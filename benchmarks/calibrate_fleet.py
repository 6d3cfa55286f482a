"""Measure the real vLLM CPU server's latency curve for the fleet simulator.

Starts the managed vLLM (tiny local model, as tests/conftest.py does), then at each concurrency level runs
that many closed-loop clients (each sends its next request when the previous one finishes) with fixed prompt
and output lengths, measured as `inferwatch recommend sweep` does (`inferwatch.recommend.sweep.measure_level`).
Per level it records TTFT and TPOT medians and throughput; `inferwatch.lab.fleet.calibration.fit_curve` fits the curve
and the result, points included, goes to benchmarks/data/vllm-cpu-curve.json.

Heavy: it runs vLLM on this machine's CPUs for several minutes. Run it alone:
  .venv/bin/python benchmarks/calibrate_fleet.py [--levels 1,2,4,8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from inferwatch.inject.client import Target
from inferwatch.lab.engine import runtime
from inferwatch.lab.engine.server import VllmServer
from inferwatch.lab.fleet.calibration import fit_curve, write_curve
from inferwatch.recommend.sweep import measure_level

OUT = Path(__file__).resolve().parent / "data" / "vllm-cpu-curve.json"
KV_TOKENS = re.compile(r"KV cache size:\s*([\d,]+)\s*tokens")


def level(target: Target, concurrency: int, seconds: float, prompt: int, output: int) -> dict:
    """Closed loop at one concurrency (`inferwatch recommend sweep`'s measurement): medians and p95s of
    TTFT and TPOT, completed requests per second."""
    point = asyncio.run(measure_level(target, concurrency, seconds, prompt, output))
    if not point.requests:
        raise SystemExit(f"concurrency {concurrency}: no successful request ({point.errors} errors)")
    return {**asdict(point), "prompt_tokens": prompt, "output_tokens": output}


def kv_cache_tokens(log: Path, fallback: int) -> int:
    try:
        found = KV_TOKENS.findall(log.read_text(errors="replace"))
    except OSError:
        found = []
    return int(found[-1].replace(",", "")) if found else fallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,4,8", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=15.0, help="unmeasured seconds before each level")
    parser.add_argument("--prompt-tokens", type=int, default=192)
    parser.add_argument("--output-tokens", type=int, default=48)
    parser.add_argument("--max-num-seqs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    runtime.ensure_venv()
    model = runtime.ensure_tiny_model(0)
    with tempfile.TemporaryDirectory(prefix="calibrate-fleet-") as tmp:
        server = VllmServer(model, Path(tmp), max_num_seqs=args.max_num_seqs)
        server.start()
        try:
            target = Target(server.base_url, server.served_model_name, timeout=300)
            points = []
            for c in levels:
                level(target, c, args.warmup, args.prompt_tokens, args.output_tokens)
                point = level(target, c, args.seconds, args.prompt_tokens, args.output_tokens)
                print(point, flush=True)
                points.append(point)
            kv = kv_cache_tokens(server.log_path, fallback=server.max_model_len * args.max_num_seqs)
        finally:
            server.stop()
    curve = fit_curve(points, "vllm-cpu", f"measured by benchmarks/calibrate_fleet.py on {time.strftime('%Y-%m-%d')}",
                      max_num_seqs=args.max_num_seqs, kv_cache_tokens=kv, max_model_len=server.max_model_len)
    write_curve(args.out, curve, points, {"engine": f"{runtime.VLLM_DIST} {runtime.VLLM_VERSION}",
                                          "model": "tiny random-weight Llama (inferwatch.lab.engine)",
                                          "kv_cache_bytes": server.kv_cache_bytes, "levels": levels,
                                          "seconds_per_level": args.seconds})
    print(f"wrote {args.out}: {curve}")


if __name__ == "__main__":
    main()
