#!/usr/bin/env python3
"""The PyTorch peer of `dots bench model`: the same `small` Llama, the same shapes, one thread, this machine.

Hugging Face transformers' LlamaForCausalLM built from the `small` config (hidden 256, 4 layers, 8 heads of
32, 8 key/value heads, intermediate 704, tied embeddings, vocabulary 100, 128 positions), float32 on the CPU:

- sgemm peak: torch.mm on square 512 and 1024 matrices (PyTorch's own BLAS, MKL on x86), best repetition;
- training: batch 32 x 64 random tokens, cross-entropy, forward + backward + AdamW, best step;
- decode: `generate` with the KV cache, 256 sequences of 16-token prompts, 32 new tokens each, sampling at
  temperature 1 (no stop token), best batch; GFLOP/s count 2*P per generated token, as `dots bench model` does.

The three measurements run in interleaved rounds and each keeps its fastest repetition, as `dots bench model`
does. PyTorch is not a dependency of Dots; this script only measures the peer:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch transformers
    /tmp/torchenv/bin/python scripts/torch_peer_bench.py --json
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0, help="per measurement, over all rounds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = LlamaConfig(vocab_size=100, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).float()
    p_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2)  # tied: embed = LM head
    window = args.seconds / args.rounds

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(4, 100, (32, 64))

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=False)
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        opt.step()

    prompts = torch.randint(4, 100, (256, 16))
    prompts[:, 0] = 1

    def decode():
        model.eval()
        with torch.no_grad():
            out = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                 temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=32, min_new_tokens=32,
                                 pad_token_id=0, eos_token_id=None)
        assert out.shape[1] == 16 + 32

    def peak():
        best = 0.0
        for n in (512, 1024):
            a = torch.full((n, n), 0.5)
            b = a.clone()
            t0 = time.perf_counter()
            reps = 0
            while time.perf_counter() - t0 < window / 2 or reps < 3:
                s = time.perf_counter()
                torch.mm(a, b)
                dt = time.perf_counter() - s
                if reps > 0:
                    best = max(best, 2 * n ** 3 / dt / 1e9)
                reps += 1
        return best

    def best_rate(fn, tokens):
        """Tokens a second of the fastest repetition of fn within one window (at least one)."""
        best, start = 0.0, time.perf_counter()
        while True:
            t0 = time.perf_counter()
            fn()
            best = max(best, tokens / (time.perf_counter() - t0))
            if time.perf_counter() - start >= window:
                return best

    train_step()
    decode()
    r = {"threads": args.threads, "torch": torch.__version__, "matmul_parameters": p_matmul,
         "sgemm_peak_gflops": 0.0, "train_tokens_per_s": 0.0, "decode_tokens_per_s": 0.0}
    for _ in range(args.rounds):
        r["sgemm_peak_gflops"] = max(r["sgemm_peak_gflops"], peak())
        r["train_tokens_per_s"] = max(r["train_tokens_per_s"], best_rate(train_step, 32 * 64))
        r["decode_tokens_per_s"] = max(r["decode_tokens_per_s"], best_rate(decode, 256 * 32))
    r["train_gflops"] = 6 * p_matmul * r["train_tokens_per_s"] / 1e9
    r["decode_gflops"] = 2 * p_matmul * r["decode_tokens_per_s"] / 1e9
    r["train_fraction_of_peak"] = r["train_gflops"] / r["sgemm_peak_gflops"]
    r["decode_fraction_of_peak"] = r["decode_gflops"] / r["sgemm_peak_gflops"]
    if args.json:
        print(json.dumps(r, sort_keys=True))
    else:
        print(f"PyTorch {r['torch']} peer, {args.threads} thread(s), {p_matmul} matmul parameters")
        print(f"sgemm peak (torch.mm 512/1024)  {r['sgemm_peak_gflops']:8.1f} GFLOP/s")
        print(f"training  32x64, fwd+bwd+AdamW  {r['train_tokens_per_s']:8.0f} tokens/s {r['train_gflops']:7.1f} GFLOP/s"
              f"  {100 * r['train_fraction_of_peak']:5.1f}% of peak")
        print(f"decode    256 seqs, 32 new      {r['decode_tokens_per_s']:8.0f} tokens/s {r['decode_gflops']:7.1f} GFLOP/s"
              f"  {100 * r['decode_fraction_of_peak']:5.1f}% of peak")


if __name__ == "__main__":
    main()
