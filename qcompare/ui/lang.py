"""The session's language for the pages: the sidebar's choice, first taken from the browser's
locale (`st.context.locale`), kept in the session. `t(key, **values)` is what pages call."""
from __future__ import annotations

import streamlit as st

from qcompare.i18n import catalogue as i18n

KEY = "lang"


_last = "en"                     # the language of the latest run (see `current`)


def current() -> str:
    """The session's language. Outside a script run (a widget's format_func called by
    Streamlit's test harness after the run) there is no session: the latest run's language."""
    global _last
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return _last
    if KEY not in st.session_state:
        try:
            locale = st.context.locale
        except Exception:  # noqa: BLE001 - no browser (tests, bare mode): English
            locale = None
        st.session_state[KEY] = i18n.from_locale(locale)
    _last = st.session_state[KEY]
    return _last


def t(key: str, **values) -> str:
    return i18n.t(key, current(), **values)


def _chosen() -> None:
    st.session_state[KEY] = st.session_state[f"{KEY}.picker"]


def picker() -> None:
    """The sidebar's language switch. The choice lives under its own key, not the widget's, so
    it survives runs in which the widget is not drawn."""
    st.radio("Language / 言語", i18n.LANGS, index=i18n.LANGS.index(current()),
             format_func=i18n.NAMES.get, horizontal=True, key=f"{KEY}.picker", on_change=_chosen)
