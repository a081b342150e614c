"""Jobs: a live table that refreshes itself (a fragment, no full-page reruns): state, stage,
progress, elapsed and ETA, the log tail, cancel / retry / clear finished; failures readable."""
import time

import streamlit as st

from qcompare.core import registry
from qcompare.core.errors import UserError, stored_text
from qcompare.i18n import stages
from qcompare.jobs import status
from qcompare.jobs.runner import cancel, ensure_runner, process_alive
from qcompare.jobs.store import JobStore
from qcompare.ui.data import start_runner, state_dir
from qcompare.ui.escape import literal
from qcompare.ui.lang import current, t
from qcompare.ui.navigation import ensure_navigation
from qcompare.ui.notices import user_error

ensure_navigation("pages/jobs.py")
st.title(t("jobs.title"))
ICONS = {"queued": "🕓", "running": "⏳", "done": "✅", "failed": "❌", "cancelled": "⛔", "lost": "❌",
         "stalled": "⚠️"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return (t("jobs.duration_min", m=seconds // 60, s=seconds % 60) if seconds >= 60
            else t("jobs.duration_sec", s=seconds))


def _card(j) -> str:
    """The job's title in the page's language, from its spec (the stored label is English)."""
    from qcompare.core.specs import RunSpec
    from qcompare.jobs import noise_job

    try:
        if noise_job.is_noise_json(j.spec_json):
            spec = noise_job.from_json(j.spec_json)
            return t("jobs.card_noise", model=_model(spec.model), protocol=spec.eval.protocol,
                     device=spec.eval.device)
        spec = RunSpec.from_json(j.spec_json)
    except Exception:  # noqa: BLE001 - another kind of job (a sensitivity sweep): its label
        return j.label
    method = registry.get(spec.method.name).short_label(spec.method.options_dict)
    return t("jobs.card", method=method, model=_model(spec.model), device=spec.eval.device)


def _model(model) -> str:
    return t("jobs.embedded_model") if model.source == "embedded" else model.label


@st.fragment(run_every=2)
def job_table() -> None:
    try:
        store = JobStore.open(state_dir())
        jobs = store.list()
    except UserError as e:
        user_error(e)
        return
    now = time.time()
    if not jobs:
        st.info(t("jobs.none"))
        return
    if any(j.state == "queued" for j in jobs) and start_runner():
        ensure_runner(state_dir())
    st.markdown(f"### {status.batch_summary(jobs, now, current())}")
    top = st.columns([2, 4])
    if top[0].button(t("jobs.clear"), help=t("jobs.clear_help")):
        store.clear_finished()
        st.rerun()
    counts = {s: sum(j.state == s for j in jobs) for s in ICONS}
    top[1].caption(" · ".join(f"{ICONS[s]} {n} {t(f'jobs.s_{s}')}" for s, n in counts.items() if n))
    retried = st.session_state.setdefault("retried", {})
    for j in status.display_order(jobs):
        alive = process_alive(j.pid, j.pid_start) if j.state == "running" else None
        state = status.classify(j, alive)
        with st.container(border=True):
            c = st.columns([5, 2, 2, 1])
            elapsed = ((j.finished or now) - j.started) if j.started else None
            row_gone = status.result_missing(j, state_dir())
            if row_gone:            # the result file was deleted after the job ended
                what = f"⚠️ {t('jobs.row_missing')}"
            elif j.state == "done":
                what = t("jobs.cached") if j.cached else t("jobs.done_in", t=_duration(elapsed))
            elif j.state in ("failed", "cancelled"):
                word = t(f"jobs.s_{state}")
                what = t("jobs.after", state=word, t=_duration(elapsed)) if elapsed else word
            else:
                what = f"`{t(f'jobs.s_{state}')}` · {literal(stages.text(j.stage, current(), registry.stage_patterns())) or '—'}"
            c[0].markdown(f'<span id="job-{j.id}"></span>{ICONS.get(state, "")} **#{j.id}** '
                          f"{literal(_card(j))}  \n{what}", unsafe_allow_html=True)
            if j.state == "running":
                c[0].progress(min(max(j.progress, 0.0), 1.0))
                c[1].caption(t("jobs.elapsed", t=_duration(elapsed), eta=_duration(status.eta_seconds(j, now))))
            if j.state in ("queued", "running"):
                if c[3].button(t("jobs.cancel"), key=f"cancel{j.id}"):
                    cancel(store, j.id)
                    st.rerun()
            elif j.id in retried:
                c[3].markdown(t("jobs.retried", id=retried[j.id]))
            elif j.state in ("failed", "cancelled") or state == "lost" or row_gone:
                if c[3].button(t("jobs.retry"), key=f"retry{j.id}"):
                    retried[j.id] = store.retry(j.id)
                    if start_runner():
                        ensure_runner(state_dir())
                    st.rerun()
            if state == "stalled":
                st.warning(literal(status.stalled_error(j, now).text(current())))
            if j.error:
                st.error(literal(stored_text(j.error, j.error_i18n, current())))
            if j.traceback or j.log:
                with st.expander(t("jobs.log")):
                    if j.log:
                        st.code(j.log[-4000:], language=None)
                    if j.traceback:
                        st.code(j.traceback[-8000:], language="python")


job_table()
