"""The robustness experiment's plan and report (benchmarks/robustness_compare.py, compare_report.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import compare_report, robustness_compare  # noqa: E402


def _args(argv: list[str]):
    defaults = dict(
        seeds_gaussian=[0, 1, 2], seeds_fgsm=[0, 1], only=None, timesteps=4,
        sweep_cell="dlif-gaussian", sweep_seeds=[0], lever_seeds=[0, 1],
    )  # fmt: skip
    defaults.update(dict(a.split("=") for a in argv))
    return argparse.Namespace(**defaults)


def test_plan_completes_the_2x2_first_and_names_every_lever():
    cells = robustness_compare.plan(_args([]))
    names = [robustness_compare.cell_name(n, m, r, t, s, lv) for n, m, r, s, t, lv in cells]
    assert len(names) == len(set(names))  # a cell is trained once, whatever lists it
    first = {(n, m, r) for n, m, r, s, t, lv in cells[:8]}
    assert first == {(n, m, r) for n in ("lif", "dlif") for m in ("gaussian", "fgsm") for r in (0.0, 1.0)}
    levers = [c for c in cells if c[5]]
    assert {c[5] for c in levers} == set(robustness_compare.LEVERS)
    assert "dlif-gaussian-rho1-T8-s1" in names and "dlif-gaussian-rho3-T4-s0-all" in names


def _cell(folder: Path, neuron: str, rho: float, seed: int, ok: np.ndarray, lever: str = "") -> None:
    rows = [
        dict(attack=a, kind="ensemble" if a.startswith("ensemble") else "x", n=len(ok),
             accuracy=float(ok.mean()), correct="".join("1" if v else "0" for v in ok),
             members_broke={"square": 0})
        for a, _ in compare_report.COLUMNS
    ]  # fmt: skip
    name = robustness_compare.cell_name(neuron, "gaussian", rho, 4, seed, lever)
    payload = dict(cell=name, neuron=neuron, mode="gaussian", rho=rho, seed=seed, timesteps=4, lever=lever)
    payload.update(train_limit=100, epochs=1, eval_images=len(ok), rows=rows, checks=[])
    (folder / f"{name}.json").write_text(json.dumps(payload))


def test_report_pairs_cells_and_keeps_levers_out_of_the_2x2(tmp_path):
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        base = rng.random(400) < 0.4
        _cell(tmp_path, "lif", 0.0, seed, base)
        _cell(tmp_path, "lif", 1.0, seed, base | (rng.random(400) < 0.2))  # rho helps by ~12 points
        _cell(tmp_path, "lif", 1.0, seed, np.zeros(400, bool), lever="all")  # must not join rho 1
    docs = tmp_path / "results.md"
    text = compare_report.write_report(tmp_path, "lif-gaussian", 4, docs=None)
    assert not docs.exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    rho1 = next(r for r in summary["accuracy"] if r["rho"] == 1.0)
    assert rho1["seeds"] == [0, 1] and rho1["clean"]["mean"] > 45  # the lever's zeros stayed out
    effect = next(e for e in summary["effects"] if e["effect"].startswith("rho 0 -> 1, LIF"))
    assert effect["clean"]["ci_low"] > 5 and effect["clean"]["p_mcnemar"] < 1e-6
    assert "rho 0 -> 1, LIF" in text


def test_lever_alone_pairs_each_lever_with_the_same_rho_not_with_rho_0(tmp_path):
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        base = rng.random(400) < 0.3
        _cell(tmp_path, "dlif", 0.0, seed, base)
        rho1 = base | (rng.random(400) < 0.3)  # rho 1 alone: about +20 points over rho 0
        _cell(tmp_path, "dlif", 1.0, seed, rho1)
        _cell(tmp_path, "dlif", 1.0, seed, rho1.copy(), lever="gain")  # the lever changes nothing
    compare_report.write_report(tmp_path, "dlif-gaussian", 4, docs=None)
    summary = json.loads((tmp_path / "summary.json").read_text())
    vs_rho0 = next(r for r in summary["levers"] if r["lever"] == "gain")
    alone = summary["lever_alone"]
    assert [r["lever"] for r in alone] == ["gain"]  # plain rho values are not levers
    assert vs_rho0["clean"]["ci_low"] > 10  # against rho 0 the lever inherits rho's gain
    assert alone[0]["clean"]["diff"] == 0 and alone[0]["seeds"] == [0, 1]  # alone it adds nothing
