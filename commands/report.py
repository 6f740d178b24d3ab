"""Print the summary of a run folder: accuracies, MS-MPPD, learned dynamics, gain bounds, files.

python -m rssnn.commands.report runs/main
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rssnn.errors import UserError


def summarize(run: Path) -> str:
    metrics_file = run / "metrics.json"
    if not metrics_file.is_file():
        raise UserError(f"'{run}' holds no metrics.json: not a finished training run")
    epochs = json.loads(metrics_file.read_text())["epochs"]
    config = json.loads((run / "config.json").read_text())
    last = epochs[-1]
    cfg = config["config"]
    lines = [
        f"run {run}: {cfg['model']} ({cfg['neuron']}, T={cfg['timesteps']}), {cfg['mode']} "
        f"training, rho={cfg['rho']:g}, {config['train_images']} training images, "
        f"{last['epoch']} epochs, {last['elapsed_train_s'] / 60:.1f} min of training",
        "",
        "| metric | value |",
        "|---|---|",
        f"| validation accuracy, clean ({config['val_images']} images) | {last['val_acc']:.4f} |",
        f"| validation accuracy, Gaussian sigma {cfg['sigma'] * 255:.3g}/255 | "
        f"{last['val_acc_gn']:.4f} |",
        f"| best clean validation accuracy | {max(e['val_acc'] for e in epochs):.4f} |",
        f"| MS-MPPD (last epoch, train) | {last['train_mppd']:.4g} |",
        "",
        "| spiking layer | leak (mean) | threshold (mean) | gamma bound |",
        "|---|---|---|---|",
    ]
    for key in (k for k in last if k.startswith("leak_mean/")):
        layer = key.split("/", 1)[1]
        unit = layer.rsplit(".neuron", 1)[0]
        gamma = last.get(f"gamma/{unit}")
        lines.append(
            f"| {layer} | {last[key]:.4f} | {last[f'threshold_mean/{layer}']:.4f} | " f"{gamma:.3g} |"
            if gamma is not None
            else f"| {layer} | {last[key]:.4f} | {last[f'threshold_mean/{layer}']:.4f} | - |"
        )
    lines += ["", "files:"] + [f"  {p}" for p in sorted(run.iterdir()) if p.is_file()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rssnn.commands.report RUN_FOLDER", file=sys.stderr)
        return 2
    return run_cli(lambda: print(summarize(Path(args[0]))))


if __name__ == "__main__":
    sys.exit(main())
