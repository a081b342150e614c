"""A real browser (Debian's chromium, driven by Playwright) against a real `streamlit run app.py`:
with a collapsed run (2-bit RTN) already stored, set up fp32 and rtn on the embedded model
through the Compare page, see the sidebar count them as they land without a reload, and read
the Home and Results charts at 1024x768, the collapsed run in its strip, then download the
Results page's HTML report and open it with the network off: its charts draw from the
plotly.js inside it. Screenshots go to $QCOMPARE_E2E_OUT (or the test's temporary folder)."""
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


def _serve(state_dir, tmp_path):
    """A real `streamlit run app.py` on `state_dir`: yields its URL, stops it afterwards."""
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
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
    from qcompare.jobs.runner import runner_pid
    pid = runner_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    state_dir = tmp_path / "state_dir"
    _seed_collapsed_run(state_dir)
    for url in _serve(state_dir, tmp_path):
        yield url, state_dir


def _seed_collapsed_run(state_dir) -> None:
    """2-bit RTN per channel on the embedded model: its perplexity is off any useful scale."""
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec, ModelSpec
    from qcompare.jobs import submit as submitting
    from qcompare.jobs import worker

    ev = EvalSpec(tokens=1024, speed_new_tokens=8, speed_repeats=1)
    (spec,) = submitting.build_specs(ModelSpec(), [parse_method_arg("rtn:bits=2,granularity=channel")],
                                     CorpusSpec(), ev)
    row = worker.run(spec, state_dir)
    assert row["ppl"] > 1000, row["ppl"]


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
        _set_number(page, "Speed: most repeats (0 skips)", 1)
        page.get_by_text("round-to-nearest integer weights", exact=False).click()
        submit = page.get_by_role("button", name=re.compile(r"Submit 2 run"))
        expect(submit).to_be_enabled(timeout=60_000)
        submit.click()
        expect(page.get_by_text(re.compile("queued as job")).first).to_be_visible(timeout=60_000)

        # on Home, the sidebar counts and the chart draws the new rows as they land, with no
        # reload (fragments): first the collapsed run alone, then all three
        page.goto(url + "/")
        page.wait_for_selector(".js-plotly-plot")
        points = page.locator(".js-plotly-plot").first.locator(".scatterlayer .points path.point")
        before = points.count()                          # the 4-bit job takes most of a minute
        expect(page.get_by_text(re.compile(r"Results stored:\s*3\b"))).to_be_visible(timeout=420_000)
        expect(points).to_have_count(3, timeout=30_000)
        assert before < 3
        page.goto(url + "/jobs")
        expect(page.get_by_text(re.compile(r"2 of 2 done"))).to_be_visible(timeout=120_000)
        expect(page.get_by_text("failed")).to_have_count(0)

        out = Path(os.environ.get("QCOMPARE_E2E_OUT", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1024, "height": 768})
        page.goto(url + "/results")
        page.wait_for_selector(".js-plotly-plot")
        page.wait_for_timeout(1500)
        # the points a person sees: marker paths drawn in the chart's scatter layer
        n = page.locator(".js-plotly-plot").first.locator(".scatterlayer .points path.point").count()
        labels = page.locator(".js-plotly-plot").first.locator(".scatterlayer .textpoint").all_text_contents()
        page.screenshot(path=str(out / "results.png"), full_page=False)
        report = _download_report(page, out)
        drawn = _open_offline(browser, report, out / "report-offline.png")
        page.goto(url + "/")
        page.wait_for_selector(".js-plotly-plot")
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "home.png"))
        home_strip = page.get_by_text(re.compile(r"collapsed runs"))
        expect(home_strip.first).to_be_visible()
        browser.close()
    assert n == 3                                         # fp32, rtn 4-bit and the collapsed one
    assert any(t.startswith("rtn 2b") and ":" in t for t in labels), labels   # its value written out
    assert (out / "results.png").stat().st_size > 10_000 and (out / "home.png").stat().st_size > 10_000
    assert drawn["charts"] >= 2 and drawn["points"] >= 3 and drawn["requests"] == []
    assert len(list((state_dir / "results").glob("*.parquet"))) == 3


def _download_report(page, out: Path) -> Path:
    """The Results page's 'Report as HTML' button, as a person clicks it."""
    button = page.get_by_role("button", name="Report as HTML")
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=120_000) as info:
        button.click()
    path = out / "qcompare-report.html"
    info.value.save_as(str(path))
    return path


def _open_offline(browser, report: Path, shot: Path) -> dict:
    """Open the report with the network off (every non-file request aborted and recorded):
    its charts must draw from the plotly.js inside it."""
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    requests = []

    def block(route):
        if not route.request.url.startswith("file:"):
            requests.append(route.request.url)
            return route.abort()
        return route.continue_()

    context.route("**/*", block)
    page = context.new_page()
    page.goto(report.as_uri())
    page.wait_for_selector(".js-plotly-plot .scatterlayer .points path.point", timeout=30_000)
    page.screenshot(path=str(shot))
    drawn = {"charts": page.locator(".js-plotly-plot").count(),
             "points": page.locator(".js-plotly-plot").first.locator(
                 ".scatterlayer .points path.point").count(), "requests": requests}
    context.close()
    return drawn


