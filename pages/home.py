"""Home: what qcompare is, the embedded model's state, the one-click default comparison, and
the latest trade-off chart."""
import streamlit as st

from qcompare.charts import tradeoff as charts
from qcompare.core import effort
from qcompare.core.errors import UserError
from qcompare.core.presets import preset_families
from qcompare.core.registry import BASELINE, get
from qcompare.decide import estimate
from qcompare.i18n import catalogue as i18n
from qcompare.stats import ranking
from qcompare.stats.comparability import latest_group
from qcompare.store import pack
from qcompare.ui import presenter
from qcompare.ui.data import embedded_state, preset_plan, results, state_dir, submit_preset
from qcompare.ui.data import ranked as data_ranked
from qcompare.ui.escape import literal
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import show_submitted, user_error

ensure_navigation("pages/home.py")
st.title("qcompare")
st.markdown(t("home.intro"))

state, message = embedded_state(str(state_dir()))
icon = {"ready": "✅", "converting": "⏳", "not converted": "💤", "missing": "❌"}[state]
st.subheader(t("home.model_title"))
st.markdown(f"{icon} **SmolLM2-135M-Instruct** — " + t(f"home.state_{state.replace(' ', '_')}",
                                                       folder=message, error=message))
st.caption(t("home.embedded_note"))

st.subheader(t("home.run_title"))
EFFORT = "quick"
families = [f for f in preset_families("default", "cpu") if f != get(BASELINE).family]
try:
    specs = preset_plan("default", EFFORT)
    ev = specs[0].eval
    st.markdown(t("home.plan", n=len(specs), baseline=BASELINE, families=len(families),
                  names=", ".join(i18n.family(f, current()) for f in families), effort=EFFORT,
                  summary=t(f"effort.{EFFORT}"), window=ev.window))
    st.caption(t("home.queue", runs=" · ".join(
        get(s.method.name).chart_label(s.method.options_dict) for s in specs)))
    st.caption("⏱ " + estimate.describe(estimate.plan(specs, results()[0], state_dir()), current()))
except UserError as e:
    user_error(e)
if st.button(t("home.button"), type="primary", key="home.run"):
    try:
        show_submitted(submit_preset("default", EFFORT))
    except UserError as e:
        user_error(e)


with st.expander(t("home.pack_title")):
    st.caption(t("home.pack_help"))
    uploaded = st.file_uploader(t("home.pack_upload"), type=["qcpack"], key="home.pack")
    if uploaded is not None and st.session_state.get("home.pack_done") != uploaded.file_id:
        try:
            got = pack.load(state_dir(), uploaded)
            st.session_state["home.pack_done"] = uploaded.file_id
            m = got.manifest
            st.success(t("home.pack_loaded", added=got.rows_added, kept=got.rows_kept,
                         machine=literal(m.get("machine", "")), who=literal(m.get("who") or "?"),
                         when=m.get("created_at", "")))
        except UserError as e:
            user_error(e)


@st.fragment(run_every=5)
def latest_tradeoff() -> None:
    """Redrawn every few seconds, so points appear as jobs land."""
    st.subheader(t("home.latest"))
    df, _ = results()
    group = latest_group(df)
    if group.empty:
        st.info(t("home.no_results"))
        return
    first = group.iloc[0]
    efforts = ", ".join(sorted(set(group["effort"].fillna(effort.CUSTOM))))
    st.caption(t("home.group", model=first["model"], corpus=first["corpus"], protocol=first["protocol"],
                 tokens=first["tokens"], window=first["window"], device=first["device"], efforts=efforts))
    fig = charts.tradeoff(group, "weights_mib", "ppl", lang=current())
    presenter.chart(fig, key="home_tradeoff")
    if (fig.layout.meta or {}).get("collapsed"):
        st.caption(t("home.collapsed"))
    ranked = data_ranked(group, str(state_dir()))
    if len(ranked) > 1:
        st.caption(t("home.precision", summary=ranking.summary(ranked, current())))
    st.page_link("pages/results.py", label=t("home.explore"), icon="📈")


latest_tradeoff()
