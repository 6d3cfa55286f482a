"""Measure the real vLLM CPU server's latency curve for the fleet simulator.

Starts the managed vLLM (tiny local model, as tests/conftest.py does), then at each concurrency level runs
that many closed-loop clients (each sends its next request when the previous one finishes) with fixed prompt
and output lengths, using the injector's streaming client (`inferwatch.inject.client.send`). Per level it
records TTFT and TPOT medians and throughput; `inferwatch.lab.fleet.calibration.fit_curve` fits the curve
and the result, points included, goes to benchmarks/data/vllm-cpu-curve.json.

Heavy: it runs vLLM on this machine's CPUs for several minutes. Run it alone:
  .venv/bin/python benchmarks/calibrate_fleet.py [--levels 1,2,4,8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from inferwatch.inject.client import Target, send
from inferwatch.inject.schedule import Arrival
from inferwatch.lab.engine import runtime
from inferwatch.lab.engine.server import VllmServer
from inferwatch.lab.fleet.calibration import fit_curve, write_curve

OUT = Path(__file__).resolve().parent / "data" / "vllm-cpu-curve.json"
KV_TOKENS = re.compile(r"KV cache size:\s*([\d,]+)\s*tokens")


async def level(target: Target, concurrency: int, seconds: float, prompt: int, output: int) -> dict:
    """Closed loop at one concurrency: medians of TTFT and TPOT, completed requests per second."""
    results = []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            results.append(await send(session, target, Arrival(0.0, prompt, output)))

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ok = [r for r in results if r.ok and r.ttft is not None and r.tpot is not None]
    if not ok:
        raise SystemExit(f"concurrency {concurrency}: no successful request ({[r.error for r in results][:5]})")
    return {"concurrency": concurrency, "prompt_tokens": prompt, "output_tokens": output, "requests": len(ok),
            "errors": len(results) - len(ok),
            "ttft_p50_seconds": statistics.median(r.ttft for r in ok),
            "tpot_p50_seconds": statistics.median(r.tpot for r in ok),
            "throughput_requests_per_second": len(ok) / elapsed,
            "throughput_output_tokens_per_second": sum(r.output_tokens for r in ok) / elapsed}


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
                asyncio.run(level(target, c, args.warmup, args.prompt_tokens, args.output_tokens))
                point = asyncio.run(level(target, c, args.seconds, args.prompt_tokens, args.output_tokens))
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
