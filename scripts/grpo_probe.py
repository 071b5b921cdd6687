#!/usr/bin/env python3
"""An independent GRPO loop in PyTorch, to check Dots' learning curve against.

It loads a Dots checkpoint with transformers' LlamaForCausalLM (the checkpoint is HF-Llama shaped),
reads the suite from `dots tasks export` JSONL files, and trains plain GRPO: B prompts drawn uniformly,
G samples each at temperature T with transformers' own `generate`, exact-match rewards, per-group
advantages (r - mean) / (std + eps), the on-policy policy-gradient loss averaged over completion tokens
(one AdamW step per batch, or several mini-batches with the PPO-clip ratio when --mini-batch < B),
global-norm clipping. It shares no code with Dots. Held-out accuracy is printed at T=1 and greedy.

    dots tasks export --split train --out /tmp/train.jsonl
    dots tasks export --split test --out /tmp/test.jsonl
    python3 scripts/grpo_probe.py --checkpoint checkpoints/base --train /tmp/train.jsonl \
        --test /tmp/test.jsonl --steps 200 --lr 5e-5

Needs torch and transformers (not used by CI).
"""
import argparse, json, math, random, sys, time

import torch
from transformers import LlamaForCausalLM

BOS, EOS, PAD = 1, 2, 0


def encode(text):
    ids = [BOS]
    for ch in text:
        o = ord(ch)
        ids.append(o - 32 + 4 if 32 <= o <= 126 else (99 if ch == "\n" else 3))
    return ids


def decode(ids):
    out = []
    for i in ids:
        if i == EOS:
            break
        k = i - 4
        if 0 <= k < 95:
            out.append(chr(k + 32))
        elif k == 95:
            out.append("\n")
    return "".join(out)


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def left_pad(seqs):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, n - len(s):] = torch.tensor(s)
        mask[i, n - len(s):] = 1
    return ids, mask


@torch.no_grad()
def sample(model, prompts, temperature, max_new):
    ids, mask = left_pad([encode(p) for p in prompts])
    kw = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else dict(do_sample=False)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, eos_token_id=EOS,
                         pad_token_id=PAD, **kw)
    gen = out[:, ids.shape[1]:].tolist()
    completions = []
    for g in gen:
        toks = []
        for t in g:
            toks.append(t)
            if t == EOS:
                break
        completions.append(toks)
    return completions


def evaluate(model, test, temperature, max_new, chunk=250):
    right = 0
    for i in range(0, len(test), chunk):
        part = test[i:i + chunk]
        comps = sample(model, [p["prompt"] for p in part], temperature, max_new)
        right += sum(decode(c) == p["answer"] for c, p in zip(comps, part))
    return right / len(test)


def token_logprobs(model, prompts, completions):
    """log p(completion token | prefix) for every completion token, with a mask; left-padded rows."""
    seqs = [encode(p) + c for p, c in zip(prompts, completions)]
    ids, mask = left_pad(seqs)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    cmask = torch.zeros_like(logp)
    n = ids.shape[1]
    for i, c in enumerate(completions):
        cmask[i, n - 1 - len(c):] = 1  # the last len(c) target positions are the completion's
    return logp, cmask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--mini-batch", type=int, default=0, help="groups per optimizer step; 0 = whole batch")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(a.threads)
    model = LlamaForCausalLM.from_pretrained(a.checkpoint, torch_dtype=torch.float32)
    model.generation_config.top_k = None
    train, test = load(a.train), load(a.test)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    log = open(a.out, "w") if a.out else None
    t0 = time.time()

    def report(step, extra):
        model.eval()
        acc1 = evaluate(model, test, 1.0, a.max_new)
        acc0 = evaluate(model, test, 0.0, a.max_new)
        row = dict(step=step, time=time.time() - t0, test_t1=acc1, test_greedy=acc0, **extra)
        print(json.dumps(row), flush=True)
        if log:
            log.write(json.dumps(row) + "\n")
            log.flush()

    report(0, {})
    rewards_window = []
    for step in range(1, a.steps + 1):
        model.eval()
        batch = random.sample(train, a.batch)
        prompts = [p["prompt"] for p in batch for _ in range(a.group)]
        comps = sample(model, prompts, a.temperature, a.max_new)
        r = torch.tensor([float(decode(c) == batch[i // a.group]["answer"]) for i, c in enumerate(comps)])
        rg = r.view(a.batch, a.group)
        adv = ((rg - rg.mean(1, keepdim=True)) / (rg.std(1, unbiased=False, keepdim=True) + 1e-6)).view(-1)
        rewards_window.append(r.mean().item())
        model.train()
        mb = a.mini_batch or a.batch
        with torch.no_grad():
            old, _ = token_logprobs(model, prompts, comps)
        for s in range(0, a.batch, mb):
            rows = slice(s * a.group, (s + mb) * a.group)
            logp, cmask = token_logprobs(model, prompts[rows], comps[rows])
            ratio = torch.exp(logp - old[rows][:, -logp.shape[1]:])
            A = adv[rows][:, None]
            obj = torch.minimum(ratio * A, ratio.clamp(0.8, 1.2) * A)
            loss = -(obj * cmask).sum() / cmask.sum()
            opt.zero_grad()
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        if step % a.eval_every == 0:
            report(step, dict(train_reward=sum(rewards_window) / len(rewards_window), grad_norm=float(gn)))
            rewards_window = []


if __name__ == "__main__":
    sys.exit(main())
