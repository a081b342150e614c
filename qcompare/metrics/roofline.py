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
  here (`measure_matmul`, up to 2048 x 2048) in the row's compute dtype when its kernels are torch's
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
from pathlib import Path

# per buffer (far larger than any CPU cache) and fresh processes (see measure_bandwidth); the
# test suite sets both smaller through the environment, as it needs no precise bandwidth
BANDWIDTH_MIB = int(os.environ.get("QCOMPARE_BANDWIDTH_MIB", "512"))
BANDWIDTH_REPEATS = 5
BANDWIDTH_PROCESSES = int(os.environ.get("QCOMPARE_BANDWIDTH_PROCESSES", "3"))
PROFILE_VERSION = 4          # bump when the measurement changes: older cached profiles are redone
MATMUL_N = {"cpu": int(os.environ.get("QCOMPARE_MATMUL_N", "2048")), "cuda": 8192}
REPEATS = 5


def roofline_columns(cm, speed: dict, prompt: int, new_tokens: int,
                     machine: dict | None) -> dict:
    """The row's roofline columns from a cost model (`qcompare.runtime.cost.CostModel`: the
    bytes B and FLOPs F of the module doc), the measured speed and the machine."""
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


def numpy_bandwidth(mib: int | None = None, repeats: int = BANDWIDTH_REPEATS) -> float:
    """`copy_bandwidth` on the CPU with numpy instead of torch (the same copy and dot product,
    the best of `repeats` after one untimed pass each): a fresh process that imports numpy
    starts in a tenth of a second, one that imports torch in about 3 s, and the measurement
    itself takes well under a second. Measured here against torch's in fresh processes: within
    the spread between processes (23.2-24.7 against 24.5 GB/s)."""
    import numpy as np

    n = (mib or BANDWIDTH_MIB) * 2**20 // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for op in (lambda: np.copyto(dst, src), lambda: np.dot(src, dst)):
        op()
        for _ in range(repeats):
            t0 = time.perf_counter()
            op()
            best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best / 1e9


# numpy's BLAS (the dot product) gets the job's thread count, as torch's kernels do
_CHILD = ("import os, sys; os.environ['OPENBLAS_NUM_THREADS'] = os.environ['OMP_NUM_THREADS'] = "
          "sys.argv[1]; from qcompare.metrics.roofline import numpy_bandwidth; "
          "print(numpy_bandwidth())")


def measure_bandwidth(device: str = "cpu", processes: int | None = None) -> float:
    """The machine's memory bandwidth (GB/s): on CUDA `copy_bandwidth` on the device in this
    process; on a CPU the best `numpy_bandwidth` of `processes` fresh processes with this
    process's thread count (about 1 s each: it is on the first job's path). On one 2-vCPU VM a
    process's measurements agreed to a few % with each other, but a fresh process got either
    about 47-51 or about 77-80 GB/s (and so, we found, did a runtime's decode): one process is
    not enough."""
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


MATMUL_LONG_S = 0.1         # a matmul this long is large enough to measure the peak


def measure_matmul(device: str = "cpu", dtype: str = "float32", n: int | None = None,
                   repeats: int = REPEATS) -> float:
    """GFLOP/s of an n x n matmul in `dtype`: 2 n^3 / time, the best of `repeats` after a warm-up.
    Without `n`, the size doubles from 256 up to MATMUL_N until one matmul takes MATMUL_LONG_S:
    a CPU without bf16 or fp16 units emulates them about 100x slower than fp32, and a 2048 x 2048
    matmul in bf16 then took over 30 s (five minutes for the measurement, on the first bf16 row's
    critical path), while at its largest size every fast dtype is measured as before."""
    import torch

    t = getattr(torch, dtype)
    cap = n or MATMUL_N.get(device, 1024)
    n = n or min(256, cap)
    warm = torch.ones(64, 64, device=device, dtype=t)
    warm @ warm                       # a dtype's first matmul sets its kernels up (seconds)
    while True:
        a = torch.randn(n, n, device=device).to(t)
        b = torch.randn(n, n, device=device).to(t)
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if n >= cap or time.perf_counter() - t0 >= MATMUL_LONG_S:
            break
        n *= 2
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
