"""Convert a trusted old or foreign-pickled checkpoint into one that loads without running code.

    rssnn migrate-checkpoint --trust old.pt new.pt

Reading ``old.pt`` unpickles it fully, which can execute code it carries: do this only for files
you wrote yourself or otherwise trust. ``--trust`` is required to say so. The new file holds
tensors and plain data only and loads safely everywhere.
"""

from __future__ import annotations

# Run as a file (python train/migrate_checkpoint.py) or as -m train.migrate_checkpoint: this
# module's relative imports resolve inside one package, rssnn.train (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.train"

import sys


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import OneLineParser, run_cli

    from . import checkpoint

    ap = OneLineParser(prog="rssnn migrate-checkpoint", description=__doc__)
    ap.add_argument("src", help="the checkpoint to convert (fully unpickled: trusted files only)")
    ap.add_argument("dst", help="new checkpoint file to write")
    ap.add_argument("--trust", action="store_true", help="required: you trust SRC not to run code")
    args = ap.parse_args(argv)
    if not args.trust:
        ap.error("reading SRC fully can run code stored in it; add --trust if you trust the file")
    return run_cli(lambda: (checkpoint.migrate(args.src, args.dst), print(f"wrote {args.dst}")))


if __name__ == "__main__":
    sys.exit(main())