@pytest.fixture
def swept_server(tmp_path, tiny_model_dir):
    """A state with a sensitivity sweep of the tiny model and the runs verifying one recipe."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from qcompare.core.specs import CalibSpec, EvalSpec
    from qcompare.jobs import worker
    from qcompare.jobs.runner import run_inline
    from qcompare.jobs.store import JobStore
    from qcompare.jobs.submit import submit_sensitivity
    from qcompare.recipes import budget
    from qcompare.recipes.sensitivity import SensitivitySpec
    from qcompare.sources.models import model_from_arg

    state_dir = tmp_path / "state_dir"
    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    spec = SensitivitySpec(model=model_from_arg(str(tiny_model_dir)), bits=(2, 4, 8), group_size=32,
                           eval=ev, calib=CalibSpec(samples=4, seq_len=64), score_samples=2)
    sub = submit_sensitivity(spec, state_dir, start_runner=False)
    run_inline(JobStore.open(state_dir), state_dir, sub.job_id)
    for run in budget.plan_verification(budget.find(state_dir), bits=[4]):
        worker.run(run, state_dir)
    for url in _serve(state_dir, tmp_path):
        yield url


def test_the_recipe_page_draws_its_heatmap_and_frontier_in_a_real_browser(swept_server, tmp_path):
    from playwright.sync_api import sync_playwright

    out = Path(os.environ.get("QCOMPARE_E2E_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(swept_server + "/recipe")
        page.get_by_role("tab", name="Where the loss happens").click()
        page.wait_for_selector(".js-plotly-plot .hm", timeout=60_000)     # the heatmap drawn
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "recipe-sensitivity.png"))
        cells = page.locator(".js-plotly-plot .hm").count()
        page.get_by_role("tab", name="Recipe for a size").click()
        page.get_by_text("Best recipe:").first.wait_for(timeout=30_000)
        page.get_by_text("Size against KL divergence").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "recipe-frontier.png"))
        measured = page.locator(".js-plotly-plot", has_text="Size against KL divergence").first \
            .locator(".scatterlayer .trace").count()
        browser.close()
    assert cells >= 1
    assert measured >= 3          # the predicted line, uniform predicted, and measured points
    assert (out / "recipe-frontier.png").stat().st_size > 10_000


@pytest.fixture
def demo_server(tmp_path, tiny_model_dir):
    """Two measured rows of the tiny model, the model folder in the state's models/ (for the
    playground), and a real generation worker allowed to start."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import CorpusSpec, EvalSpec
    from qcompare.jobs import worker
    from qcompare.jobs.submit import build_specs
    from qcompare.sources.models import model_from_arg

    state_dir = tmp_path / "state_dir"
    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    for spec in build_specs(model_from_arg(str(tiny_model_dir)), [parse_method_arg("fp32"),
                            parse_method_arg("rtn:bits=2,granularity=channel")], CorpusSpec(), ev):
        worker.run(spec, state_dir)
    shutil.copytree(tiny_model_dir, state_dir / "models" / "tiny")
    os.environ["QCOMPARE_GEN_IDLE_EXIT_S"] = "5"
    try:
        for url in _serve(state_dir, tmp_path):
            yield url
    finally:
        os.environ.pop("QCOMPARE_GEN_IDLE_EXIT_S", None)


