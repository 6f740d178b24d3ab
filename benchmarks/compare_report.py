"""Tables and the plot of the robustness experiment, from its committed per-cell result files.

Reads ``benchmarks/results/compare/*.json`` (one per trained and evaluated cell, written by
``robustness_compare.py``), pairs cells by seed and image (:mod:`rssnn.stats`), and writes
``summary.json``, ``rho_sweep.png`` beside them and the tables between markers in
docs/results.md. Works on whatever subset of the design has finished.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rssnn.stats import paired_difference, parse_correct

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- robustness_compare:begin -->", "<!-- robustness_compare:end -->"
COLUMNS = [("clean", "clean"), ("gn:8/255", "GN 8")]
COLUMNS += [(f"fgsm:{e}/255", f"FGSM {e}") for e in (1, 2, 4, 8)]
COLUMNS += [(f"pgd:{e}/255:7", f"PGD-7 {e}") for e in (1, 2, 4, 8)]
COLUMNS += [(f"ensemble:{e}/255", f"**worst {e}**") for e in (2, 8)]
EFFECT_COLUMNS = [
    ("clean", "clean"),
    ("pgd:2/255:7", "PGD-7 2/255"),
    ("ensemble:2/255", "worst case 2/255"),
    ("pgd:8/255:7", "PGD-7 8/255"),
    ("ensemble:8/255", "worst case 8/255"),
]


def load_cells(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "summary.json"]


def outcomes(cell: dict, attack: str) -> np.ndarray | None:
    row = next((r for r in cell["rows"] if r["attack"] == attack), None)
    return None if row is None else parse_correct(row["correct"])


def group(cells: list[dict], neuron: str, mode: str, rho: float) -> dict[int, dict]:
    return {c["seed"]: c for c in cells if (c["neuron"], c["mode"], c["rho"]) == (neuron, mode, rho)}


def accuracy_table(cells: list[dict]) -> tuple[list[str], list[dict]]:
    lines = [
        "| neuron | training | rho | seeds | " + " | ".join(c for _, c in COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    records = []
    keys = sorted({(c["mode"], c["neuron"], c["rho"]) for c in cells})
    for mode, neuron, rho in keys:
        runs = list(group(cells, neuron, mode, rho).values())
        out = []
        rec = dict(neuron=neuron, mode=mode, rho=rho, seeds=sorted(r["seed"] for r in runs))
        for key, _ in COLUMNS:
            accs = [100 * o.mean() for r in runs if (o := outcomes(r, key)) is not None]
            if not accs:
                out.append("-")
                continue
            rec[key] = dict(
                mean=float(np.mean(accs)), sd=float(np.std(accs, ddof=1)) if len(accs) > 1 else None
            )
            out.append(f"{np.mean(accs):.1f}" + (f" ± {np.std(accs, ddof=1):.1f}" if len(accs) > 1 else ""))
        records.append(rec)
        lines.append(f"| {neuron} | {mode} | {rho:g} | {len(runs)} | " + " | ".join(out) + " |")
    return lines, records


def effect(cells: list[dict], a: tuple, b: tuple, attack: str):
    """B - A over the seeds both cells have (a, b = (neuron, mode, rho))."""
    ga, gb = group(cells, *a), group(cells, *b)
    seeds = sorted(set(ga) & set(gb))
    oa = [outcomes(ga[s], attack) for s in seeds]
    ob = [outcomes(gb[s], attack) for s in seeds]
    if not seeds or any(o is None for o in oa + ob):
        return None
    return paired_difference(np.stack(oa), np.stack(ob))


def effects_table(cells: list[dict]) -> tuple[list[str], list[dict]]:
    lines = [
        "| training | effect | seeds | " + " | ".join(c for _, c in EFFECT_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(EFFECT_COLUMNS),
    ]
    records = []
    for mode in ("gaussian", "fgsm"):
        contrasts = [
            ("rho 0 -> 1, LIF", ("lif", mode, 0.0), ("lif", mode, 1.0)),
            ("rho 0 -> 1, DLIF", ("dlif", mode, 0.0), ("dlif", mode, 1.0)),
            ("LIF -> DLIF, rho 0", ("lif", mode, 0.0), ("dlif", mode, 0.0)),
            ("LIF -> DLIF, rho 1", ("lif", mode, 1.0), ("dlif", mode, 1.0)),
        ]
        for label, a, b in contrasts:
            diffs = [effect(cells, a, b, key) for key, _ in EFFECT_COLUMNS]
            if all(d is None for d in diffs):
                continue
            seeds = max(d.seeds for d in diffs if d is not None)
            texts = ["-" if d is None else f"{d.text()} (p {d.p_mcnemar:.2g})" for d in diffs]
            lines.append(f"| {mode} | {label} | {seeds} | " + " | ".join(texts) + " |")
            records.append(
                dict(
                    mode=mode,
                    effect=label,
                    **{k: (d.to_dict() if d else None) for (k, _), d in zip(EFFECT_COLUMNS, diffs)},
                )
            )
    return lines, records


LEVER_COLUMNS = [("clean", "clean"), ("ensemble:2/255", "worst 2/255"), ("ensemble:8/255", "worst 8/255")]


def rho0_base(t: int, lever: str, rho: float) -> tuple | None:
    """Issue 9's search: every variant against rho 0 at the same T (None: the base itself)."""
    return None if (lever, rho) == ("", 0.0) else (t, "", 0.0)


