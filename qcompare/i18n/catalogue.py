"""The message catalogue: every translated user-facing string by key, in English and Japanese
(`qcompare/i18n/locales/en.toml`, `ja.toml`). Torch- and Streamlit-free; the pages reach it through
`qcompare.ui.lang`, which knows the session's language.

A key is `section.name` (TOML tables flattened); a message may hold `{placeholders}` that
`t(key, lang, **values)` fills with str.format. A key missing in one language falls back to
English (the catalogue test forbids that, so it never ships)."""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

LANGS = ("en", "ja")
NAMES = {"en": "English", "ja": "日本語"}
DIR = Path(__file__).resolve().parent / "locales"


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    with open(DIR / f"{lang}.toml", "rb") as f:
        return _flatten(tomllib.load(f))


def t(key: str, lang: str = "en", **values) -> str:
    """The message `key` in `lang`, placeholders filled."""
    text = catalogue(lang if lang in LANGS else "en").get(key)
    if text is None:
        text = catalogue("en")[key]
    return text.format(**values) if values else text


def from_locale(locale: str | None) -> str:
    """The language for a browser locale ('ja-JP' -> 'ja'); English otherwise."""
    return "ja" if (locale or "").lower().startswith("ja") else "en"


# a method family's name (Method.family) -> its message key
FAMILIES = {"baseline": "baseline", "round-to-nearest": "round_to_nearest",
            "float8 (simulated)": "float8", "bitsandbytes": "bitsandbytes", "torchao": "torchao",
            "PyTorch (torch.ao)": "torch_ao", "HQQ": "hqq", "GGUF / llama.cpp": "gguf",
            "llm-compressor": "llm_compressor", "built-in (inspectable)": "built_in",
            "mixed precision": "mixed"}


def family(name: str, lang: str = "en") -> str:
    """A method family's name in `lang` (an unknown family keeps its own name)."""
    key = FAMILIES.get(name)
    return t(f"family.{key}", lang) if key else name


def method_summary(cls, lang: str = "en") -> str:
    """A method's one-line summary (its class's `summary` is the English)."""
    return cls.summary if lang == "en" else t(f"method.{cls.name}", lang)


def option_label(name: str, english: str, lang: str = "en") -> str:
    return english if lang == "en" else t(f"option.{name}", lang)


@lru_cache(maxsize=None)
def _help_keys() -> dict[str, str]:
    return {text: key for key, text in catalogue("en").items() if key.startswith("help.")}


def option_help(english: str, lang: str = "en") -> str:
    """An option's help text in `lang`, found by its English (the config's metadata); the
    English where the catalogue lacks it (the catalogue test keeps them in step)."""
    key = _help_keys().get(english)
    return english if lang == "en" or key is None else t(key, lang)
