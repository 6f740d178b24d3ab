"""``rssnn``: one entry point for the toolkit's commands.

rssnn train     [flags of train/cifar.py]        train a robust SNN
rssnn evaluate  [flags of train/evaluate.py]     attacks, masking checks, MPPD
rssnn export    [flags of export/to_netx.py]     NetX HDF5 + bit-exact verification (--nir FILE: import)
rssnn export --format nir [flags of export/to_nir.py]   the float network as a NIR graph
rssnn run       [flags of lava_procs.run]        Lava processes + on-device monitor
rssnn demo      [flags of commands/demo.py]      the whole pipeline on a short budget
rssnn report    RUN_FOLDER                       summary of a training run
rssnn cost      --net FILE.net --out REPORT.json Loihi 2 neurocores and chips (estimate);
                [--images N]                     + activity counted in Lava, energy range
rssnn certify   --net F | --checkpoint C --sigma S   certified L2 radii (randomized smoothing)
                [--n0 N0 --n N --alpha A --limit K --lava-check K]
rssnn migrate-checkpoint --trust SRC DST         re-save a trusted old checkpoint safely
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "rssnn.train.cifar",
    "evaluate": "rssnn.train.evaluate",
    "export": "rssnn.export.to_netx",
    "run": "rssnn.lava_procs.run",
    "demo": "rssnn.commands.demo",
    "report": "rssnn.commands.report",
    "cost": "rssnn.commands.cost",
    "certify": "rssnn.commands.certify",
    "migrate-checkpoint": "rssnn.train.migrate_checkpoint",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if args[0] not in COMMANDS:
        print(
            f"error: unknown command '{args[0][:60]}'; commands: {', '.join(COMMANDS)} (see rssnn --help)",
            file=sys.stderr,
        )
        return 2
    return importlib.import_module(COMMANDS[args[0]]).main(args[1:])


def entry() -> None:
    """The installed ``rssnn`` command (pyproject's console script)."""
    from rssnn.cli_support import exit_process

    exit_process(main())


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