def same_rho_base(t: int, lever: str, rho: float) -> tuple | None:
    """One factor at a time: a lever against the same rho and T without it (None: not a lever)."""
    return (t, "", rho) if lever else None


def levers_table(cells: list[dict], sweep_cell: str, base_of=rho0_base) -> tuple[list[str], list[dict]]:
    """Every variant of one cell (T, lever, rho) against ``base_of(T, lever, rho)``, paired per
    seed and image.

    With ``rho0_base`` this is issue 9's search among the paper's levers: the best worst-case
    accuracy for a clean drop of at most 2 points, chosen on seed 0 and confirmed on the other
    seeds. With ``same_rho_base`` it isolates what each lever adds to MS-MPPD at its rho.
    """
    neuron, mode = sweep_cell.split("-")
    mine = [c for c in cells if (c["neuron"], c["mode"]) == (neuron, mode)]
    variants = sorted({(c["timesteps"], c.get("lever", ""), c["rho"]) for c in mine})
    lines = [
        "| variant | seeds | " + " | ".join(f"{c} (B - A)" for _, c in LEVER_COLUMNS) + " |",
        "|---|---|" + "---|" * len(LEVER_COLUMNS),
    ]
    records = []

    def by_seed(variant: tuple) -> dict[int, dict]:
        return {c["seed"]: c for c in mine if (c["timesteps"], c.get("lever", ""), c["rho"]) == variant}

    for t, lever, rho in variants:
        base_variant = base_of(t, lever, rho)
        if base_variant is None:
            continue
        base, runs = by_seed(base_variant), by_seed((t, lever, rho))
        seeds = sorted(set(base) & set(runs))
        if not seeds:
            continue
        diffs = []
        for key, _ in LEVER_COLUMNS:
            oa, ob = [outcomes(base[x], key) for x in seeds], [outcomes(runs[x], key) for x in seeds]
            ok = all(o is not None for o in oa + ob)
            diffs.append(paired_difference(np.stack(oa), np.stack(ob)) if ok else None)
        label = f"rho {rho:g}, T {t}" + (f", {lever}" if lever else "")
        texts = ["-" if d is None else f"{d.text()} (p {d.p_mcnemar:.2g})" for d in diffs]
        lines.append(f"| {label} | {','.join(map(str, seeds))} | " + " | ".join(texts) + " |")
        records.append(
            dict(rho=rho, timesteps=t, lever=lever, seeds=seeds)
            | {k: (d.to_dict() if d else None) for (k, _), d in zip(LEVER_COLUMNS, diffs)}
        )
    return lines, records


def sweep(cells: list[dict], sweep_cell: str, folder: Path) -> tuple[list[str], list[dict]]:
    neuron, mode = sweep_cell.split("-")
    rhos = sorted({c["rho"] for c in cells if (c["neuron"], c["mode"]) == (neuron, mode)})
    keys = ["clean", "pgd:2/255:7", "ensemble:2/255", "pgd:8/255:7", "ensemble:8/255"]
    lines = [
        f"| rho ({neuron}, {mode}) | seeds | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    records = []
    for rho in rhos:
        runs = list(group(cells, neuron, mode, rho).values())
        means = {}
        for key in keys:
            accs = [100 * o.mean() for r in runs if (o := outcomes(r, key)) is not None]
            means[key] = float(np.mean(accs)) if accs else None
        records.append(dict(rho=rho, seeds=len(runs), **means))
        lines.append(
            f"| {rho:g} | {len(runs)} | "
            + " | ".join("-" if means[k] is None else f"{means[k]:.1f}" for k in keys)
            + " |"
        )
    if len(records) >= 2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 4))
        for key, marker in (("ensemble:2/255", "o-"), ("ensemble:8/255", "s-")):
            pts = [(r["clean"], r[key], r["rho"]) for r in records if r[key] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=f"worst case {key[9:]}")
                for cx, ry, rho in pts:
                    ax.annotate(
                        f"rho {rho:g}", (cx, ry), fontsize=7, xytext=(3, 3), textcoords="offset points"
                    )
        ax.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%)", title=f"rho sweep: {sweep_cell}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "rho_sweep.png", dpi=110)
        plt.close(fig)
    return lines, records


