"""One parse of a GGUF file's header per process.

`gguf.GGUFReader` reads every metadata field in Python: about 5 s for the embedded model's
49k-token vocabulary and its merges on a 2-core machine. Submission (the file's checks, its layer
count), the model's conversion, the cost model and the GGUF method each asked again, and
transformers' own GGUF loading parses the file once for the config, twice for the tokenizer and
again for the weights, and while mapping tensor names it builds gguf's name table (28 ms)
once per module of the model, 397 times: most of the 54 s a first conversion took. `reader(path)`
keeps a parsed reader while the file's size, modification time and inode stay the same (a reader
is a read-only memory map: nothing is copied), and `shared_parses()` lets transformers use it
and build each name table once.
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path


def reader(path: str | os.PathLike):
    """The parsed header (a `gguf.GGUFReader`, read-only) of the file at `path`."""
    st = os.stat(path)
    return _parsed(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=4)
def _parsed(path: str, size: int, mtime_ns: int, inode: int):
    import gguf

    return _ORIGINAL.get("reader", gguf.GGUFReader)(path)


_ORIGINAL: dict = {}


@contextlib.contextmanager
def shared_parses():
    """While inside, `gguf.GGUFReader(path)` in read mode (as transformers calls it) answers
    from `reader`, so loading a config, a tokenizer and the weights parses the file once, and
    `gguf.get_tensor_name_map(arch, n_blocks)` (a read-only table) is built once per argument."""
    import gguf

    original, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    def shared(path, mode="r"):
        return reader(path) if mode == "r" else original(path, mode)

    _ORIGINAL["reader"] = original
    gguf.GGUFReader, gguf.get_tensor_name_map = shared, functools.lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original, name_map
        _ORIGINAL.pop("reader", None)
