"""The one exception type for bad input: its message says what was wrong and what to do."""


class UserError(Exception):
    """Raised for input a person can fix; the CLI and pages print its message, not a traceback."""