def checks_lines(cells: list[dict]) -> list[str]:
    failed = [(c["cell"], k["name"], k["detail"]) for c in cells for k in c["checks"] if not k["passed"]]
    square = [
        (
            c["cell"],
            r["attack"],
            sum(v for k, v in r["members_broke"].items() if k.startswith("square")),
            r["n"],
        )
        for c in cells
        for r in c["rows"]
        if "members_broke" in r
    ]
    found = max((s[2] for s in square), default=0)
    lines = [
        f"Masking checks: {sum(len(c['checks']) for c in cells) - len(failed)} passed, {len(failed)} "
        f"failed over {len(cells)} cells. Most images the gradient-free Square attack broke after "
        f"every gradient attack had failed, in any cell: {found}."
    ]
    lines += [f"- WARNING {cell}: {name} ({detail})" for cell, name, detail in failed]
    return lines


def write_report(folder: Path, sweep_cell: str, timesteps: int, docs: Path | None = DOCS) -> str:
    """The report of the cells in ``folder``; also written into ``docs`` (None: not written)."""
    every = load_cells(folder)
    cells = [c for c in every if c["timesteps"] == timesteps and not c.get("lever")]
    if not cells:
        return "no finished cells yet"
    first = cells[0]
    acc_lines, acc = accuracy_table(cells)
    eff_lines, eff = effects_table(cells)
    sweep_lines, sw = sweep(cells, sweep_cell, folder)
    lever_lines, lev = levers_table(every, sweep_cell)
    lever_only_lines, lev_only = levers_table(every, sweep_cell, same_rho_base)
    text = "\n".join(
        [
            f"Budget per cell: {first['train_limit']} training images x {first['epochs']} epochs, cpu "
            f"model (width 32), T = {timesteps}; {first['eval_images']} validation images held out of "
            "training (the same images for every cell and seed: `--split-seed 0`), white-box through "
            "the surrogate; 'worst' = per-image worst case over the attack ensemble (FGSM, PGD-10 "
            "through surrogate widths 0.5/1/2 plus a restart, APGD-CE, APGD-DLR, Square 500 queries). "
            f"{len(cells)} cells finished. Command: `python benchmarks/robustness_compare.py`.",
            "",
            "Accuracy (%), mean ± sd over seeds:",
            "",
            *acc_lines,
            "",
            "Effects (points, B - A): mean over seeds [95 % paired bootstrap interval over images], "
            "seed-to-seed sd, exact McNemar p on the pooled (seed, image) pairs:",
            "",
            *eff_lines,
            "",
            "rho sweep (accuracy %, mean over seeds):",
            "",
            *sweep_lines,
            "",
            f"Levers ({sweep_cell}): each variant minus rho 0 at the same T, paired per seed and image "
            "[95 % bootstrap interval] (McNemar p):",
            "",
            *lever_lines,
            "",
            f"Each lever alone ({sweep_cell}): the lever minus the same rho and T without it, paired "
            "per seed and image [95 % bootstrap interval] (McNemar p):",
            "",
            *lever_only_lines,
            "",
            *checks_lines(cells),
        ]
    )
    (folder / "summary.json").write_text(
        json.dumps(dict(accuracy=acc, effects=eff, sweep=sw, levers=lev, lever_alone=lev_only), indent=1)
    )
    if docs is not None:
        doc = docs.read_text() if docs.exists() else "# Results\n"
        if BEGIN not in doc:
            doc += f"\n{BEGIN}\n{END}\n"
        head, rest = doc.split(BEGIN, 1)
        docs.write_text(head + BEGIN + "\n" + text + "\n" + rest[rest.index(END) :])
    return text
