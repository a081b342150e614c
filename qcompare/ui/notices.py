"""How the pages tell a person what happened: submissions, cache hits and errors."""
from __future__ import annotations

import streamlit as st

from qcompare.core.errors import UserError
from qcompare.jobs.submit import Submitted
from qcompare.ui.escape import literal
from qcompare.ui.lang import current, t

SUMMARY_FROM = 4          # this many submissions or more are said in one line


def _label(s: Submitted) -> str:
    from qcompare.core import registry

    return literal(registry.get(s.spec.method.name).short_label(s.spec.method.options_dict))


def show_submitted(subs: list[Submitted]) -> None:
    """One notice per submission, or, for a sweep (SUMMARY_FROM or more), one line: how many
    were queued, how many were already running and how many are done (a second press of a
    button mid-sweep says "already running: 4 of 11 done" once)."""
    for s in subs:
        if s.note:
            st.warning(f"{_label(s)}: {literal(s.note)}")
    if len(subs) >= SUMMARY_FROM:
        new = sum(1 for s in subs if not s.cached and s.new)
        joined = sum(1 for s in subs if not s.cached and not s.new)
        done = sum(1 for s in subs if s.cached)
        if new:
            st.info(t("notices.sweep_queued", new=new, joined=joined, done=done, n=len(subs)))
        elif joined:
            st.info(t("notices.sweep_running", done=done, n=len(subs)))
        else:
            st.success(t("notices.sweep_cached", n=len(subs)))
    else:
        for s in subs:
            if s.cached:
                st.success(t("notices.cached", label=_label(s)))
            elif s.new:
                st.info(t("notices.queued", label=_label(s), id=s.job_id))
            else:
                st.info(t("notices.joined", label=_label(s), id=s.job_id))
    if any(not s.cached for s in subs):
        st.page_link("pages/jobs.py", label=t("notices.watch"), icon="⏱️")


def user_error(e: UserError) -> None:
    st.error(e.text(current()), icon="⚠️")
