"""How close a speed is to what the hardware allows: the roofline of each speed row.

Decode at batch 1 reads every weight it uses once per token and the KV cache of every earlier
position, and does about 2 FLOPs per weight: far too few to keep the arithmetic units busy,
so its limit is memory bandwidth. Prefill does the same weight reads for a whole prompt at
once, so its limit is arithmetic. For a P-token prompt and N new tokens:

* bytes read per decoded token, at the mean decode position P + (N - 1) / 2:

      B = weight_bytes + kv_bytes_per_position x (P + (N - 1) / 2)

  `weight_bytes`: the tensors one token touches, as the runtime holds them (an embedding table
  counts one row, unless the output head shares it; a simulated method's dequantized fp32
  weights count at 4 bytes each, since those are what its kernels read).
  `kv_bytes_per_position` = 2 (K and V) x layers x kv_heads x head_dim x KV element size.
* decode roofline % = 100 x B x decode_tok_s / bandwidth, with the bandwidth measured on this
  machine (`measure_bandwidth`: the better of a large copy, as STREAM counts it, and a large
  dot product, which only reads, as decode mostly does).
* FLOPs per prefill token:

      F = 2 x body_params + 4 x layers x heads x head_dim x (P - 1) / 2 + 2 x head_params / P

  (each weight of the decoder's matrices is one multiply-add per token; attention's Q K^T and
  A V cost 2 x 2 x heads x head_dim per earlier position, P/2 of them on average under the
  causal mask; the output head runs for the last prompt position only, as serving does).
* prefill roofline % = 100 x F x prefill_tok_s / peak, with the peak matmul FLOP/s measured
  here (`measure_matmul`, 2048 x 2048) in the row's compute dtype when its kernels are torch's
  float matmuls in that dtype, else in float32: integer kernels (torch.ao, torchao int8 with
  dynamic activations), bf16 kernels inside a library (bitsandbytes here) and llama.cpp's can
  then exceed 100 %, which says they beat torch's float32 matmul.

A point at 12 % of its roofline has a slow runtime; one at 80 % is limited by memory (decode)
or arithmetic (prefill), and only fewer bytes (or FLOPs) make it faster.

The machine figures are measured once per (device, its name, threads) and matmul dtype and
cached in `<state_dir>/machine/` with the date (`machine_profile`); delete the folder to
measure again. On this 2-vCPU VM the copy bandwidth measured anywhere between 46 and 82 GB/s
over one day, so a roofline % here carries that uncertainty (a factor of up to 1.8).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

# per buffer (far larger than any CPU cache) and fresh processes (see measure_bandwidth); the
# test suite sets both smaller through the environment, as it needs no precise bandwidth
BANDWIDTH_MIB = int(os.environ.get("QCOMPARE_BANDWIDTH_MIB", "1024"))
BANDWIDTH_REPEATS = 10
BANDWIDTH_PROCESSES = int(os.environ.get("QCOMPARE_BANDWIDTH_PROCESSES", "5"))
PROFILE_VERSION = 3          # bump when the measurement changes: older cached profiles are redone
MATMUL_N = {"cpu": int(os.environ.get("QCOMPARE_MATMUL_N", "2048")), "cuda": 8192}
REPEATS = 5


@dataclass(frozen=True)
class CostModel:
    """What one token costs a runtime, in the module doc's terms."""

    weight_bytes: int              # bytes of weights read per decoded token
    kv_bytes_per_position: int     # K and V bytes per cached position
    body_params: int               # weights of the decoder's matrices (output head excluded)
    head_params: int               # weights of the output head
    layers: int
    heads: int
    head_dim: int

    def decode_bytes(self, prompt: int, new_tokens: int) -> float:
        return self.weight_bytes + self.kv_bytes_per_position * (prompt + (new_tokens - 1) / 2)

    def prefill_flops(self, prompt: int) -> float:
        return (2 * self.body_params + 4 * self.layers * self.heads * self.head_dim
                * (prompt - 1) / 2 + 2 * self.head_params / prompt)


