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


# Texts whose English lives in the code, once, and whose Japanese the catalogue holds under a
# key made from the code: a method's summary (`method.<name>`), an option's label
# (`option.<field>`), an option's help (`help.<its English text>`, as gettext keys by msgid),
# a metric's label (`metric.<column>`) and a family's name (`family.<its English name>`).
CODE_ENGLISH = ("method", "option", "help", "metric", "family")


def in_code(key: str, english: str, lang: str = "en") -> str:
    """A text whose English is in the code: `english` itself in English (or where the catalogue
    lacks the key), else the catalogue's translation."""
    if lang == "en":
        return english
    return catalogue(lang if lang in LANGS else "en").get(key, english)


def family(name: str, lang: str = "en") -> str:
    """A method family's name in `lang` (its English is `Method.family`)."""
    return in_code(f"family.{name}", name, lang)


def method_summary(cls, lang: str = "en") -> str:
    """A method's one-line summary (its class's `summary` is the English)."""
    return in_code(f"method.{cls.name}", cls.summary, lang)


def option_label(name: str, english: str, lang: str = "en") -> str:
    return in_code(f"option.{name}", english, lang)


def option_help(english: str, lang: str = "en") -> str:
    """An option's help text in `lang`, found by its English (the config's metadata)."""
    return in_code(f"help.{english}", english, lang)
