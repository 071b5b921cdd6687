#!/usr/bin/env python3
"""A Python peer of the Dots wire protocol, written from docs/protocol.md alone (pyzmq + struct).

Usage:
  pypeer.py samples OUT_DIR            write one message of every kind, as blobs (NAME.bin)
  pypeer.py roundtrip IN_DIR OUT_DIR   decode every IN_DIR/*.bin, re-encode it to OUT_DIR/*.bin
  pypeer.py check IN_DIR               print "NAME REASON" for every blob (REASON "ok" if accepted)
  pypeer.py echo PULL_ENDPOINT PUSH_ENDPOINT COUNT
                                       receive COUNT messages, decode, re-encode, send each back
A message is a dict: {"kind": name, "sender": int, "weights_version": int, ...kind fields}.
"""
import math
import os
import struct
import sys

MAGIC = b"DOTS"
VERSION = 3
KINDS = {1: "RolloutGroup", 2: "AssignmentRequest", 3: "AssignmentGrant", 4: "WeightsRequest",
         5: "Weights", 6: "Heartbeat", 7: "Stats", 8: "Control"}
KIND_IDS = {name: k for k, name in KINDS.items()}
BODY_FRAMES = {"RolloutGroup": 6, "AssignmentRequest": 1, "AssignmentGrant": 2, "WeightsRequest": 1,
               "Weights": 2, "Heartbeat": 3, "Stats": 3, "Control": 2}
MAX_MESSAGE = 256 << 20
MAX_G = 1024
MAX_TOKENS = 1 << 20
MAX_PROMPTS = 65536
MAX_ENTRIES = 4096
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_WEIGHTS = 64 << 30
MAX_REASON = 1024
ROLES = {1: "coordinator", 2: "learner", 3: "actor", 4: "launcher"}
WORKS = {0: "training", 1: "reference"}
WORK = {name: k for k, name in WORKS.items()}
STATES = {1: "starting", 2: "waiting", 3: "working", 4: "syncing", 5: "stopping"}
COMMANDS = {1: "pause", 2: "resume", 3: "drain", 4: "shutdown"}


class Reject(Exception):
    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def arr(code, values):
    return struct.pack(f"<{len(values)}{code}", *values)


def unarr(code, frame, n, what):
    size = struct.calcsize(code)
    if len(frame) != n * size:
        raise Reject("length_mismatch", f"{what} has {len(frame)} bytes, expected {n} x {size}")
    return list(struct.unpack(f"<{n}{code}", frame))


def finite(values, what):
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise Reject("non_finite", f"{what}[{i}] is {v}")
    return values


def fixed(frame, size, what):
    if len(frame) < size:
        raise Reject("truncated", f"{what} has {len(frame)} bytes, needs {size}")
    if len(frame) != size:
        raise Reject("length_mismatch", f"{what} has {len(frame)} bytes, expected {size}")


def limit(value, most, what):
    if value > most:
        raise Reject("oversized", f"{what} {value} > {most}")
    return value


# ---- encode -------------------------------------------------------------------------------------------