def roofline_columns(cm: CostModel | None, speed: dict, prompt: int, new_tokens: int,
                     machine: dict | None) -> dict:
    """The row's roofline columns from a cost model, the measured speed and the machine."""
    if cm is None or not speed or not machine:
        return {}
    b, f = cm.decode_bytes(prompt, new_tokens), cm.prefill_flops(prompt)
    return {
        "decode_read_mib": b / 2**20, "prefill_gflop": f / 1e9,
        "decode_roofline_pct": 100 * b * speed["decode_tok_s"] / (machine["bandwidth_gbs"] * 1e9),
        "prefill_roofline_pct": 100 * f * speed["prefill_tok_s"] / (machine["matmul_gflops"] * 1e9),
        "mem_bandwidth_gbs": machine["bandwidth_gbs"], "matmul_gflops": machine["matmul_gflops"],
        "machine_measured_at": machine["measured_at"],
    }


# ---- cost models of the two kinds of runtime ----

def torch_cost_model(model) -> CostModel:
    """A transformers model as it is held (quantized layouts through methods.storage's rules)."""
    import torch

    from qcompare.methods import storage

    cfg = model.config
    head = model.get_output_embeddings()
    head_weight = getattr(head, "weight", None)
    seen: set[int] = set()
    weight_bytes = body = 0
    for _name, module in model.named_modules():
        if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            weight_bytes += storage.packed_module_bytes(module)
            body += module.in_features * module.out_features
            continue
        if hasattr(module, "in_features") and hasattr(module, "out_features") \
                and module is not head:
            body += module.in_features * module.out_features
        for p in module.parameters(recurse=False):
            t = p.data if type(p) is torch.nn.Parameter else p
            key = id(t) if getattr(type(t), "__tensor_flatten__", None) else t.data_ptr()
            if key in seen:
                continue
            seen.add(key)
            nbytes = storage.subclass_bytes(t) + storage.attached_state_bytes(p)
            tied = head_weight is not None and p is head_weight
            if isinstance(module, torch.nn.Embedding) and not tied:
                nbytes //= max(p.shape[0], 1)                   # one row per token
            weight_bytes += nbytes
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            weight_bytes += sum(storage.plain_bytes(v) for v in meta.values() if torch.is_tensor(v))
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    kv_elem = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    head_params = head.in_features * head.out_features
    return CostModel(weight_bytes=weight_bytes,
                     kv_bytes_per_position=2 * cfg.num_hidden_layers * kv_heads * head_dim * kv_elem,
                     body_params=body, head_params=head_params, layers=cfg.num_hidden_layers,
                     heads=heads, head_dim=head_dim)


def gguf_cost_model(path: str | os.PathLike, kv_elem_bytes: int = 2) -> CostModel:
    """A GGUF file as llama.cpp runs it: tensor bytes as stored; the token embedding counts
    one row unless there is no `output.weight` (the head then reads it whole); llama.cpp's
    default KV cache is f16 (2 bytes)."""
    import gguf

    r = gguf.GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def field(name, default=None):
        f = r.fields.get(f"{arch}.{name}")
        return f.contents() if f is not None else default

    tensors = {t.name: t for t in r.tensors}
    tied = "output.weight" not in tensors
    weight_bytes = body = 0
    for name, t in tensors.items():
        n = int(t.n_bytes)
        if name == "token_embd.weight" and not tied:
            n //= int(t.shape[-1])
        weight_bytes += n
        if name.startswith("blk.") and len(t.shape) == 2:
            body += int(t.shape[0]) * int(t.shape[1])
    emb = tensors["token_embd.weight"]
    head = tensors.get("output.weight", emb)
    layers, heads = int(field("block_count")), int(field("attention.head_count"))
    kv_heads = int(field("attention.head_count_kv", heads))
    head_dim = int(field("attention.key_length", 0) or int(field("embedding_length")) // heads)
    return CostModel(weight_bytes=weight_bytes,
                     kv_bytes_per_position=2 * layers * kv_heads * head_dim * kv_elem_bytes,
                     body_params=body, head_params=int(head.shape[0]) * int(head.shape[1]),
                     layers=layers, heads=heads, head_dim=head_dim)


# ---- the machine ----

def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def copy_bandwidth(device: str = "cpu", mib: int | None = None,
                   repeats: int = BANDWIDTH_REPEATS) -> float:
    """GB/s of this process's memory traffic on two large buffers, the better of a copy (as
    STREAM's Copy counts it: 2 x buffer bytes, one read and one write) and a dot product (2 x
    buffer bytes, reads only, as decode mostly reads); each the best of `repeats` after one
    untimed pass."""
    import torch

    n = (mib or BANDWIDTH_MIB) * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for op in (lambda: dst.copy_(src), lambda: torch.dot(src, dst)):
        op()
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            op()
            _sync(device)
            best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best / 1e9


_CHILD = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
          "from qcompare.metrics.roofline import copy_bandwidth; print(copy_bandwidth('cpu'))")


