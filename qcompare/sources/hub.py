"""Whether the Hugging Face hub can be reached from here, decided at once.

Offline is the normal case (meetup laptops, CI): a dataset or model that is not in the local
cache must be refused in a second, not after the libraries' retries (26 s and 11 warnings for
`datasets`). `reachable()` is False when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set, else
when a TCP connection to the hub's host (HF_ENDPOINT's, default huggingface.co:443) does not
open within `timeout_s`; the answer is kept for the process.
"""
from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

TRUTHY = ("1", "true", "yes", "on")


def offline_by_setting() -> bool:
    return any(os.environ.get(v, "").strip().lower() in TRUTHY
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def reachable(timeout_s: float = 2.0) -> bool:
    if offline_by_setting():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def go_offline() -> None:
    """Make the hub libraries use only their local caches from now on in this process (set
    before they are imported, and in their loaded configuration when they already are)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import sys

    for module, names in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                          ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        loaded = sys.modules.get(module)
        for name in names:
            if loaded is not None and hasattr(loaded, name):
                setattr(loaded, name, True)
