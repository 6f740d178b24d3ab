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


# What --split may choose wherever a command evaluates, verifies or measures on images: the
# images the run held out (val) or the test batch (test). The training images are never a
# choice there: a number measured on them says nothing about the deployed model.
SPLITS = ("val", "test")


def add_data_flags(parser: argparse._ActionsContainer, *, split: bool = True) -> None:
    """``--data-root`` (dest ``data_root``, default None: the offline copy) and, with ``split``,
    ``--split`` (dest ``split``, one of :data:`SPLITS`, default val): one definition and one help
    text for every command. ``parser`` is a parser or one of its argument groups.

    A test split that the data lacks (the offline copy has no test batch) is refused in one
    line where the split is read (``rssnn.cifar.load_split``).
    """
    parser.add_argument(
        "--data-root",
        default=None,
        help="CIFAR folder: the one holding cifar-10-batches-py / cifar-100-python, or that folder "
        "itself (default: ../shared/data/cifar10 beside the project)",
    )
    if split:
        parser.add_argument(
            "--split",
            choices=SPLITS,
            default="val",
            help="images to use: val, the ones the training run held out (its --val-size and "
            "--split-seed), or test, the test batch (the offline copy has none) (default: val)",
        )


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit status 2 as argparse's own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
