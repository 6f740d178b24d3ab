"""``rssnn``: one entry point for the toolkit's commands.

    rssnn train [flags of train/cifar.py]
    rssnn report RUN_FOLDER
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = {"train": "train.cifar", "report": "rssnn.report"}
    if not args or args[0] in ("-h", "--help") or args[0] not in commands:
        print(__doc__.strip(), file=sys.stderr if args and args[0] not in ("-h", "--help")
              else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    import importlib

    return importlib.import_module(commands[args[0]]).main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
