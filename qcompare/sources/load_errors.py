"""transformers' errors when loading a model, read into one line with the cause and the remedy.

The library's own messages end in "look at the above report" or a paragraph about the hub; a
person reading a failed job needs what is wrong with *their* folder and what to do. `explain`
recognises the failures a local checkpoint runs into (by the library's wording, which is
stable across the 4.x and 5.x releases checked) and returns a UserError of the catalogue, in
both languages; anything it does not recognise is left as it was (None).

- an unknown `model_type` (a model newer than the installed transformers, or a typo);
- a config without `model_type`;
- a config of a model that is not a causal language model;
- weights whose shapes are not the config's (another size's config.json);
- no tokenizer in the folder;
- a GGUF file of an architecture transformers cannot read.
"""
from __future__ import annotations

import re
from pathlib import Path

from qcompare.core.errors import UserError

_RULES: tuple[tuple[str, str], ...] = (
    (r"has model type `(?P<type>[^`]+)` but Transformers does not recognize", "errors.load_model_type"),
    (r"Unrecognized model in .*model_type", "errors.load_no_model_type"),
    (r"Unrecognized configuration class .*?(?P<type>\w+)Config'?>? for this kind of AutoModel",
     "errors.load_not_causal"),
    (r"size mismatch for (?P<name>[\w.]+): copying a param with shape (?P<stored>torch\.Size\(\[[^\]]*\]\))"
     r" from checkpoint, the shape in current model is (?P<expected>torch\.Size\(\[[^\]]*\]\))",
     "errors.load_shapes"),
    (r"(?:Trying to set a tensor of shape|shape mismatch|doesn't match the expected shape|"
     r"ignore_mismatched_sizes)", "errors.load_shapes_other"),
    (r"GGUF model with architecture (?P<arch>\S+?)\.? is not supported", "errors.load_gguf_arch"),
    (r"Can't load tokenizer|couldn't instantiate the backend tokenizer|"
     r"Cannot instantiate this tokenizer|tokenizer.*(?:not found|does not exist)",
     "errors.load_tokenizer"),
)


def explain(error: BaseException, where: str | Path) -> UserError | None:
    """The catalogue's one line for a loading failure of the model at `where`, or None."""
    if isinstance(error, UserError):
        return None
    text = f"{error}"
    for pattern, key in _RULES:
        m = re.search(pattern, text, flags=re.IGNORECASE | re.DOTALL)
        if m:
            import transformers

            return UserError(key=key, where=where, version=transformers.__version__,
                             detail=_first_line(text), **m.groupdict())
    return None


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def explained(where: str | Path):
    """A context manager that re-raises a recognised loading error as its one line."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except Exception as e:
            mapped = explain(e, where)
            if mapped is None:
                raise
            raise mapped from e
    return guard()