def encode_body(m):
    kind = m["kind"]
    if kind == "RolloutGroup":
        comps = m["completions"]
        lengths = [len(c["tokens"]) for c in comps]
        meta = struct.pack("<QQdQII", m["prompt_id"], m["actor_id"], m["generation_seconds"], sum(lengths),
                           len(comps), len(m["prompt_tokens"]))
        return [meta, arr("I", m["prompt_tokens"]), arr("I", lengths), arr("f", [c["reward"] for c in comps]),
                arr("I", [t for c in comps for t in c["tokens"]]),
                arr("f", [x for c in comps for x in c["log_probs"]])]
    if kind == "AssignmentRequest":
        return [struct.pack("<QII", m["actor_id"], m["capacity"], 0)]
    if kind == "AssignmentGrant":
        ids = m["prompt_ids"]
        return [struct.pack("<QIIfII", m["step"], m["group_size"], m["max_new_tokens"], m["temperature"], len(ids),
                            WORK[m.get("work", "training")]),
                arr("Q", ids)]
    if kind == "WeightsRequest":
        return [struct.pack("<Q", m["actor_id"])]
    if kind == "Weights":
        return [struct.pack("<QQII", m["total_bytes"], m["byte_offset"], m["chunk_index"], m["chunk_count"]),
                arr("f", m["payload"])]
    if kind in ("Heartbeat", "Stats"):
        role = {v: k for k, v in ROLES.items()}[m["role"]]
        state = {v: k for k, v in STATES.items()}[m["state"]]
        table = [struct.pack("<I", len(m["values"]))]
        for key in sorted(m["values"], key=lambda k: k.encode()):
            raw = key.encode()
            table.append(struct.pack("<H", len(raw)) + raw + struct.pack("<d", m["values"][key]))
        labels = [struct.pack("<I", len(m["labels"]))]
        for key in sorted(m["labels"], key=lambda k: k.encode()):
            raw, value = key.encode(), m["labels"][key].encode()
            labels.append(struct.pack("<H", len(raw)) + raw + struct.pack("<H", len(value)) + value)
        return [struct.pack("<HHId", role, state, m["pid"], m["sent_at"]), b"".join(table), b"".join(labels)]
    if kind == "Control":
        command = {v: k for k, v in COMMANDS.items()}[m["command"]]
        return [struct.pack("<HH", command, 0), m["reason"].encode()]
    raise ValueError(f"unknown kind {kind}")


def encode(m):
    """The frames of a message: header, then body."""
    body = encode_body(m)
    header = MAGIC + struct.pack("<HHQQII", VERSION, KIND_IDS[m["kind"]], m["sender"], m["weights_version"],
                                 len(body), 0)
    header += b"".join(struct.pack("<Q", len(f)) for f in body)
    return [header] + body


def encode_blob(m):
    return b"".join(encode(m))


# ---- decode -------------------------------------------------------------------------------------------

def decode_header(frame):
    if len(frame) < 4 or frame[:4] != MAGIC:
        if len(frame) < 4:
            raise Reject("truncated", "header shorter than 4 bytes")
        raise Reject("bad_magic", f"header starts with {frame[:4].hex()}")
    if len(frame) < 8:
        raise Reject("truncated", "header shorter than 8 bytes")
    version, kind_id = struct.unpack_from("<HH", frame, 4)
    if version != VERSION:
        raise Reject("unsupported_version", f"version {version}")
    if kind_id not in KINDS:
        raise Reject("unknown_kind", f"kind {kind_id}")
    kind = KINDS[kind_id]
    if len(frame) < 32:
        raise Reject("truncated", f"header has {len(frame)} bytes, needs 32")
    sender, wv, n, flags = struct.unpack_from("<QQII", frame, 8)
    if flags != 0:
        raise Reject("invalid_field", f"flags {flags}")
    if n > 16:
        raise Reject("oversized", f"{n} body frames")
    if n != BODY_FRAMES[kind]:
        raise Reject("length_mismatch", f"{kind} declares {n} body frames, has {BODY_FRAMES[kind]}")
    need = 32 + 8 * n
    if len(frame) < need:
        raise Reject("truncated", f"header has {len(frame)} bytes, needs {need}")
    if len(frame) != need:
        raise Reject("length_mismatch", f"header has {len(frame)} bytes, expected {need}")
    lengths = list(struct.unpack_from(f"<{n}Q", frame, 32))
    if len(frame) + sum(lengths) > MAX_MESSAGE:
        raise Reject("oversized", f"declares {len(frame) + sum(lengths)} bytes")
    return kind, sender, wv, lengths


def decode(frames):
    if not frames:
        raise Reject("truncated", "no frames")
    if sum(len(f) for f in frames) > MAX_MESSAGE:
        raise Reject("oversized", "message too large")
    kind, sender, wv, lengths = decode_header(frames[0])
    body = frames[1:]
    if len(body) != len(lengths):
        raise Reject("truncated" if len(body) < len(lengths) else "length_mismatch",
                     f"{len(body)} body frames, header declares {len(lengths)}")
    for i, (f, n) in enumerate(zip(body, lengths)):
        if len(f) != n:
            raise Reject("truncated" if len(f) < n else "length_mismatch", f"body frame {i}: {len(f)} vs {n}")
    m = {"kind": kind, "sender": sender, "weights_version": wv}
    m.update(DECODERS[kind](body, kind))
    return m


