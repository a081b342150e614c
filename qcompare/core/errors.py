"""The one exception type for bad input: its message says what was wrong and what to do.

A message from the catalogue is raised by its key, `UserError(key="errors.x", **values)`: the
exception's text (what the CLI prints, what is stored with a failed job) is the English, and
`text(lang)` gives the same message in the page's language. A UserError made from a plain string is
English only (the CLI's own messages). `Message` is the same for a sentence that is returned
rather than raised (why a method cannot run here): a str holding the English, with `text(lang)`.
A value that is itself a Message or UserError is put in the message in the same language."""
from __future__ import annotations


def _in(values: dict, lang: str) -> dict:
    return {k: v.text(lang) if isinstance(v, (Message, UserError)) else v for k, v in values.items()}


def _say(key: str, lang: str, values: dict) -> str:
    from qcompare.i18n import catalogue as i18n

    return i18n.t(key, lang, **_in(values, lang))


class Message(str):
    """A catalogue sentence that is also its English text (for code that wants a str)."""

    def __new__(cls, key: str, **values):
        out = super().__new__(cls, _say(key, "en", values))
        out.key, out.values = key, values
        return out

    def text(self, lang: str = "en") -> str:
        return str(self) if lang == "en" else _say(self.key, lang, self.values)


def text_of(message, lang: str = "en") -> str:
    """Any message (a Message, a UserError, a plain str) in `lang` where it has a key."""
    return message.text(lang) if isinstance(message, (Message, UserError)) else str(message)


class UserError(Exception):
    """Raised for input a person can fix; the CLI and pages print its message, not a traceback."""

    def __init__(self, message: str = "", *, key: str | None = None, **values):
        if key is not None:
            message = _say(key, "en", values)
        elif isinstance(message, Message):           # a returned reason, now raised
            key, values = message.key, message.values
        super().__init__(str(message))
        self.key, self.values = key, values

    def text(self, lang: str = "en") -> str:
        """The message in `lang` (English where it has no key)."""
        if self.key is None or lang == "en":
            return str(self)
        return _say(self.key, lang, self.values)

    def translations(self) -> str | None:
        """The message in every catalogue language as JSON (stored beside a failed job's
        English text, so the Jobs page reads it in the page's language); None without a key."""
        if self.key is None:
            return None
        import json

        from qcompare.i18n import catalogue as i18n

        return json.dumps({lang: self.text(lang) for lang in i18n.LANGS}, ensure_ascii=False)


def stored_text(english: str | None, translations: str | None, lang: str) -> str | None:
    """A stored message (a failed job's error) in `lang`: its stored translation, else as stored."""
    if not translations or lang == "en":
        return english
    import json

    try:
        return json.loads(translations).get(lang) or english
    except (ValueError, AttributeError):
        return english
