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
    from rssnn.signals import exit_signals_raise

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


def exit_process(code: int) -> NoReturn:
    """End a command's process with ``code`` (what ``if __name__ == "__main__"`` calls).

    After an interrupt (``code`` 128 + a signal number) a Lava run may still have been starting
    its workers: one forked after the cleanup took its list of children outlives it, and
    Python's own exit would then wait for it forever (multiprocessing joins every child at
    exit). So an interrupted command terminates what is left and leaves with ``os._exit``;
    a worker forked later still sees its parent gone and ends itself (rssnn.lava_guard).
    """
    if code > 128:
        import os

        from rssnn.lava_guard import terminate_children

        terminate_children(timeout=2.0)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2 as argparse's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