def d_rollout(f, kind):
    fixed(f[0], 40, "meta")
    prompt_id, actor_id, seconds, generated, g, p = struct.unpack("<QQdQII", f[0])
    limit(g, MAX_G, "G")
    limit(p, MAX_TOKENS, "prompt length")
    finite([seconds], "generation_seconds")
    if seconds < 0:
        raise Reject("invalid_field", "negative generation_seconds")
    if g < 1:
        raise Reject("invalid_field", "G = 0")
    prompt = unarr("I", f[1], p, "prompt")
    lengths = unarr("I", f[2], g, "lengths")
    rewards = finite(unarr("f", f[3], g, "rewards"), "rewards")
    for n in lengths:
        limit(n, MAX_TOKENS, "completion length")
    total = sum(lengths)
    if total != generated:
        raise Reject("length_mismatch", f"tokens_generated {generated} != {total}")
    tokens = unarr("I", f[4], total, "tokens")
    logps = finite(unarr("f", f[5], total, "log-probs"), "log-probs")
    if any(x > 1e-3 for x in logps):
        raise Reject("invalid_field", "positive log-prob")
    comps, start = [], 0
    for n, r in zip(lengths, rewards):
        comps.append({"tokens": tokens[start:start + n], "log_probs": logps[start:start + n], "reward": r})
        start += n
    return {"prompt_id": prompt_id, "actor_id": actor_id, "generation_seconds": seconds, "prompt_tokens": prompt,
            "completions": comps}


def d_request(f, kind):
    fixed(f[0], 16, "request")
    actor_id, capacity, reserved = struct.unpack("<QII", f[0])
    if reserved:
        raise Reject("invalid_field", "reserved")
    return {"actor_id": actor_id, "capacity": capacity}


def d_grant(f, kind):
    fixed(f[0], 28, "grant")
    step, g, max_new, temperature, n, work = struct.unpack("<QIIfII", f[0])
    if work not in WORKS:
        raise Reject("invalid_field", "work %d" % work)
    limit(n, MAX_PROMPTS, "prompt count")
    limit(g, MAX_G, "G")
    limit(max_new, MAX_TOKENS, "max_new_tokens")
    if g < 1:
        raise Reject("invalid_field", "G = 0")
    finite([temperature], "temperature")
    if temperature < 0:
        raise Reject("invalid_field", "negative temperature")
    return {"step": step, "group_size": g, "max_new_tokens": max_new, "temperature": temperature,
            "work": WORKS[work], "prompt_ids": unarr("Q", f[1], n, "prompt ids")}


def d_weights_request(f, kind):
    fixed(f[0], 8, "weights request")
    return {"actor_id": struct.unpack("<Q", f[0])[0]}


