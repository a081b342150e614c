"""User-typed text (model paths, labels, options, corpus names) shown inside Streamlit markdown
as exactly what was typed: never as HTML, a link, an image or formatting."""
from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$])")


def literal(text: object) -> str:
    """`text` for a markdown string: HTML escaped first (a page may render HTML there), then
    markdown's special characters backslash-escaped, so `<h1>x` or `![a](http://b)` reads as
    written."""
    return _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=True))
