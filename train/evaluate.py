"""Robustness evaluation of a trained spiking model: clean, Gaussian noise, FGSM, PGD, APGD,
SA-PGD, Square and the per-image worst case over attack ensembles, float and deployed.

    python train/evaluate.py --checkpoint runs/cifar/best.pt --split val --limit 1000 \
        --attacks clean,gn:8/255,fgsm:8/255,pgd:8/255:7,pgd:8/255:20,apgd-ce:8/255 \
        --out runs/cifar/eval/results.json

White-box through the surrogate gradient (BPTT), eval mode, L-inf in [0, 1] pixel space.
Every report carries gradient-masking checks (accuracy must not rise with more PGD steps or a
larger eps; PGD at eps 64/255 must drive accuracy near zero; a transfer attack from a second,
independently trained model, --transfer-checkpoint, must not beat the white-box one; the
gradient-free Square attack must find little beyond the gradient members of an ensemble) and,
per attack and spiking layer, the membrane perturbation measured in PyTorch: the true one
(with resets) and the paper's reset-free MPPD.

Ensemble rows also give ``accuracy_deployed``: the robust accuracy of the integer model that
Lava runs bit for bit (the checkpoint lowered in memory, or --net), with every member's
candidates checked on it and Square run against it directly (black box).

This module is the protocol (the attacks, the images, the per-layer membrane perturbation, the
masking checks); the files and the console summary it leaves are :mod:`train.eval_report`'s.
"""

from __future__ import annotations

# Run as a file (python train/evaluate.py) or as -m train.evaluate: this module's relative imports
# resolve inside one package, rssnn.train (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.train"

import argparse
import sys
import time
from pathlib import Path
from typing import Any

