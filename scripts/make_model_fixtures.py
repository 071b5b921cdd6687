#!/usr/bin/env python3
"""Writes the reference fixtures under Tests/ModelTests/Fixtures/ that the Swift model tests compare against.

An independent implementation, Hugging Face transformers' LlamaForCausalLM (eager attention, float32 on the
CPU), computes logits, two losses and the gradient of each loss for every parameter of two tiny models. The
Swift tests read only the generated files; PyTorch is needed only to regenerate them:

    pip install torch transformers safetensors
    python3 scripts/make_model_fixtures.py            # from the repository root

For each model NAME it writes Tests/ModelTests/Fixtures/NAME/:
  config.json            Llama config (Hugging Face key names)
  model.safetensors      float32 weights, Hugging Face names (no lm_head.weight when tied)
  reference.safetensors  input_ids int32 [B,T], logits [B,T,V], loss [1] (mean next-token cross-entropy
                         over the B*(T-1) positions that have a target), grad.<param> for every parameter
  weighted.safetensors   w [B,T-1], loss [1] = sum(w*CE)/sum(w), grad.<param> for every parameter

Every fixture is also checked against (a) the same HF model run in float64 and (b) a from-scratch float64
implementation of the Llama forward pass written below, and the saved folder is reloaded with
LlamaForCausalLM.from_pretrained and must reproduce the logits.
"""

import copy
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT_DIR = os.path.join(ROOT, "Tests", "ModelTests", "Fixtures")

B, T = 2, 7
PROJ_STD = 0.2   # projections and embeddings: large enough for non-trivial logits
NORM_STD = 0.1   # RMSNorm weights are 1 + NORM_STD * normal
REL_TOL = 1e-4   # float32 vs float64, relative to the largest magnitude of each tensor

CONFIGS = {
    "tiny_gqa": dict(
        seed=1001, vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=64, tie_word_embeddings=False,
    ),
    "tiny_tied": dict(
        seed=2002, vocab_size=100, hidden_size=32, intermediate_size=40, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=500.0,
        max_position_embeddings=64, tie_word_embeddings=True,
    ),
}

CONFIG_KEYS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "rms_norm_eps", "rope_theta", "vocab_size", "max_position_embeddings",
               "tie_word_embeddings"]


def build_model(spec):
    cfg = LlamaConfig(
        **{k: spec[k] for k in CONFIG_KEYS},
        hidden_act="silu", pad_token_id=None, attention_bias=False, mlp_bias=False,
        attention_dropout=0.0, attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.config._attn_implementation = "eager"
    model.eval()  # no dropout anyway; eval() keeps it that way
    if spec["tie_word_embeddings"]:
        assert model.lm_head.weight is model.model.embed_tokens.weight, "lm_head is not tied"
    else:
        assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert model.model.embed_tokens.padding_idx is None  # a padding_idx would zero that row's gradient

    gen = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for name, p in model.named_parameters():  # named_parameters() lists a tied weight once
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_STD * noise)
            else:
                p.copy_(PROJ_STD * noise)
    return model, gen


def make_inputs(spec, gen):
    ids = torch.randint(0, spec["vocab_size"], (B, T), generator=gen, dtype=torch.int64)
    ids[1, 5] = ids[0, 2]  # a repeated token, so embedding-gradient rows accumulate
    ids[0, 6] = ids[0, 1]  # a repeat inside one sequence too
    w = 0.25 + 1.75 * torch.rand((B, T - 1), generator=gen, dtype=torch.float32)
    w[0, 0] = 0.0
    w[1, 3] = 0.0
    return ids, w


