"""A dashboard shared on a network reads typed paths only from allowed folders.

On one person's laptop (the server bound to loopback, as `.streamlit/config.toml` sets) a
typed model folder or corpus file may be anywhere: the person could read it anyway. When the
server listens on any other address (`--server.address 0.0.0.0` for a meetup's network),
whoever opens the page could otherwise have the server read any of its files (a corpus path
shows the text on the Drift page). Then every typed path must lie in an allowed root
(`qcompare.sources.paths.allowed_roots`: the state folder, the Hugging Face cache, and
QCOMPARE_ALLOWED_ROOTS), or it is refused with the roots and how to add one.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from qcompare.core.specs import CorpusSpec, ModelSpec
from qcompare.sources import paths
from qcompare.ui.data import state_dir

LOOPBACK = ("localhost", "::1", "[::1]")


def bind_address() -> str:
    """The address the server listens on; Streamlit's own default (unset) is every interface."""
    return str(st.get_option("server.address") or "0.0.0.0")


def is_shared() -> bool:
    address = bind_address().strip().lower()
    return not (address in LOOPBACK or address.startswith("127."))


def roots() -> list[Path]:
    return paths.allowed_roots(state_dir())


def confine_model(spec: ModelSpec) -> ModelSpec:
    """`spec` unchanged; raises a UserError when shared and its folder or file lies outside
    the allowed roots (an embedded or hub model is read from the package or the hub cache)."""
    if is_shared() and spec.source in ("local", "gguf"):
        paths.confined(Path(spec.ref), roots(), bind_address())
    return spec


def confine_corpus(spec: CorpusSpec) -> CorpusSpec:
    """Likewise for a corpus file (the embedded text and hub datasets are not server paths)."""
    if is_shared() and spec.source == "file":
        paths.confined(Path(spec.ref), roots(), bind_address())
    return spec
