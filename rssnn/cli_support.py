"""Turn a command's UserError into one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def run_cli(command: Callable[[], Any], interrupted: str = "nothing half-written was left") -> int:
    """Run ``command``; UserError -> 'error: ...' and exit 2; Ctrl-C, SIGTERM or SIGHUP -> one
    line and exit 128 + the signal number (130, 143, 129), as a shell reports them."""
    import signal

    from rssnn.errors import UserError
    from rssnn.lava_guard import exit_signals_raise

    try:
        with exit_signals_raise():
            command()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"interrupted ({signal.Signals(signum).name}); {interrupted}", file=sys.stderr)
        return 128 + signum
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2 as argparse's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
