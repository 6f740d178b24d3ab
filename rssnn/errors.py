"""The one exception type that the command-line tools turn into a one-line message."""


class UserError(Exception):
    """Bad input from the user (data, flags, files): printed as one line, exit status 2."""
