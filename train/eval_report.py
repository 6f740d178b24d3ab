"""The report of a robustness evaluation (``train/evaluate.py``): the JSON results, a markdown
table, the plots and the console summary. The protocol (which attacks, on which images, the
masking checks) is :mod:`train.evaluate`'s; this module only shows what it measured.

``rows`` and ``checks`` are :func:`train.evaluate.evaluate_attacks`'s and
:func:`train.evaluate.masking_checks`'s lists of dicts; ``result`` the JSON object of
:func:`train.evaluate.run` (``rows``, ``checks`` and the run's settings).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def markdown_table(rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    """One table row per attack (ensembles first), each ensemble's members, then the checks."""
    lines = [
        "| attack | eps / sigma | steps | accuracy | deployed | n | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    # The headline first: the per-image worst case over the ensembles at each budget.
    rows = sorted(rows, key=lambda r: "members" not in r)
    for r in rows:
        budget = f"{r['eps'] * 255:.3g}/255" if r["kind"] != "clean" else "-"
        dep = f"{r['accuracy_deployed']:.4f}" if "accuracy_deployed" in r else "-"
        lines.append(
            f"| {r['attack']} | {budget} | {r['steps'] or '-'} | {r['accuracy']:.4f} | {dep} | "
            f"{r['n']} | {r['seconds']:.1f} |"
        )
    for r in (r for r in rows if "members" in r):
        lines += ["", f"{r['attack']}: images each member broke first (float; deployed), seconds", ""]
        dep = r.get("members_broke_deployed", {})
        for k in [*r["members"], *(k for k in dep if k not in r["members"])]:
            lines.append(
                f"- {k}: {r['members_broke'].get(k, '-')}; {dep.get(k, '-')}; "
                f"{r['members_seconds'].get(k, 0.0):.1f} s"
            )
    lines += ["", "Gradient-masking checks:", ""]
    lines += [f"- {'PASS' if c['passed'] else 'WARNING'}: {c['name']} ({c['detail']})" for c in checks]
    return "\n".join(lines) + "\n"


PLOT_FILES = ("acc_vs_eps.png", "acc_vs_sigma.png", "mppd_per_layer.png")  # beside --out


def plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Accuracy against PGD eps and Gaussian sigma, and the MPPD per layer, beside ``out``
    (white-box rows only; a plot without rows is skipped). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rssnn.atomic import atomic_save_figure

    written = []
    white = [r for r in rows if not r["transfer"]]
    for kind, fname, xlabel in (
        ("pgd", PLOT_FILES[0], "PGD eps (/255)"),
        ("gn", PLOT_FILES[1], "Gaussian sigma (/255)"),
    ):
        sel = [r for r in white if r["kind"] == kind]
        if not sel:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for steps in sorted({r["steps"] for r in sel}):
            pts = sorted((r["eps"] * 255, r["accuracy"]) for r in sel if r["steps"] == steps)
            ax.plot(*zip(*pts), "o-", label=f"{steps} steps" if kind == "pgd" else "noise")
        ax.set(xlabel=xlabel, ylabel="accuracy", ylim=(0, 1), title=f"accuracy vs {xlabel}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out.parent / fname
        atomic_save_figure(fig, path, dpi=110)
        plt.close(fig)
        written.append(path)
    attacked = [r for r in white if r["mppd"]]
    if attacked:
        fig, ax = plt.subplots(figsize=(7, 4))
        layers = list(attacked[0]["mppd"])
        for r in attacked:
            ax.plot(range(len(layers)), [r["mppd"][k] for k in layers], "o-", label=r["attack"])
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="mean eps^2 (reset-free MPPD)", yscale="log", title="MPPD per layer")
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = out.parent / PLOT_FILES[2]
        atomic_save_figure(fig, path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def output_paths(out: Path) -> list[Path]:
    """Every file :func:`write_report` writes for ``--out`` (checked before any attack runs)."""
    return [out, out.with_suffix(".md"), *(out.parent / name for name in PLOT_FILES)]


def write_report(out: Path, result: dict[str, Any]) -> None:
    """``out`` (JSON), the markdown table beside it (.md), the plots; the table, each ensemble's
    robust accuracy and any failed masking check on the console."""
    from rssnn.atomic import atomic_write_text

    rows, checks = result["rows"], result["checks"]
    atomic_write_text(out, json.dumps(result, indent=2))
    table = markdown_table(rows, checks)
    atomic_write_text(out.with_suffix(".md"), table)
    plots(rows, out)
    print(table, end="")
    for r in rows:
        if "members" in r:
            dep = f", deployed {r['accuracy_deployed']:.4f}" if "accuracy_deployed" in r else ""
            print(
                f"robust accuracy at {r['eps'] * 255:g}/255 "
                f"(worst case over {r['kind']}): float {r['accuracy']:.4f}{dep}"
            )
    for c in checks:
        if not c["passed"]:
            print(f"WARNING: masking check failed: {c['name']} ({c['detail']})", file=sys.stderr)
