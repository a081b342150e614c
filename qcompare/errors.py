"""The one exception type for bad input: its message says what was wrong and what to do.

A message from the catalogue is raised by its key, `UserError(key="errors.x", **values)`: the
exception's text (what the CLI prints, what is stored with a failed job) is the English, and
`text(lang)` gives the same message in the page's language. A plain `UserError("...")` is
English only (the CLI's own messages)."""
from __future__ import annotations


class UserError(Exception):
    """Raised for input a person can fix; the CLI and pages print its message, not a traceback."""

    def __init__(self, message: str = "", *, key: str | None = None, **values):
        if key is not None:
            from qcompare import i18n

            message = i18n.t(key, "en", **values)
        super().__init__(message)
        self.key, self.values = key, values

    def text(self, lang: str = "en") -> str:
        """The message in `lang` (English where it has no key)."""
        if self.key is None or lang == "en":
            return str(self)
        from qcompare import i18n

        return i18n.t(self.key, lang, **self.values)
