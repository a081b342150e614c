"""How the pages tell a person what happened: submissions, cache hits and errors."""
from __future__ import annotations

import streamlit as st

from qcompare.core.errors import UserError
from qcompare.jobs.submit import Submitted
from qcompare.ui.escape import literal
from qcompare.ui.lang import current, t


def show_submitted(subs: list[Submitted]) -> None:
    for s in subs:
        if s.note:
            st.warning(f"{literal(s.spec.method.label)}: {literal(s.note)}")
        if s.cached:
            st.success(t("notices.cached", label=literal(s.spec.method.label)))
        elif s.new:
            st.info(t("notices.queued", label=literal(s.spec.method.label), id=s.job_id))
        else:
            st.info(t("notices.joined", label=literal(s.spec.method.label), id=s.job_id))
    if any(not s.cached for s in subs):
        st.page_link("pages/jobs.py", label=t("notices.watch"), icon="⏱️")


def user_error(e: UserError) -> None:
    st.error(e.text(current()), icon="⚠️")