def measure_bandwidth(device: str = "cpu", processes: int | None = None) -> float:
    """The machine's memory bandwidth (GB/s): on CUDA `copy_bandwidth` on the device in this
    process; on a CPU the best `copy_bandwidth` of `processes` fresh processes with this
    process's thread count. On this 2-vCPU VM a process's measurements agree to a few % with
    each other, but a fresh process gets either about 47-51 or about 77-80 GB/s (and so, we
    found, does a runtime's decode): one process is not enough."""
    processes = BANDWIDTH_PROCESSES if processes is None else processes
    if device != "cpu" or processes < 1:
        return copy_bandwidth(device)
    import subprocess
    import sys

    import torch

    repo = str(Path(__file__).resolve().parents[2])
    best = 0.0
    for _ in range(processes):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(torch.get_num_threads())],
                             capture_output=True, text=True, cwd=repo, timeout=300)
        if out.returncode == 0 and out.stdout.strip():
            best = max(best, float(out.stdout.strip().splitlines()[-1]))
    return best or copy_bandwidth(device)


def measure_matmul(device: str = "cpu", dtype: str = "float32", n: int | None = None,
                   repeats: int = REPEATS) -> float:
    """GFLOP/s of an n x n matmul in `dtype`: 2 n^3 / time, the best of `repeats` after a warm-up."""
    import torch

    n = n or MATMUL_N.get(device, 1024)
    t = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(t)
    b = torch.randn(n, n, device=device).to(t)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine_profile(state_dir: str | os.PathLike, device: str, device_name: str,
                    threads: int, dtype: str = "float32") -> dict:
    """The machine's bandwidth and its matmul peak in `dtype` (module doc), each measured once
    per (device, name, threads) and cached in one file; a dtype not yet measured is added.
    Returns {device, device_name, threads, dtype, bandwidth_gbs, matmul_gflops, measured_at}."""
    safe = "".join(c if c.isalnum() else "_" for c in device_name)[:60]
    path = Path(state_dir) / "machine" / f"{device}-{safe}-t{threads}.json"
    try:
        prof = json.loads(path.read_text())
        if prof.get("version") != PROFILE_VERSION:
            raise ValueError("measured the old way")
    except (OSError, ValueError):
        prof = {"version": PROFILE_VERSION, "device": device, "device_name": device_name,
                "threads": threads, "bandwidth_gbs": measure_bandwidth(device),
                "measured_at": _now(), "matmul_gflops": {}}
    if dtype not in prof["matmul_gflops"]:
        prof["matmul_gflops"][dtype] = measure_matmul(device, dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-pid{os.getpid()}-{path.name}")
        tmp.write_text(json.dumps(prof, indent=1))
        os.replace(tmp, path)
    return {**prof, "dtype": dtype, "matmul_gflops": prof["matmul_gflops"][dtype]}


def cached_profiles(state_dir: str | os.PathLike) -> list[dict]:
    """Every machine profile measured in this state folder (for the Results page)."""
    out = []
    for p in sorted((Path(state_dir) / "machine").glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out
