"""Opening the app under AppTest on a state folder, as every page test does."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def page_on(state, page: str | None, monkeypatch, query: dict | None = None, timeout: int = 90):
    """The app on `state` (no runner started by submissions), switched to `page`, with no
    exception on the way."""
    monkeypatch.setenv("QCOMPARE_HOME", str(state))
    monkeypatch.setenv("QCOMPARE_START_RUNNER", "0")
    at = AppTest.from_file(APP, default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at
