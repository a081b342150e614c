"""The generation worker: serves the generation page's requests (`qcompare.explore.generation`),
keeping each column's model built and loaded between prompts, and exits when idle.

`python -m qcompare.explore.generation_worker --state-dir DIR [--idle-exit S]`; one per state
folder (an flock on `generation/worker.lock`), started by `ensure_worker`.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from qcompare.core import locks
from qcompare.core.specs import RunSpec
from qcompare.explore import generation
from qcompare.explore.decoding import Decoding, pick
from qcompare.jobs import prepare
from qcompare.metrics.quality import kl_rows

IDLE_EXIT_S = 300.0
KEEP_MODELS = 5          # built models kept loaded between prompts (the oldest goes first)


def _lock(state_dir) -> Path:
    return generation.folder(state_dir) / "worker.lock"


def running(state_dir) -> bool:
    return locks.held(_lock(state_dir))


def ensure_worker(state_dir, idle_exit: float | None = None) -> bool:
    """Start a detached generation worker for the folder unless one serves it; True if started."""
    if running(state_dir):
        return False
    generation.folder(state_dir).mkdir(parents=True, exist_ok=True)
    idle = idle_exit if idle_exit is not None else float(os.environ.get("QCOMPARE_GEN_IDLE_EXIT_S", IDLE_EXIT_S))
    log = open(generation.folder(state_dir) / "worker.log", "ab")
    subprocess.Popen([sys.executable, "-m", "qcompare.explore.generation_worker", "--state-dir",
                      str(state_dir), "--idle-exit", str(idle)], stdout=log, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True,
                     cwd=str(Path(__file__).resolve().parents[2]))
    log.close()
    return True


def build_runtime(spec: RunSpec, state_dir, report=lambda s, f: None):
    """(runtime, tokenizer, stored weight bytes) of a RunSpec's model, built as its run builds
    it (`qcompare.jobs.prepare`: the same folder, calibration draw and method)."""
    opened = prepare.open_spec(spec, state_dir, report)
    built = prepare.build(opened, report, prepare.calibration(opened))
    return built.runtime, opened.tokenizer, built.weights_bytes


class Server:
    def __init__(self, state_dir):
        self.state_dir = Path(state_dir)
        self.models: dict[str, tuple] = {}          # spec key -> (runtime, tokenizer, bytes)

    def model(self, spec: RunSpec, report):
        key = spec.key()
        if key not in self.models:
            while len(self.models) >= KEEP_MODELS:
                self.models.pop(next(iter(self.models)))
            self.models[key] = build_runtime(spec, self.state_dir, report)
        return self.models[key]

    def capture(self, req: dict) -> None:
        """The inputs of one Linear while the model reads the request's text."""
        import torch

        rid = req["id"]
        state = {"status": "loading", "kind": "activations", "module": req["module"]}
        generation.write_state(self.state_dir, rid, state)
        runtime, tok, _ = self.model(RunSpec.from_json(req["spec_json"]), lambda s, f: None)
        module = runtime.model.get_submodule(req["module"])
        ids = tok(req["text"])["input_ids"]
        seen = []
        handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
        try:
            runtime.logits(torch.as_tensor(ids, dtype=torch.long), 1)
        finally:
            handle.remove()
        x = seen[0].reshape(-1, seen[0].shape[-1]).float().cpu().numpy()
        out = generation.folder(self.state_dir) / rid / "activations.npy"
        np.save(out, x)
        state.update(status="done", shape=list(x.shape), pieces=_pieces(tok, ids))
        generation.write_state(self.state_dir, rid, state)

    def handle(self, req: dict) -> None:
        import torch

        if req.get("kind") == "activations":
            return self.capture(req)
        rid = req["id"]
        d = Decoding(**req["decoding"])
        cols = [{"label": c["label"], "status": "waiting", "tokens": [], "text": "", "pieces": [],
                 "ttft_ms": None, "tok_s": None, "peak_rss_mib": None, "weights_mib": None,
                 "load_s": None, "kl": None, "first_divergence": None, "error": None}
                for c in req["columns"]]
        state = {"status": "loading", "prompt": req["prompt"], "columns": cols, "started": time.time()}
        steps: list[list] = []

        def save():
            generation.write_state(self.state_dir, rid, state)

        save()
        for i, c in enumerate(req["columns"]):
            col = cols[i]
            col["status"] = "loading"
            save()
            t0 = time.perf_counter()
            try:
                runtime, tok, nbytes = self.model(RunSpec.from_json(c["spec_json"]), lambda s, f: None)
            except Exception as e:  # noqa: BLE001 - one column's failure is shown in that column
                col.update(status="failed", error=f"{type(e).__name__}: {e}")
                steps.append([])
                save()
                continue
            col["load_s"], col["weights_mib"] = time.perf_counter() - t0, nbytes / 2 ** 20
            col["status"] = "generating"
            state["status"] = "generating"
            prompt = tok(req["prompt"])["input_ids"]
            gen = torch.Generator().manual_seed(d.seed)
            logits_seen = []
            with runtime.memory_phase() as peak:
                t_start = time.perf_counter()
                logits = runtime.start(prompt)
                t_first = None
                while True:
                    logits_seen.append(logits.float().cpu())
                    token = pick(logits.float().cpu(), prompt + col["tokens"], d, gen)
                    col["tokens"].append(token)
                    now = time.perf_counter()
                    if t_first is None:
                        t_first = now
                        col["ttft_ms"] = (now - t_start) * 1000
                    elif now > t_first:
                        col["tok_s"] = (len(col["tokens"]) - 1) / (now - t_first)
                    col["text"] = visible_text(tok, col["tokens"])
                    save()
                    if (len(col["tokens"]) >= d.max_new_tokens or token == tok.eos_token_id
                            or generation.cancelled(self.state_dir, rid)):
                        break
                    logits = runtime.advance(token)
            col["peak_rss_mib"] = peak.result.get("peak_rss_mib")
            col["pieces"] = _pieces(tok, col["tokens"])
            steps.append(logits_seen)
            if generation.cancelled(self.state_dir, rid):
                col["status"] = "cancelled"
                state["status"] = "cancelled"
                save()
                return
            col["status"] = "done"
            save()
        self._score(req, cols, steps)
        state["status"] = "done"
        save()

    def _score(self, req, cols, steps) -> None:
        """Each quantized column's KL from the baseline at every position it generated, and
        where its tokens first depart from the baseline's (module doc of qcompare.explore.generation)."""
        import torch

        base = cols[0]
        if base["status"] != "done":
            return
        runtime, tok, _ = self.model(RunSpec.from_json(req["columns"][0]["spec_json"]), lambda s, f: None)
        prompt = tok(req["prompt"])["input_ids"]
        base["kl"] = [0.0] * len(base["tokens"])
        for col, logits_seen in zip(cols[1:], steps[1:]):
            if col["status"] != "done" or not col["tokens"]:
                continue
            seq = torch.as_tensor(prompt + col["tokens"][:-1], dtype=torch.long)
            base_rows = runtime.logits(seq, len(col["tokens"]))
            col["kl"] = kl_rows(base_rows, torch.stack(logits_seen)).tolist()
            col["first_divergence"] = generation.first_divergence(base["tokens"], col["tokens"])


