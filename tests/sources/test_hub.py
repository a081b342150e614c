"""Whether the hub can be reached is decided at once, and offline settings are honoured."""
import time

from qcompare.sources import hub


def test_a_closed_endpoint_is_unreachable_within_the_timeout(monkeypatch):
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    hub.reachable.cache_clear()
    t0 = time.monotonic()
    assert hub.reachable() is False
    assert time.monotonic() - t0 < 3
    hub.reachable.cache_clear()


def test_an_offline_setting_is_offline_without_trying(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("no connection may be tried")))
    hub.reachable.cache_clear()
    assert hub.reachable() is False
    hub.reachable.cache_clear()