def token_ce(logits, ids):
    """CE[b,t] = -log softmax(logits[b,t])[ids[b,t+1]] for t in 0..T-2, shape [B, T-1]."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, V), ids[:, 1:].reshape(-1),
                           reduction="none").view(ids.shape[0], ids.shape[1] - 1)


def mean_loss(logits, ids, w):
    return token_ce(logits, ids).mean()


def weighted_loss(logits, ids, w):
    return (w.to(logits.dtype) * token_ce(logits, ids)).sum() / w.to(logits.dtype).sum()


def hf_run(model, ids, w, loss_fn):
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, use_cache=False).logits
    loss = loss_fn(logits, ids, w)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads


# ---------------------------------------------------------------------------------------------------------
# A from-scratch float64 Llama forward pass, independent of transformers, used only as a check.

def manual_logits(params, spec, ids):
    H, nh, nkv = spec["hidden_size"], spec["num_attention_heads"], spec["num_key_value_heads"]
    hd, eps = H // nh, spec["rms_norm_eps"]
    Bn, Tn = ids.shape

    def rms(x, g):
        return g * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)

    inv_freq = 1.0 / (spec["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * inv_freq[None, :]      # [T, hd/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1)                                      # [T, hd]
    sin = torch.cat([ang.sin(), ang.sin()], -1)

    def rope(x):  # x [B, T, heads, hd]; pairs are (i, i + hd/2): "rotate half", not interleaved
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos[None, :, None, :] + torch.cat([-x2, x1], -1) * sin[None, :, None, :]

    emb = params["model.embed_tokens.weight"]
    x = emb[ids]
    causal = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    for l in range(spec["num_hidden_layers"]):
        p = lambda s: params[f"model.layers.{l}.{s}"]
        h = rms(x, p("input_layernorm.weight"))
        q = rope((h @ p("self_attn.q_proj.weight").T).view(Bn, Tn, nh, hd))
        k = rope((h @ p("self_attn.k_proj.weight").T).view(Bn, Tn, nkv, hd))
        v = (h @ p("self_attn.v_proj.weight").T).view(Bn, Tn, nkv, hd)
        group = nh // nkv
        kv_of = torch.arange(nh) // group                 # query head j reads kv head j // group
        k, v = k[:, :, kv_of, :], v[:, :, kv_of, :]
        s = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf"))
        a = torch.einsum("bhij,bjhd->bihd", s.softmax(-1), v).reshape(Bn, Tn, nh * hd)
        x = x + a @ p("self_attn.o_proj.weight").T
        h = rms(x, p("post_attention_layernorm.weight"))
        g, u = h @ p("mlp.gate_proj.weight").T, h @ p("mlp.up_proj.weight").T
        x = x + (F.silu(g) * u) @ p("mlp.down_proj.weight").T
    x = rms(x, params["model.norm.weight"])
    head = emb if spec["tie_word_embeddings"] else params["lm_head.weight"]
    return x @ head.T


def manual_run(weights, spec, ids, w, loss_fn):
    params = {n: t.detach().to(torch.float64).clone().requires_grad_(True) for n, t in weights.items()}
    logits = manual_logits(params, spec, ids)
    loss = loss_fn(logits, ids, w)
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad for n, p in params.items()}


# ---------------------------------------------------------------------------------------------------------

def max_rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def compare(label, ref32, other64):
    (l32, s32, g32), (l64, s64, g64) = ref32, other64
    worst = ("logits", max_rel(l32, l64))
    loss_rel = max_rel(s32, s64)
    if loss_rel > worst[1]:
        worst = ("loss", loss_rel)
    assert set(g32) == set(g64), (sorted(g32), sorted(g64))
    for n in g32:
        r = max_rel(g32[n], g64[n])
        if r > worst[1]:
            worst = (f"grad.{n}", r)
    print(f"    float32 vs {label}: logits {max_rel(l32, l64):.2e}, loss {loss_rel:.2e}, "
          f"worst {worst[0]} {worst[1]:.2e} (max |diff| / max |ref|)")
    assert worst[1] < REL_TOL, f"{label} disagrees: {worst}"


def contiguous32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def file_metadata():
    # One key only: safetensors writes a multi-key metadata map in hash order, so files would differ byte
    # for byte between runs. The versions used are recorded in Fixtures/README.md instead.
    return {"format": "pt"}


def make(name, spec):
    print(f"{name}:")
    out = os.path.join(OUT_DIR, name)
    os.makedirs(out, exist_ok=True)
    model, gen = build_model(spec)
    ids, w = make_inputs(spec, gen)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    model64 = copy.deepcopy(model).to(torch.float64)

    results = {}
    for kind, loss_fn in [("reference", mean_loss), ("weighted", weighted_loss)]:
        r32 = hf_run(model, ids, w, loss_fn)
        compare("HF float64", r32, hf_run(model64, ids, w, loss_fn))
        compare("from-scratch float64", r32, manual_run(weights, spec, ids, w, loss_fn))
        results[kind] = r32
        print(f"    {kind} loss {r32[1].item():.6f}")

    # HF's own causal-LM loss (labels = input_ids, shifted inside) must be the unweighted mean loss.
    hf_loss = model(input_ids=ids, labels=ids, use_cache=False).loss.detach()
    print(f"    HF labels loss {hf_loss.item():.6f} vs ours {results['reference'][1].item():.6f}")
    assert abs(hf_loss.item() - results["reference"][1].item()) < 1e-5
    logits = results["reference"][0]
    print(f"    logits std {logits.std().item():.3f}, max |logit| {logits.abs().max().item():.3f}")

    config = {"model_type": "llama", **{k: spec[k] for k in CONFIG_KEYS},
              "hidden_act": "silu", "torch_dtype": "float32"}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    save_file(contiguous32(weights), os.path.join(out, "model.safetensors"), metadata=file_metadata())

    logits, loss, grads = results["reference"]
    ref = {"input_ids": ids.to(torch.int32).contiguous(), "logits": logits, "loss": loss.reshape(1)}
    ref.update({f"grad.{n}": g for n, g in grads.items()})
    save_file({k: (v if k == "input_ids" else v.to(torch.float32).contiguous()) for k, v in ref.items()},
              os.path.join(out, "reference.safetensors"), metadata=file_metadata())

    _, wloss, wgrads = results["weighted"]
    wref = {"w": w, "loss": wloss.reshape(1)}
    wref.update({f"grad.{n}": g for n, g in wgrads.items()})
    save_file(contiguous32(wref), os.path.join(out, "weighted.safetensors"), metadata=file_metadata())

    # The saved folder must load in transformers as it is and reproduce the logits.
    reloaded = LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    with torch.no_grad():
        again = reloaded(input_ids=ids, use_cache=False).logits
    stored = load_file(os.path.join(out, "reference.safetensors"))
    assert torch.equal(stored["input_ids"].long(), ids)
    d = (again - stored["logits"]).abs().max().item()
    print(f"    reloaded from_pretrained: max |logits diff| {d:.2e}")
    assert d < 1e-5
    for fname in sorted(os.listdir(out)):
        print(f"    {fname}: {os.path.getsize(os.path.join(out, fname))} bytes")


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    names = sys.argv[1:] or list(CONFIGS)
    for name in names:
        make(name, CONFIGS[name])


if __name__ == "__main__":
    main()