def test_presenter_mode_generation_and_the_playground_in_a_real_browser(demo_server, tmp_path):
    """The demo path on a projector: ?present=1, generation streamed and coloured, the
    playground's histogram drawn; then the same pages for a browser whose locale is Japanese.
    Screenshots: presenter-*.png, presenter-*-ja.png (Generate, Playground, Choose)."""
    from playwright.sync_api import sync_playwright

    out = Path(os.environ.get("QCOMPARE_E2E_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        # the fresh server's first request is a deep link: routed through app.py (see
        # qcompare.ui.navigation), it must keep its ?present=1
        page.goto(demo_server + "/playground?present=1")
        page.get_by_role("heading", name="Quantization playground").first.wait_for(timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .bars", timeout=60_000)      # the run has ended
        deep_font = page.evaluate("getComputedStyle(document.querySelector('h1')).fontSize")
        deep_url = page.url
        page.goto(demo_server + "/?present=1")
        # the demo script, collapsed, with the rehearsal check in its title line
        page.get_by_text("rehearsal:").first.wait_for(timeout=60_000)
        assert page.locator("[data-testid='stToolbarActions'] >> text=Deploy").count() == 0
        page.screenshot(path=str(out / "presenter-home.png"))
        page.goto(demo_server + "/generate?present=1")
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("done.").first.wait_for(timeout=120_000)
        page.locator("span[title^='KL ']").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "presenter-generate.png"))
        coloured = page.locator("span[title^='KL ']").count()
        page.goto(demo_server + "/playground?present=1")
        page.wait_for_selector(".js-plotly-plot .bars", timeout=60_000)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "presenter-playground.png"))
        font = page.evaluate("getComputedStyle(document.querySelector('h1')).fontSize")
        # a Japanese browser gets the Japanese pages (st.context.locale), in presenter mode too
        ja = browser.new_context(locale="ja-JP", viewport={"width": 1600, "height": 1000}).new_page()
        ja.goto(demo_server + "/generate?present=1")
        ja.get_by_role("heading", name="生成を並べて比較").wait_for(timeout=60_000)
        ja.get_by_role("button", name="生成").first.click()
        ja.get_by_text("完了。").first.wait_for(timeout=120_000)
        ja.locator("span[title^='KL ']").first.scroll_into_view_if_needed()
        ja.wait_for_timeout(1000)
        ja.screenshot(path=str(out / "presenter-generate-ja.png"))
        ja.goto(demo_server + "/playground?present=1")
        ja.get_by_role("heading", name="量子化プレイグラウンド").first.wait_for(timeout=60_000)
        ja.wait_for_selector(".js-plotly-plot .bars", timeout=60_000)
        ja.wait_for_timeout(1000)
        ja.screenshot(path=str(out / "presenter-playground-ja.png"))
        ja.goto(demo_server + "/choose?present=1")
        ja.get_by_role("heading", name="手法を選ぶ").first.wait_for(timeout=60_000)
        ja.wait_for_selector(".js-plotly-plot", timeout=60_000)         # the ranking's chart
        ja.wait_for_timeout(1000)
        ja.screenshot(path=str(out / "presenter-choose-ja.png"))
        said = ja.locator("[data-testid='stMain']").inner_text()
        browser.close()
    assert "fits in" not in said and "rule of thumb" not in said and "経験則" in said
    assert coloured > 0                      # tokens of both columns carry their KL
    assert float(font.removesuffix("px")) >= 60          # 3rem at a 22 px root
    assert float(deep_font.removesuffix("px")) >= 60 and deep_url.endswith("?present=1"), (deep_font, deep_url)


INJECTED = '<h1 style="color:red;font-size:60px">INJECTED <input placeholder="your HF token">'
PAGES = ("", "compare", "jobs", "results", "choose", "recipe", "generate", "playground", "drift")


@pytest.fixture
def injected_server(tmp_path, tiny_model_dir):
    """A state whose model folder, corpus file and failed job's message carry HTML: a measured
    row of a model in a folder named like markup (in the state's models/, so the demo pages
    list it too), on a corpus file named likewise, and a failed job quoting both."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from qcompare.core.registry import parse_method_arg
    from qcompare.core.specs import EvalSpec
    from qcompare.jobs import worker
    from qcompare.jobs.store import JobStore
    from qcompare.jobs.submit import build_specs
    from qcompare.sources import corpora
    from qcompare.sources.models import model_from_arg

    state_dir = tmp_path / "state_dir"
    model = state_dir / "models" / INJECTED
    shutil.copytree(tiny_model_dir, model)
    corpus = tmp_path / f"{INJECTED}.txt"
    corpus.write_text(corpora.embedded_text()[:40_000])
    ev = EvalSpec(tokens=256, window=64, speed_prompt=16, speed_new_tokens=4, speed_repeats=1)
    specs = build_specs(model_from_arg(str(model)), [parse_method_arg("fp32"),
                        parse_method_arg("rtn:bits=4")], corpora.corpus_from_arg(str(corpus)), ev)
    for spec in specs:
        worker.run(spec, state_dir)
    store = JobStore.open(state_dir)
    job, _ = store.submit("k" * 64, f"rtn:bits=3 on {model}", specs[1].to_json())
    store.finish(job, "failed", error=f"could not read {model} or {corpus}")
    for url in _serve(state_dir, tmp_path):
        yield url


def test_no_page_renders_markup_from_a_model_path_corpus_name_or_error(injected_server, tmp_path):
    """Every page, opened in a real browser: the markup in the folder's name shows as text
    where it shows at all, and no element of it (the giant heading, the live input box) exists
    in the page or in any frame of it."""
    from playwright.sync_api import sync_playwright

    out = Path(os.environ.get("QCOMPARE_E2E_OUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    seen_as_text = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for path in PAGES:
            page.goto(f"{injected_server}/{path}")
            page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
            page.wait_for_timeout(2500)               # fragments, charts, the job table
            for frame in page.frames:
                assert frame.locator("h1[style*='font-size:60px']").count() == 0, path
                assert frame.locator("input[placeholder='your HF token']").count() == 0, path
            if "INJECTED" in page.locator("body").inner_text():      # the sidebar's filters too
                seen_as_text.append(path or "home")
            page.screenshot(path=str(out / f"injected-{path or 'home'}.png"))
        browser.close()
    # the path is shown (as text) where a person needs it: the jobs and the results at least
    assert {"jobs", "results"} <= set(seen_as_text), seen_as_text
