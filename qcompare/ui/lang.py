"""The session's language for the pages: the sidebar's choice, first taken from the browser's
locale (`st.context.locale`), kept in the session. `t(key, **values)` is what pages call."""
from __future__ import annotations

import streamlit as st

from qcompare import i18n

KEY = "lang"


def current() -> str:
    if KEY not in st.session_state:
        try:
            locale = st.context.locale
        except Exception:  # noqa: BLE001 - no browser (tests, bare mode): English
            locale = None
        st.session_state[KEY] = i18n.from_locale(locale)
    return st.session_state[KEY]


def t(key: str, **values) -> str:
    return i18n.t(key, current(), **values)


def _chosen() -> None:
    st.session_state[KEY] = st.session_state[f"{KEY}.picker"]


def picker() -> None:
    """The sidebar's language switch. The choice lives under its own key, not the widget's, so
    it survives runs in which the widget is not drawn."""
    st.radio("Language / 言語", i18n.LANGS, index=i18n.LANGS.index(current()),
             format_func=i18n.NAMES.get, horizontal=True, key=f"{KEY}.picker", on_change=_chosen)