MASKING_CHECK_ATTACK = "pgd:64/255:10:16/255"


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser, add_data_flags

    from .attacks import DEFAULT_ATTACKS

    ap = OneLineParser(
        prog="python train/evaluate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--checkpoint", required=True, help="checkpoint from train/cifar.py")
    add_data_flags(ap)
    ap.add_argument("--limit", type=int, default=1000, help="images to evaluate (default 1000)")
    ap.add_argument(
        "--attacks",
        default=DEFAULT_ATTACKS,
        help="comma-separated list (default: the reference protocol): clean, "
        "gn:SIGMA, fgsm:EPS, pgd:EPS:STEPS[:ALPHA], apgd-ce:EPS[:STEPS], "
        "apgd-dlr:EPS[:STEPS], sapgd:EPS[:STEPS], square:EPS[:QUERIES], ensemble:EPS, "
        "ensemble-full:EPS; a gradient attack may add @SURROGATE (tri|exp|rect|atanWIDTH, assg, "
        "pdsg, rga, bptr), e.g. apgd-ce:8/255:100@exp0.5. ensemble: the per-image worst case "
        "over FGSM, APGD through sharper triangle and exponential surrogates, ASSG + SA-PGD, RGA, "
        "PDSG, APGD-DLR and Square (1,000 queries); ensemble-full: the surrogate family, 100-step "
        "APGD, both rate gradients and Square at 5,000 queries (docs/evaluation.md)",
    )
    ap.add_argument(
        "--square-queries",
        type=int,
        default=None,
        help="queries of the Square attack inside each ensemble (default: the ensemble's own)",
    )
    ap.add_argument(
        "--deployed-square-queries",
        type=int,
        default=None,
        help="queries of the Square attack run on the integer model (default: as on the float one)",
    )
    ap.add_argument(
        "--net",
        default=None,
        help="NetX file of the deployed model (default: the checkpoint lowered in memory)",
    )
    ap.add_argument(
        "--no-deployed", action="store_true", help="skip the deployed (integer) model's robust accuracy"
    )
    ap.add_argument(
        "--attack-surrogate-width",
        type=float,
        default=None,
        help="surrogate half-width used by the attacks (default: the model's own)",
    )
    ap.add_argument(
        "--transfer-checkpoint",
        default=None,
        help="second, independently trained model: adds transfer-attack rows",
    )
    ap.add_argument("--no-masking-checks", action="store_true", help="skip the extra PGD eps=64/255 row")
    ap.add_argument("--batch-size", type=int, default=100, help="images per batch (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="noise and attack seed (default 0)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--out", default="results.json", help="JSON results; .md and PNGs beside it")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    return ap


def _load_model(path: str, device):
    from . import checkpoint

    ckpt = checkpoint.load(path)
    return checkpoint.restore_model(ckpt, path).to(device).eval(), ckpt


def _deployed_model(net_path, model, ckpt):
    """The integer model: a NetX file's, or the checkpoint lowered in memory (the same integers
    ``export/to_netx.py`` writes)."""
    from .deployed import IntegerModel, lower_model

    if net_path:
        from rssnn import netx_file

        return IntegerModel(netx_file.read(net_path)[0])
    return IntegerModel(lower_model(model, ckpt.get("class_names")))


def membrane_perturbation(model, x, x_adv) -> dict[str, tuple[float, float]]:
    """Per spiking layer: (mean true MPP^2 with resets, mean reset-free MPPD eps^2).

    Both in units of the layer's threshold, the MPPD with the reference leak 0.99: a common
    scale, so models with other learned leaks and thresholds compare.
    """
    import torch

    from . import mppd
    from .models import spiking_layers

    layers = spiking_layers(model)
    out = {}
    with torch.no_grad(), mppd.recording(layers):
        model(x)
        clean = [(m.recorded_current, m.recorded_membrane) for _, m in layers]
        model(x_adv)
        for (name, m), (i_c, m_c) in zip(layers, clean):
            th = m.clamped()[1].view((1, -1) + (1,) * (m_c.dim() - 2))
            h_c = m_c * (m_c < th) / th  # post-reset potential
            h_p = m.recorded_membrane * (m.recorded_membrane < th) / th
            leak, unit = mppd.recursion_params(m, "fixed")
            eps = mppd.mppd_sequence((i_c - m.recorded_current) / unit.view_as(th), leak)
            out[name] = ((h_c - h_p).pow(2).mean().item(), eps.pow(2).mean().item())
    return out


def evaluate_attacks(
    model,
    specs,
    x_all,
    y_all,
    batch_size,
    seed,
    surrogate_width=None,
    source=None,
    quiet=False,
    label_suffix="",
    square_queries=None,
    deployed=None,
    deployed_square_queries=None,
):
    """Accuracy and membrane perturbation per attack; ``source`` crafts (transfer) if given.

    Every row keeps ``correct``, one '0'/'1' per image in order, for paired statistics; an
    ensemble row also counts, per member, the images that member broke first
    (``members_broke``) and its seconds (``members_seconds``); with ``deployed`` (a
    :class:`train.deployed.IntegerModel`) it adds ``accuracy_deployed``, ``correct_deployed``
    and ``members_broke_deployed`` (:func:`train.attacks.worst_case`).
    """
    import torch
    from tqdm import tqdm

    from rssnn.perturbation import KINDS

    from .attacks import AttackWrapper, craft, ensemble_members, with_square_queries, worst_case

    target = AttackWrapper(model, surrogate_width)
    crafter = AttackWrapper(source, surrogate_width) if source is not None else target
    rows = []
    for i, spec in enumerate(specs):
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        correct, n, t0 = 0, 0, time.perf_counter()
        per_image: list[str] = []
        per_image_dep: list[str] = []
        members: dict[str, int] = {}
        members_dep: dict[str, int] = {}
        member_s: dict[str, float] = {}
        mpp: dict[str, list[float]] = {}
        is_ensemble = KINDS[spec.kind].ensemble
        if is_ensemble:
            plan = ensemble_members(spec.eps, spec.kind)
            if square_queries:
                plan = with_square_queries(plan, square_queries)
        batches = range(0, len(y_all), batch_size)
        for start in tqdm(
            batches,
            desc=f"{spec.text}{label_suffix}",
            leave=False,
            disable=quiet,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        ):
            x, y = x_all[start : start + batch_size], y_all[start : start + batch_size]
            if is_ensemble:
                res = worst_case(model, plan, x, y, gen, deployed, deployed_square_queries)
                ok, x_adv = res.robust, res.x_adv
                for store, got in (
                    (members, res.broke),
                    (members_dep, res.broke_deployed),
                    (member_s, res.seconds),
                ):
                    for k, v in got.items():
                        store[k] = store.get(k, 0) + v
                if res.robust_deployed is not None:
                    per_image_dep.append("".join("1" if v else "0" for v in res.robust_deployed.tolist()))
            else:
                x_adv = craft(spec, crafter, x, y, gen)
                with torch.no_grad():
                    ok = target(x_adv).argmax(1) == y
            correct += int(ok.sum())
            per_image.append("".join("1" if v else "0" for v in ok.tolist()))
            n += len(y)
            if spec.kind != "clean":
                for name, (true, eps) in membrane_perturbation(model, x, x_adv).items():
                    acc = mpp.setdefault(name, [0.0, 0.0])
                    acc[0] += true * len(y)
                    acc[1] += eps * len(y)
        rows.append(
            dict(
                attack=spec.text + label_suffix,
                kind=spec.kind,
                eps=spec.eps,
                steps=spec.steps,
                alpha=spec.alpha,
                accuracy=correct / n,
                n=n,
                transfer=source is not None,
                seconds=time.perf_counter() - t0,
                mpp_true={k: v[0] / n for k, v in mpp.items()},
                mppd={k: v[1] / n for k, v in mpp.items()},
                correct="".join(per_image),
                **(
                    dict(members=[m.text for m in plan], members_broke=members, members_seconds=member_s)
                    if is_ensemble
                    else {}
                ),
                **(
                    dict(
                        accuracy_deployed="".join(per_image_dep).count("1") / n,
                        correct_deployed="".join(per_image_dep),
                        members_broke_deployed=members_dep,
                    )
                    if per_image_dep
                    else {}
                ),
            )
        )
    return rows


def masking_checks(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The standard sanity checks against gradient masking; each with passed + detail."""
    tol = max(2.0 / n, 0.01)
    white = [r for r in rows if not r["transfer"]]
    checks = []
    pgd = [r for r in white if r["kind"] == "pgd"]
    # More steps at the same step size, or a larger eps at the same step count, must not help.
    for group, order, label in (
        (("eps", "alpha"), "steps", "steps (eps {:g}/255, step {:g}/255)"),
        (("steps",), "eps", "eps ({:g} steps)"),
    ):
        for value in sorted({tuple(r[g] for g in group) for r in pgd}):
            seq = sorted((r for r in pgd if tuple(r[g] for g in group) == value), key=lambda r: r[order])
            if len(seq) < 2:
                continue
            rises = [
                (a["attack"], b["attack"])
                for a, b in zip(seq, seq[1:])
                if b["accuracy"] > a["accuracy"] + tol
            ]
            shown = [v * 255 for v in value] if order == "steps" else value
            checks.append(
                dict(
                    name="PGD accuracy does not rise with " + label.format(*shown),
                    passed=not rises,
                    detail=f"rises: {rises}" if rises else "monotone",
                )
            )
    big = [r for r in pgd if r["eps"] >= 64 / 255 - 1e-9]
    if big:
        acc = min(r["accuracy"] for r in big)
        checks.append(
            dict(
                name="PGD at eps 64/255 drives accuracy near zero",
                passed=acc <= 0.05,
                detail=f"accuracy {acc:.3f} (limit 0.05)",
            )
        )
    for r in (r for r in white if "members_broke" in r):
        found = sum(v for k, v in r["members_broke"].items() if k.startswith("square:"))
        checks.append(
            dict(
                name=f"gradient-free Square finds little that gradient attacks missed " f"({r['attack']})",
                passed=found <= tol * r["n"],
                detail=f"Square broke {found} of {r['n']} images that survived every gradient "
                f"attack (limit {tol * r['n']:.0f})",
            )
        )
    for t in (r for r in rows if r["transfer"]):
        same = [
            r for r in white if r["kind"] == t["kind"] and r["eps"] == t["eps"] and r["steps"] == t["steps"]
        ]
        if same:
            ok = same[0]["accuracy"] <= t["accuracy"] + tol
            checks.append(
                dict(
                    name=f"white-box {same[0]['attack']} at least as strong as transfer",
                    passed=ok,
                    detail=f"white-box {same[0]['accuracy']:.3f}, " f"transfer {t['accuracy']:.3f}",
                )
            )
    return checks


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from rssnn.atomic import check_output_file
    from rssnn.errors import UserError
    from rssnn.perturbation import KINDS

    from . import data, eval_report
    from .attacks import parse_attacks

    try:
        specs = parse_attacks(args.attacks)
        if not args.no_masking_checks:
            specs += [s for s in parse_attacks(MASKING_CHECK_ATTACK) if s.text not in {x.text for x in specs}]
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    for ok, msg in (
        (args.limit >= 1, f"--limit must be >= 1, got {args.limit}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (
            args.attack_surrogate_width is None or args.attack_surrogate_width > 0,
            f"--attack-surrogate-width must be > 0, got {args.attack_surrogate_width}",
        ),
        (
            args.square_queries is None or args.square_queries >= 1,
            f"--square-queries must be >= 1, got {args.square_queries}",
        ),
        (
            args.deployed_square_queries is None or args.deployed_square_queries >= 1,
            f"--deployed-square-queries must be >= 1, got {args.deployed_square_queries}",
        ),
        (args.net is None or Path(args.net).is_file(), f"--net: no such file '{args.net}'"),
    ):
        if not ok:
            raise UserError(msg)
    out = Path(args.out)
    for path in eval_report.output_paths(out):
        check_output_file(path)  # before any attack runs, not after
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    model, ckpt = _load_model(args.checkpoint, device)
    source = _load_model(args.transfer_checkpoint, device)[0] if args.transfer_checkpoint else None
    cfg = ckpt.get("config", {})
    split = data.load_run_split(args.data_root, ckpt["model"]["dataset"], args.split, cfg)
    n = min(args.limit, len(split))
    x = split.images[:n].float().div(255).to(device)
    y = split.labels[:n].to(device)
    deployed = None
    if not args.no_deployed and any(KINDS[s.kind].ensemble for s in specs):
        deployed = _deployed_model(args.net, model, ckpt)
    t0 = time.perf_counter()
    rows = evaluate_attacks(
        model,
        specs,
        x,
        y,
        args.batch_size,
        args.seed,
        args.attack_surrogate_width,
        quiet=args.quiet,
        square_queries=args.square_queries,
        deployed=deployed,
        deployed_square_queries=args.deployed_square_queries,
    )
    if source is not None:
        transfer_specs = [s for s in specs if s.kind in ("fgsm", "pgd") and s.eps < 64 / 255]
        transfer_specs = transfer_specs or parse_attacks("fgsm:8/255,pgd:8/255:7")
        rows += evaluate_attacks(
            model,
            transfer_specs,
            x,
            y,
            args.batch_size,
            args.seed,
            args.attack_surrogate_width,
            source=source,
            quiet=args.quiet,
            label_suffix=" (transfer)",
        )
    checks = masking_checks(rows, n)
    result = dict(
        checkpoint=str(args.checkpoint),
        split=args.split,
        n=n,
        attack_surrogate_width=args.attack_surrogate_width,
        transfer_checkpoint=args.transfer_checkpoint,
        deployed=None if deployed is None else (args.net or "checkpoint lowered in memory"),
        seed=args.seed,
        seconds=time.perf_counter() - t0,
        rows=rows,
        checks=checks,
    )
    eval_report.write_report(out, result)
    return result


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