def visible_text(tok, tokens: list[int]) -> str:
    """The decoded tokens without a trailing partial character: a byte-level token can end inside
    a multi-byte UTF-8 character (any Japanese one), which decodes as U+FFFD until the token
    that completes it arrives; the stream shows whole characters only."""
    return tok.decode(tokens, skip_special_tokens=True).rstrip("\ufffd")


def _pieces(tok, tokens: list[int]) -> list[str]:
    """The text each token adds (a token that ends inside a multi-byte character adds "" and
    the next one the whole character)."""
    out, prev = [], ""
    for i in range(len(tokens)):
        text = tok.decode(tokens[:i + 1], skip_special_tokens=True)
        if text.endswith("\ufffd"):
            out.append("")
            continue
        out.append(text[len(prev):] if text.startswith(prev) else text)
        prev = text
    return out


def serve(state_dir, idle_exit: float = IDLE_EXIT_S) -> int:
    """Serve requests until none came for `idle_exit` seconds; 0, or 3 when another worker
    already serves the folder."""
    path = _lock(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 3
        server, last = Server(state_dir), time.monotonic()
        while True:
            reqs = generation.pending(state_dir)
            if not reqs:
                if time.monotonic() - last > idle_exit:
                    return 0
                time.sleep(0.1)
                continue
            req = reqs[0]
            try:
                server.handle(req)
            except Exception as e:  # noqa: BLE001 - a failed request is a readable state
                st = generation.read_state(state_dir, req["id"]) or {"columns": []}
                st.update(status="failed", error=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc())
                generation.write_state(state_dir, req["id"], st)
            last = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qcompare-generation-worker")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--idle-exit", type=float, default=IDLE_EXIT_S)
    args = ap.parse_args(argv)
    np.seterr(all="ignore")
    return serve(args.state_dir, args.idle_exit)


if __name__ == "__main__":
    raise SystemExit(main())
