"""The one exception type that the command-line tools turn into a one-line message."""


class UserError(Exception):
    """Bad input from the user (data, flags, files): printed as one line, exit status 2."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message cut to its first line (and to ``limit`` characters), or its class
    name when it has none: what a one-line error quotes from an underlying failure."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else exc.__class__.__name__
    return line[:limit] if limit else line
