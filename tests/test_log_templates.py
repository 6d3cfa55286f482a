"""Templates collapse one problem to one key; the store stays bounded; prompts never survive."""

from __future__ import annotations

import random
import threading

from inferwatch.exporters.logs import privacy
from inferwatch.exporters.logs.rules import Classifier
from inferwatch.exporters.logs.templates import TemplateStore, template

SECRET = "my password is hunter2"


def _error_line(kind: int, rng: random.Random) -> str:
    ts = f"{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    proc = rng.choice([f"(APIServer pid={rng.randint(1, 99999)}) ",
                       f"(EngineCore_DP{rng.randint(0, 7)} pid={rng.randint(1, 99999)}) ", ""])
    where = f"[{rng.choice(['core.py', 'serving_chat.py'])}:{rng.randint(1, 2000)}]"
    if kind == 0:
        return (f"{proc}ERROR {ts} {where} torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                f"{rng.uniform(1, 900):.2f} MiB. GPU {rng.randint(0, 7)} has a total capacity of "
                f"{rng.uniform(20, 80):.2f} GiB")
    if kind == 1:
        return (f"{proc}WARNING {ts} {where} Sequence group {rng.randint(1, 10**6)} is preempted by "
                f"PreemptionMode.RECOMPUTE mode because there is not enough KV cache space. "
                f"total_num_cumulative_preemption={rng.randint(1, 10**5)}")
    if kind == 2:
        return (f'{proc}INFO:     10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}:'
                f'{rng.randint(1024, 65535)}'
                f' - "POST /v1/chat/completions HTTP/1.1" 500 Internal Server Error')
    if kind == 3:
        return (f"{proc}ERROR {ts} {where} Failed to load adapter "
                f"'{rng.choice(['a', 'bb', 'it s'])}{rng.randint(0, 999)}' "
                f"from /models/lora/{rng.randint(0, 99)}/adapter_{rng.randint(0, 9)}.safetensors after "
                f"{rng.randint(1, 900)}ms "
                f"for request chatcmpl-{rng.getrandbits(64):016x} (0x{rng.getrandbits(32):08x})")
    return (f"[rank{rng.randint(0, 7)}]:[E{rng.randint(1000, 1231)} "
            f"{rng.randint(10, 23)}:00:00.{rng.randint(0, 10**9)} "
            f"ProcessGroupNCCL.cpp:{rng.randint(500, 700)}] [Rank {rng.randint(0, 7)}] Watchdog caught "
            f"collective operation "
            f"timeout: WorkNCCL(SeqNum={rng.randint(1, 10**6)}, OpType=ALLREDUCE, NumelIn={rng.randint(1, 10**9)}, "
            f"Timeout(ms)=600000) ran for {rng.randint(600000, 700000)} milliseconds before timing out.")


