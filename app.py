"""qcompare dashboard: navigation and the sidebar status line. Start: streamlit run app.py"""
import streamlit as st

from qcompare.errors import UserError
from qcompare.jobs.ray_runner import known_address
from qcompare.jobs.runner import runner_running
from qcompare.jobs.store import JobStore
from qcompare.ui import presenter
from qcompare.ui.data import ray_cluster, results, state_dir
from qcompare.ui.navigation import DEEPLINK, NAV_FLAG

st.set_page_config(page_title="qcompare", page_icon="⚖️", layout="wide",
                   initial_sidebar_state="collapsed" if presenter.active() else "auto")
presenter.apply()

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/compare.py", title="Compare", icon="🧪"),
    st.Page("pages/jobs.py", title="Jobs", icon="⏱️"),
    st.Page("pages/results.py", title="Results", icon="📈"),
    st.Page("pages/choose.py", title="Choose", icon="🧭"),
    st.Page("pages/recipe.py", title="Recipe", icon="🧩"),
    st.Page("pages/generate.py", title="Generate", icon="✍️"),
    st.Page("pages/playground.py", title="Playground", icon="🎛️"),
    st.Page("pages/drift.py", title="Drift", icon="🔎"),
]
st.session_state[NAV_FLAG] = True
nav = st.navigation(pages)
if DEEPLINK in st.session_state:
    st.switch_page(st.session_state.pop(DEEPLINK))

@st.fragment(run_every=3)
def sidebar_status() -> None:
    """Job and result counts, refreshed every few seconds without rerunning the page."""
    try:                              # a broken job table must not take the pages down
        store = JobStore.open(state_dir())
        jobs = store.list(("queued", "running"))
        running = sum(j.state == "running" for j in jobs)
        st.caption(f"**Jobs:** {running} running, {len(jobs) - running} queued · "
                   f"runner {'on' if runner_running(state_dir()) else 'idle'}")
        if store.recovered:
            st.warning(store.recovered)
        elif store.broken_copies():
            st.caption(f"An unreadable job table was kept aside as `{store.broken_copies()[-1].name}`.")
    except UserError as e:
        st.error(str(e))
    st.caption(f"**Results stored:** {len(results()[0])} · state in `{state_dir()}`")


def runner_picker() -> None:
    """Where new jobs run: this machine, or a Ray cluster when one is reachable."""
    address = known_address()
    if address is None:
        st.session_state["runner"] = "local"
        return
    summary, error = ray_cluster(address)
    if summary is None:
        st.session_state["runner"] = "local"
        st.caption(f"Ray: {error} Jobs run on this machine.")
        return
    choice = st.radio("Run jobs on", ("local", "ray"), horizontal=True, key="runner",
                      format_func=lambda r: "this machine" if r == "local" else f"Ray ({address})",
                      help="Takes effect when no runner is serving the state folder: the "
                           "sidebar's 'runner idle'.")
    st.session_state["ray_address"] = address
    if choice == "ray":
        st.caption(f"Ray cluster: {summary['nodes']} node(s), {summary['cpus']:.0f} CPUs, "
                   f"{summary['gpus']:.0f} GPUs ({summary['free_gpus']:.0f} free), "
                   f"{summary['free_memory_gb']:.1f} GB free memory. The state folder must be "
                   "shared with every node.")


with st.sidebar:
    presenter.toggle()
    runner_picker()
    sidebar_status()

if presenter.active():
    presenter.demo_script(presenter.steps(), expanded=nav.url_path in ("", "home"))
nav.run()