def d_weights(f, kind):
    fixed(f[0], 24, "weights")
    total, offset, index, count = struct.unpack("<QQII", f[0])
    limit(total, MAX_WEIGHTS, "total_bytes")
    if total % 4 or offset % 4:
        raise Reject("invalid_field", "not whole f32s")
    if count < 1 or index >= count:
        raise Reject("invalid_field", f"chunk {index} of {count}")
    if len(f[1]) % 4:
        raise Reject("length_mismatch", "payload not whole f32s")
    if offset > total or len(f[1]) > total - offset:
        raise Reject("length_mismatch", "chunk overruns total")
    payload = finite(unarr("f", f[1], len(f[1]) // 4, "payload"), "payload")
    return {"total_bytes": total, "byte_offset": offset, "chunk_index": index, "chunk_count": count,
            "payload": payload}


def d_stats(f, kind):
    fixed(f[0], 16, "stats")
    role, state, pid, sent_at = struct.unpack("<HHId", f[0])
    if role not in ROLES:
        raise Reject("invalid_field", f"role {role}")
    if state not in STATES:
        raise Reject("invalid_field", f"state {state}")
    finite([sent_at], "sent_at")
    t = f[1]
    if len(t) < 4:
        raise Reject("truncated", "stats table")
    (count,) = struct.unpack_from("<I", t, 0)
    limit(count, MAX_ENTRIES, "entries")
    if count * 10 > len(t) - 4:
        raise Reject("truncated", "stats table too short for its count")
    pos, values = 4, {}
    for _ in range(count):
        if len(t) - pos < 2:
            raise Reject("truncated", "key length")
        (n,) = struct.unpack_from("<H", t, pos)
        pos += 2
        if not 1 <= n <= 255:
            raise Reject("invalid_field", f"key of {n} bytes")
        if len(t) - pos < n:
            raise Reject("truncated", "key")
        try:
            key = t[pos:pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise Reject("invalid_field", "key not UTF-8")
        pos += n
        if len(t) - pos < 8:
            raise Reject("truncated", "value")
        (value,) = struct.unpack_from("<d", t, pos)
        pos += 8
        finite([value], key)
        if key in values:
            raise Reject("invalid_field", f"duplicate key {key}")
        values[key] = value
    if pos != len(t):
        raise Reject("length_mismatch", "bytes after the last entry")
    return {"role": ROLES[role], "state": STATES[state], "pid": pid, "sent_at": sent_at, "values": values,
            "labels": d_labels(f[2])}


def d_labels(t):
    """Frame 2 of Heartbeat/Stats: count u32, then (key_length u16, key, value_length u16, value) each."""
    if len(t) < 4:
        raise Reject("truncated", "labels")
    (count,) = struct.unpack_from("<I", t, 0)
    limit(count, MAX_LABELS, "labels")
    if count * 5 > len(t) - 4:
        raise Reject("truncated", "labels too short for their count")
    pos, labels = 4, {}

    def text(n, what):
        nonlocal pos
        if len(t) - pos < n:
            raise Reject("truncated", what)
        try:
            out = t[pos:pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise Reject("invalid_field", f"{what} not UTF-8")
        pos += n
        return out

    def length():
        nonlocal pos
        if len(t) - pos < 2:
            raise Reject("truncated", "label length")
        (n,) = struct.unpack_from("<H", t, pos)
        pos += 2
        return n

    for _ in range(count):
        n = length()
        if not 1 <= n <= 255:
            raise Reject("invalid_field", f"label key of {n} bytes")
        key = text(n, "label key")
        n = length()
        if n > MAX_LABEL_VALUE:
            raise Reject("oversized", f"label value of {n} bytes")
        value = text(n, "label value")
        if key in labels:
            raise Reject("invalid_field", f"duplicate label {key}")
        labels[key] = value
    if pos != len(t):
        raise Reject("length_mismatch", "bytes after the last label")
    return labels


def d_control(f, kind):
    fixed(f[0], 4, "control")
    command, reserved = struct.unpack("<HH", f[0])
    if reserved:
        raise Reject("invalid_field", "reserved")
    if command not in COMMANDS:
        raise Reject("invalid_field", f"command {command}")
    if len(f[1]) > MAX_REASON:
        raise Reject("oversized", "reason")
    try:
        reason = f[1].decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("invalid_field", "reason not UTF-8")
    return {"command": COMMANDS[command], "reason": reason}


DECODERS = {"RolloutGroup": d_rollout, "AssignmentRequest": d_request, "AssignmentGrant": d_grant,
            "WeightsRequest": d_weights_request, "Weights": d_weights, "Heartbeat": d_stats, "Stats": d_stats,
            "Control": d_control}


def split_blob(blob):
    """The frames of a blob (header + body frames concatenated), using the header's length table."""
    if len(blob) < 32:
        decode_header(blob)
        raise Reject("truncated", f"blob of {len(blob)} bytes")
    (n,) = struct.unpack_from("<I", blob, 24)
    size = min(len(blob), 32 + 8 * min(n, 17))
    _, _, _, lengths = decode_header(blob[:size])
    frames, pos = [blob[:size]], size
    for i, n in enumerate(lengths):
        if len(blob) - pos < n:
            raise Reject("truncated", f"blob ends inside body frame {i}")
        frames.append(blob[pos:pos + n])
        pos += n
    if pos != len(blob):
        raise Reject("length_mismatch", "bytes after the last frame")
    return frames


def decode_blob(blob):
    return decode(split_blob(blob))


# ---- samples: the same values as Samples in Tests/WireTests/CodecTests.swift ----------------------------

def samples():
    group = {"kind": "RolloutGroup", "sender": 101, "weights_version": 7, "prompt_id": 1234, "actor_id": 101,
             "prompt_tokens": [1, 2, 3, 40000], "generation_seconds": 0.75,
             "completions": [{"tokens": [5, 6, 7], "log_probs": [-0.5, -1.25, -0.0], "reward": 1.0},
                             {"tokens": [], "log_probs": [], "reward": 0.0},
                             {"tokens": [9], "log_probs": [-3.5], "reward": 0.5}]}
    return [
        group,
        {"kind": "AssignmentRequest", "sender": 101, "weights_version": 6, "actor_id": 101, "capacity": 4},
        {"kind": "AssignmentGrant", "sender": 1, "weights_version": 7, "step": 12, "prompt_ids": [3, 1, 4, 1 << 40],
         "group_size": 8, "temperature": 1.0, "max_new_tokens": 16, "work": "training"},
        {"kind": "WeightsRequest", "sender": 102, "weights_version": (1 << 64) - 1, "actor_id": 102},
        {"kind": "Weights", "sender": 1, "weights_version": 8, "total_bytes": 40, "byte_offset": 16,
         "chunk_index": 1, "chunk_count": 3, "payload": [0.5, -2.0, 1e-30, 1.401298464324817e-45]},
        {"kind": "Heartbeat", "sender": 2, "weights_version": 8, "role": "learner", "state": "working", "pid": 4242,
         "sent_at": 1.7e9, "values": {}, "labels": {}},
        {"kind": "Stats", "sender": 101, "weights_version": 8, "role": "actor", "state": "syncing", "pid": 77,
         "sent_at": 1.7e9 + 0.5, "values": {"groups_sent_total": 12.0, "phase_seconds_total.generation": 3.25,
                                             "tokens_per_s": 950.5, "ünïcode": -1.0},
         "labels": {"host": "gpu1", "run_id": "20261125-120000", "ñ": ""}},
        {"kind": "Control", "sender": 1, "weights_version": 8, "command": "drain", "reason": "checkpoint at step 100"},
        {"kind": "AssignmentGrant", "sender": 1, "weights_version": 7, "step": 12, "prompt_ids": [9, 2],
         "group_size": 4, "temperature": 0.5, "max_new_tokens": 16, "work": "reference"},
    ]


def main(argv):
    if len(argv) >= 2 and argv[0] == "samples":
        os.makedirs(argv[1], exist_ok=True)
        for i, m in enumerate(samples()):
            with open(os.path.join(argv[1], f"{i}.bin"), "wb") as f:
                f.write(encode_blob(m))
        return 0
    if len(argv) >= 3 and argv[0] == "roundtrip":
        os.makedirs(argv[2], exist_ok=True)
        for name in sorted(os.listdir(argv[1])):
            if name.endswith(".bin"):
                with open(os.path.join(argv[1], name), "rb") as f:
                    m = decode_blob(f.read())
                with open(os.path.join(argv[2], name), "wb") as f:
                    f.write(encode_blob(m))
                print(name, m["kind"])
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        for name in sorted(os.listdir(argv[1])):
            if name.endswith(".bin"):
                with open(os.path.join(argv[1], name), "rb") as f:
                    blob = f.read()
                try:
                    decode_blob(blob)
                    print(name, "ok")
                except Reject as r:
                    print(name, r.reason)
        return 0
    if len(argv) >= 4 and argv[0] == "echo":
        import zmq
        ctx = zmq.Context()
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        for s in (pull, push):
            s.setsockopt(zmq.LINGER, 2000)
        pull.connect(argv[1])
        push.connect(argv[2])
        pull.setsockopt(zmq.RCVTIMEO, 10000)
        for _ in range(int(argv[3])):
            push.send_multipart(encode(decode(pull.recv_multipart())))
        pull.close()
        push.close()
        ctx.term()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
