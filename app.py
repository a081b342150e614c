"""qcompare dashboard: navigation and the sidebar status line. Start: streamlit run app.py"""
import streamlit as st

from qcompare.core.errors import UserError, text_of
from qcompare.jobs.ray_runner import known_address
from qcompare.jobs.runner import runner_running
from qcompare.jobs.store import JobStore
from qcompare.ui import presenter
from qcompare.ui.data import ray_cluster, results, state_dir
from qcompare.ui.lang import current as current_lang
from qcompare.ui.lang import picker as language_picker
from qcompare.ui.lang import t
from qcompare.ui.navigation import NAV_FLAG, follow_deeplink

st.set_page_config(page_title="qcompare", page_icon="⚖️", layout="wide",
                   initial_sidebar_state="collapsed" if presenter.active() else "auto")
presenter.apply()

pages = [
    st.Page("pages/home.py", title=t("nav.home"), icon="🏠", default=True),
    st.Page("pages/compare.py", title=t("nav.compare"), icon="🧪"),
    st.Page("pages/jobs.py", title=t("nav.jobs"), icon="⏱️"),
    st.Page("pages/results.py", title=t("nav.results"), icon="📈"),
    st.Page("pages/choose.py", title=t("nav.choose"), icon="🧭"),
    st.Page("pages/recipe.py", title=t("nav.recipe"), icon="🧩"),
    st.Page("pages/generate.py", title=t("nav.generate"), icon="✍️"),
    st.Page("pages/playground.py", title=t("nav.playground"), icon="🎛️"),
    st.Page("pages/drift.py", title=t("nav.drift"), icon="🔎"),
]
st.session_state[NAV_FLAG] = True
nav = st.navigation(pages)
follow_deeplink()

@st.fragment(run_every=3)
def sidebar_status() -> None:
    """Job and result counts, refreshed every few seconds without rerunning the page."""
    try:                              # a broken job table must not take the pages down
        store = JobStore.open(state_dir())
        jobs = store.list(("queued", "running"))
        running = sum(j.state == "running" for j in jobs)
        st.caption(t("sidebar.jobs", running=running, queued=len(jobs) - running,
                     runner=t("sidebar.runner_on") if runner_running(state_dir()) else t("sidebar.runner_idle")))
        if store.recovered:
            st.warning(text_of(store.recovered, current_lang()))
        elif store.broken_copies():
            st.caption(t("sidebar.broken_table", name=store.broken_copies()[-1].name))
    except UserError as e:
        st.error(e.text(current_lang()))
    st.caption(t("sidebar.results", n=len(results()[0]), folder=state_dir()))


def runner_picker() -> None:
    """Where new jobs run: this machine, or a Ray cluster when one is reachable."""
    address = known_address()
    if address is None:
        st.session_state["runner"] = "local"
        return
    summary, error = ray_cluster(address, current_lang())
    if summary is None:
        st.session_state["runner"] = "local"
        st.caption(t("sidebar.ray_unreachable", error=error))
        return
    choice = st.radio(t("sidebar.run_on"), ("local", "ray"), horizontal=True, key="runner",
                      format_func=lambda r: t("sidebar.this_machine") if r == "local" else f"Ray ({address})",
                      help=t("sidebar.run_on_help"))
    st.session_state["ray_address"] = address
    if choice == "ray":
        st.caption(t("sidebar.ray_summary", nodes=summary["nodes"], cpus=summary["cpus"],
                     gpus=summary["gpus"], free_gpus=summary["free_gpus"], mem=summary["free_memory_gb"]))


with st.sidebar:
    language_picker()
    presenter.toggle()
    runner_picker()
    sidebar_status()

if presenter.active():
    # collapsed: its title line carries the rehearsal check; the steps open on a click (open,
    # on Home they filled a 1024x768 projector's first screen)
    presenter.demo_script(presenter.steps(), expanded=False)
nav.run()
