"""A real browser (Debian's chromium, driven by Playwright) against a real `streamlit run app.py`:
set up fp32 and rtn on the embedded model through the Compare page, watch both jobs finish on
the Jobs page, and see two points on the Results page's trade-off chart."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    state_dir = tmp_path / "state_dir"
    port = _free_port()
    env = {**os.environ, "QCOMPARE_HOME": str(state_dir), "QCOMPARE_RUNNER_IDLE_EXIT_S": "5"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port",
                             str(port), "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=open(tmp_path / "streamlit.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError as e:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError((tmp_path / "streamlit.log").read_text()) from e
            time.sleep(0.5)
    yield url, state_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
    from qcompare.jobs.runner import runner_pid
    pid = runner_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(400)


def test_two_methods_end_to_end_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, state_dir = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        page.goto(url + "/compare")
        expect(page.get_by_text("2. Methods")).to_be_visible(timeout=60_000)
        page.get_by_text("Corpus and protocol (advanced)").click()
        _set_number(page, "Tokens", 1024)
        _set_number(page, "Speed: new tokens", 8)
        _set_number(page, "Speed: repeats (0 skips)", 1)
        page.get_by_text("round-to-nearest integer weights", exact=False).click()
        submit = page.get_by_role("button", name=re.compile(r"Submit 2 run"))
        expect(submit).to_be_enabled(timeout=60_000)
        submit.click()
        expect(page.get_by_text(re.compile("queued as job")).first).to_be_visible(timeout=60_000)

        page.goto(url + "/jobs")
        expect(page.get_by_text(re.compile(r"2 done"))).to_be_visible(timeout=420_000)
        expect(page.get_by_text("failed")).to_have_count(0)

        page.goto(url + "/results")
        page.wait_for_selector(".js-plotly-plot")
        page.wait_for_timeout(1500)
        # the points a person sees: marker paths drawn in the chart's scatter layer
        n = page.locator(".js-plotly-plot .scatterlayer .points path.point").count()
        out = Path(os.environ.get("QCOMPARE_E2E_OUT", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "results.png"), full_page=True)
        browser.close()
    assert n == 2
    assert (out / "results.png").stat().st_size > 10_000
    assert len(list((state_dir / "results").glob("*.parquet"))) == 2
