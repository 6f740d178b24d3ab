"""Turn a command's UserError into one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def run_cli(command: Callable[[], Any]) -> int:
    """Run ``command``; UserError -> 'error: ...' and exit 2, Ctrl-C -> exit 130."""
    from rssnn.errors import UserError

    try:
        command()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2 as argparse's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
