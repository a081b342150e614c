"""How the pages tell a person what happened: submissions, cache hits and errors."""
from __future__ import annotations

import streamlit as st

from qcompare.errors import UserError
from qcompare.submit import Submitted


def show_submitted(subs: list[Submitted]) -> None:
    for s in subs:
        if s.note:
            st.warning(f"{s.spec.method.label}: {s.note}")
        if s.cached:
            st.success(f"✓ {s.spec.method.label}: already measured (cache hit), shown in Results.")
        elif s.new:
            st.info(f"⏳ {s.spec.method.label}: queued as job #{s.job_id}.")
        else:
            st.info(f"⏳ {s.spec.method.label}: identical job #{s.job_id} is already queued or running.")
    if any(not s.cached for s in subs):
        st.page_link("pages/jobs.py", label="Watch the jobs", icon="⏱️")


def user_error(e: UserError) -> None:
    st.error(str(e), icon="⚠️")
