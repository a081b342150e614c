"""Deep links routed through app.py, so every page gets the navigation and the sidebar."""
from __future__ import annotations

import streamlit as st

NAV_FLAG, DEEPLINK = "_qcompare_nav", "_qcompare_deeplink"


def ensure_navigation(page_file: str) -> None:
    """Route a page through app.py when Streamlit ran it directly.

    On a fresh server whose first request is a deep link (say /jobs), Streamlit runs the
    pages/ file on its own, without app.py's st.navigation (streamlit#9624): the sidebar would
    list raw file names and miss its status. The page then hands over to app.py, which comes
    back to it, with the link's query (`?present=1`) kept both ways."""
    if not st.session_state.get(NAV_FLAG):
        st.session_state[DEEPLINK] = (page_file, st.query_params.to_dict())
        st.switch_page("app.py", query_params=st.query_params.to_dict())


def follow_deeplink() -> None:
    """In app.py: back to the page a deep link asked for (see `ensure_navigation`)."""
    if DEEPLINK in st.session_state:
        page, query = st.session_state.pop(DEEPLINK)
        st.switch_page(page, query_params=query)