def _info_line(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return (f"(APIServer pid={rng.randint(1, 9999)}) INFO 12-02 13:02:33 [loggers.py:335] Engine 000: Avg "
                f"prompt throughput: "
                f"{rng.uniform(0, 900):.1f} tokens/s, Avg generation throughput: {rng.uniform(0, 900):.1f} "
                f"tokens/s, Running: "
                f"{rng.randint(0, 9)} reqs, Waiting: 0 reqs, GPU KV cache usage: {rng.uniform(0, 99):.1f}%")
    return f'INFO:     127.0.0.1:{rng.randint(1024, 65535)} - "POST /v1/completions HTTP/1.1" 200 OK'


def test_ten_thousand_generated_lines_make_exactly_five_templates():
    rng = random.Random(7)
    classifier, store = Classifier.for_engine("vllm"), TemplateStore()
    counted = 0
    for i in range(10_000):
        line = _error_line(rng.randrange(5), rng) if rng.random() < 0.2 else _info_line(rng)
        verdict = classifier.classify(line)
        if verdict:
            store.add("vllm-0", template(line), verdict.klass, verdict.severity, float(i))
            counted += 1
    top = store.top("vllm-0", n=50)
    assert len(top) == 5, [s.template for s in top]
    assert sum(s.count for s in top) == counted
    assert {s.klass for s in top} == {"oom_gpu", "preemption", "http_5xx", "other_error", "nccl"}


def test_template_masks_variables_and_strips_the_prefix():
    a = template("(EngineCore_0 pid=123) ERROR 12-02 13:05:01 [engine.py:123] Worker 3 at 10.0.0.1:8000 failed "
                 "after 1.5s")
    b = template("ERROR 01-30 02:00:59 [engine.py:9] Worker 11 at 10.0.0.2:9000 failed after 30s")
    assert a == b == "Worker <num> at <ip> failed after <dur>"


def test_eviction_keeps_the_store_at_its_bound_with_space_saving_counts():
    store = TemplateStore(max_per_source=10)
    for i in range(5):  # each seen more than N / max_per_source times: Space-Saving guarantees them a slot
        for _ in range(1000 + i):
            store.add("s", f"heavy {i}", "other_error", "error", 0.0)
    for i in range(1000):
        _stats, new = store.add("s", f"rare {i}", "other_error", "error", float(i))
        assert new
        assert store.size("s") <= 10
    top = store.top("s", n=10)
    assert len(top) == 10
    expected = [(f"heavy {i}", 1000 + i, 0) for i in (4, 3, 2, 1, 0)]
    assert [(s.template, s.count, s.error_bound) for s in top[:5]] == expected
    rare = [s for s in top if s.template.startswith("rare")]
    assert rare and all(s.error_bound == s.count - 1 for s in rare)
    assert len(store.snapshot()["s"]) == 10


def test_new_in_version_only_after_a_change():
    store = TemplateStore()
    store.set_version("s", "v1", 0.0)
    first, _ = store.add("s", "old problem", "nccl", "critical", 1.0)
    assert first.new_in_version is None
    store.set_version("s", "v1", 2.0)
    assert store.add("s", "still v1", "nccl", "critical", 3.0)[0].new_in_version is None
    store.set_version("s", "v2", 4.0)
    again, new = store.add("s", "old problem", "nccl", "critical", 5.0)
    assert (again.new_in_version, new, again.count) == (None, False, 2)
    fresh, new = store.add("s", "new problem", "oom_gpu", "critical", 6.0)
    assert (fresh.new_in_version, new) == ("v2", True)
    assert store.snapshot()["s"][0]["template"] == "old problem"


def test_store_is_safe_across_threads():
    store = TemplateStore(max_per_source=50)

    def feed(source: str) -> None:
        for i in range(5000):
            store.add(source, f"t{i % 80}", "other_error", "error", float(i))

    threads = [threading.Thread(target=feed, args=(f"src{i % 2}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.size("src0") == store.size("src1") == 50
    assert sum(s.count for s in store.top("src0", 50)) == 10_000


REQUEST_LINES = [
    # vLLM's request logging (older releases log the prompt with the request, INFO level)
    f"(APIServer pid=1) INFO 12-02 13:05:01 [logger.py:39] Received request cmpl-3f2a9c: prompt: '{SECRET}', "
    "params: SamplingParams(n=1, temperature=0.7, max_tokens=16), prompt_token_ids: [1, 1619, 3736, 338], "
    "lora_request: None.",
    f'(APIServer pid=1) INFO 12-02 13:05:01 [logger.py:39] Received request chatcmpl-9d1: prompt: "ERROR it\'s '
    f'{SECRET} \\"x\\"", '
    "params: SamplingParams(n=1), prompt_token_ids: [1, 2, 3], lora_request: None.",
    f"(APIServer pid=1) INFO 12-02 13:05:02 [logger.py:60] Generated response cmpl-3f2a9c: output: 'ERROR {SECRET}', "
    "output_token_ids: [450, 338], finish_reason: stop",
    f"(APIServer pid=1) DEBUG 12-02 13:05:01 [request_logger.py:55] Request cmpl-1 details: prompt: 'CRITICAL: "
    f"{SECRET}', "
    "prompt_token_ids: [1, 2], prompt_embeds shape: None.",
    f'(APIServer pid=1) DEBUG 12-02 13:05:01 [request_logger.py:75] Request cmpl-1 JSON body: {{"model": "m", '
    f'"messages": [{{"role": "user", "content": "ERROR CUDA out of memory {SECRET}"}}]}}',
    f'(APIServer pid=1) ERROR 12-02 13:05:01 [serving.py:10] bad request body '
    f'{{"prompt": "CUDA error: {SECRET}", "max_tokens": 5}}',
    f'2023-05-30T10:39:23.156417Z ERROR generate{{request=GenerateRequest {{ inputs: "{SECRET} OutOfMemoryError", '
    "parameters: GenerateParameters { max_new_tokens: 20 } }}: text_generation_router: Request failed",
    f"(APIServer pid=1) INFO 12-02 13:05:01 [logger.py:39] Received request cmpl-7: prompt: '{SECRET} and the "
    f"line was cut",
]


def test_prompt_and_output_text_is_never_kept():
    classifiers = [Classifier.for_engine(e) for e in ("vllm", "sglang", "tgi")]
    store = TemplateStore()
    for line in REQUEST_LINES:
        redacted, carried = privacy.redact(line)
        assert carried and "hunter2" not in redacted and privacy.REDACTED in redacted, line
        assert "hunter2" not in template(line)
        for classifier in classifiers:
            verdict = classifier.classify(line)
            assert verdict is None or "hunter2" not in repr(verdict)
            if verdict:
                store.add("s", template(line), verdict.klass, verdict.severity, 0.0)
    assert "hunter2" not in repr(store.snapshot())


def test_prompt_content_does_not_make_an_error():
    vllm = Classifier.for_engine("vllm")
    for line in REQUEST_LINES[:4]:  # INFO/DEBUG lines whose prompt or output says ERROR, CRITICAL, CUDA ...
        assert vllm.classify(line) is None, line
    # a real error line that merely carries a prompt is classified by its own words, not the prompt's
    assert vllm.classify(REQUEST_LINES[5]).rule == "level"
    assert Classifier.for_engine("tgi").classify(REQUEST_LINES[6]).rule == "level"


def test_lines_without_text_are_untouched():
    line = "(APIServer pid=1) INFO 12-02 13:02:33 [loggers.py:335] Engine 000: Avg prompt throughput: 39.1 tokens/s"
    assert privacy.redact(line) == (line, False)
    params = "Received request cmpl-1: params: SamplingParams(n=1, temperature=0.7), lora_request: None."
    assert privacy.redact(params) == (params, False)
