"""The speed protocol on a runtime with a scripted clock: what is timed, and when repeating
stops early."""
import pytest

from qcompare.metrics import speed


class _Clocked:
    """generate(prompt, n) takes `prefill` seconds for the first token and `steps[i]` for each
    later one, i counting calls of more than one token; the clock is speed's perf_counter."""

    def __init__(self, monkeypatch, prefill, steps):
        self.now, self.prefill, self.steps, self.calls = 0.0, prefill, list(steps), []
        monkeypatch.setattr(speed.time, "perf_counter", lambda: self.now)

    def synchronize(self):
        pass

    def generate(self, prompt, n):
        self.calls.append(n)
        self.now += self.prefill
        if n > 1:
            self.now += (n - 1) * self.steps.pop(0)
        return [0] * n


def test_times_prefill_and_decode_per_the_protocol(monkeypatch):
    rt = _Clocked(monkeypatch, prefill=0.5, steps=[0.1, 0.1, 0.2, 0.1])
    out = speed.measure_speed(rt, list(range(100)), new_tokens=11, repeats=3)
    assert rt.calls == [8, 1, 11, 1, 11, 1, 11]         # short warm-up, then (1, N) per repeat
    assert out["ttft_ms"] == pytest.approx(500) and out["prefill_tok_s"] == pytest.approx(200)
    # decode: 10 tokens after the first in 10 x step seconds -> 10, 5 and 10 tok/s
    assert out["decode_tok_s"] == pytest.approx(10) and out["decode_tok_s_min"] == pytest.approx(5)
    assert out["speed_runs"] == 3


def test_repeating_stops_once_two_repeats_agree(monkeypatch):
    rt = _Clocked(monkeypatch, prefill=0.5, steps=[0.1, 0.1, 0.1, 0.104, 0.1])
    out = speed.measure_speed(rt, [1, 2], new_tokens=5, repeats=5, spread=0.10)
    assert out["speed_runs"] == 2 and rt.calls == [5, 1, 5, 1, 5]
    # spread too wide: keeps going up to the most repeats
    rt = _Clocked(monkeypatch, prefill=0.5, steps=[0.1, 0.1, 0.2, 0.1, 0.15, 0.2])
    assert speed.measure_speed(rt, [1, 2], new_tokens=5, repeats=4, spread=0.10)["speed_runs"] == 4


def test_relative_spread():
    assert speed.relative_spread([10.0]) == 0
    assert speed.relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
