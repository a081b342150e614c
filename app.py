"""qcompare dashboard: navigation and the sidebar status line. Start: streamlit run app.py"""
import streamlit as st

from qcompare.errors import UserError
from qcompare.jobs.runner import runner_running
from qcompare.jobs.store import JobStore
from qcompare.ui.data import results, state_dir
from qcompare.ui.navigation import DEEPLINK, NAV_FLAG

st.set_page_config(page_title="qcompare", page_icon="⚖️", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/compare.py", title="Compare", icon="🧪"),
    st.Page("pages/jobs.py", title="Jobs", icon="⏱️"),
    st.Page("pages/results.py", title="Results", icon="📈"),
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


with st.sidebar:
    sidebar_status()

nav.run()
