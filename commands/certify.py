"""``rssnn certify``: certified L2 radii by randomized smoothing (Cohen et al., ICML 2019).

    rssnn certify --net model.net --sigma 0.25 --n0 100 --n 1000 --alpha 0.001 --limit 100 \
        --out certify.json                      # the deployed integer model; also .md and .png
    rssnn certify --checkpoint best.pt --sigma 0.25 ...   # the float model of a checkpoint

For each image CERTIFY draws n0 noisy copies (selection of the top class cA) and n fresh ones
(nA of them classified cA); pA_lower is the Clopper-Pearson lower bound at level alpha and the
radius sigma * Phi^-1(pA_lower), or the image abstains (prediction -1) when pA_lower <= 1/2.
PREDICT's two-sided binomial test runs on the n estimation counts too. The base classifier is
the float model of ``--checkpoint`` or, with ``--net``, the deployed integer model (numpy, no
torch), whose 8-bit input rounding is part of it: the noise is added in [0, 1] pixel space
before the rounding. ``--lava-check K`` replays K of the certificate's noisy inputs in Lava and
compares its predictions with the integer model's. See docs/certify.md.

The JSON report is rewritten (atomically) after every image; ``--resume`` continues it.
"""

from __future__ import annotations

# Run as a file (python commands/certify.py) or as -m commands.certify: this module's relative imports resolve
# inside one package, rssnn.commands (PEP 366), never in a second copy of it.
if __name__ == "__main__":
    __package__ = "rssnn.commands"

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Cohen, Rosenfeld and Kolter (ICML 2019), CIFAR-10 ResNet-110 at sigma 0.25, n0 100, n 100,000,
# alpha 0.001 on every 20th test image; figures from locuslab/smoothing's published per-image
# results (docs/certify.md).
ANCHOR = dict(
    source="Cohen et al. ICML 2019, CIFAR-10 ResNet-110, sigma 0.25, n 100,000, alpha 0.001",
    sigma=0.25,
    certified_accuracy={"0": 0.748, "0.25": 0.600, "0.5": 0.428},
)
# What must match for --resume to continue a report (the rest may change, e.g. --batch-size).
RESUME_KEYS = ("base_classifier", "model_sha256", "sigma", "alpha", "n0", "n", "seed", "split", "skip")


def _fraction(text: str) -> float:
    from rssnn.perturbation import parse_fraction

    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    from rssnn.cli_support import OneLineParser, add_data_flags

    ap = OneLineParser(
        prog="rssnn certify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="training checkpoint: certify its float model (torch)")
    model.add_argument("--net", help="NetX file: certify the deployed integer model (no torch)")
    ap.add_argument(
        "--sigma", type=_fraction, required=True, help="noise std in [0, 1] pixel units (0.25 or 64/255)"
    )
    ap.add_argument("--n0", type=int, default=100, help="selection samples per image (default 100)")
    ap.add_argument("--n", type=int, default=1000, help="estimation samples per image (default 1000)")
    ap.add_argument("--alpha", type=float, default=0.001, help="failure probability (default 0.001)")
    ap.add_argument("--limit", type=int, default=100, help="number of images (default 100)")
    ap.add_argument(
        "--skip", type=int, default=1, help="certify every SKIP-th image of the split (default 1)"
    )
    add_data_flags(ap)
    ap.add_argument("--batch-size", type=int, default=200, help="noisy copies per forward (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    ap.add_argument(
        "--radii", default="0,0.25,0.5,0.75,1", help="radii of the certified-accuracy table (default 0..1)"
    )
    ap.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="--checkpoint only (default auto)"
    )
    ap.add_argument(
        "--lava-check",
        type=int,
        default=0,
        metavar="K",
        help="--net only: run K of the noisy inputs in Lava and compare with the integer model",
    )
    ap.add_argument("--resume", action="store_true", help="continue the report at --out")
    ap.add_argument("--out", default="certify.json", help="JSON report; .md and .png beside it")
    return ap


def check_flags(args: argparse.Namespace) -> list[float]:
    """Every flag, before any model is loaded or any noise drawn; returns the table's radii."""
    from rssnn.errors import UserError

    for ok, msg in (
        (math.isfinite(args.sigma) and args.sigma > 0, f"--sigma must be > 0, got {args.sigma:g}"),
        (args.n0 >= 1, f"--n0 must be >= 1, got {args.n0}"),
        (args.n >= 1, f"--n must be >= 1, got {args.n}"),
        (args.n0 <= args.n, f"--n0 ({args.n0}) must not exceed --n ({args.n})"),
        (0 < args.alpha < 1, f"--alpha must be in (0, 1), got {args.alpha:g}"),
        (args.limit >= 1, f"--limit must be >= 1, got {args.limit}"),
        (args.skip >= 1, f"--skip must be >= 1, got {args.skip}"),
        (args.batch_size >= 1, f"--batch-size must be >= 1, got {args.batch_size}"),
        (args.lava_check >= 0, f"--lava-check must be >= 0, got {args.lava_check}"),
        (
            not (args.lava_check and args.checkpoint),
            "--lava-check runs the deployed model in Lava: it needs --net, not --checkpoint",
        ),
    ):
        if not ok:
            raise UserError(msg)
    try:
        radii = sorted({float(r) for r in args.radii.split(",") if r.strip()})
    except ValueError:
        raise UserError(f"--radii must be comma-separated numbers, got '{args.radii}'") from None
    if not radii or not all(math.isfinite(r) and r >= 0 for r in radii):
        raise UserError(f"--radii must be finite numbers >= 0, got '{args.radii}'")
    model = args.net or args.checkpoint
    if not Path(model).is_file():
        flag = "--net" if args.net else "--checkpoint"
        raise UserError(f"{flag} '{model}' does not exist or is not a regular file")
    return radii


def load_base(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """(classify, info, net): the base classifier, its dataset/classes/config, and the lowered
    net for --net (None for --checkpoint). The integer path imports no torch."""
    if args.checkpoint:
        from ..train import base_classifier

        classify, info = base_classifier.load(args.checkpoint, args.device)
        return classify, dict(info, base_classifier="float"), None
    from rssnn import netx_file, smoothing
    from rssnn.errors import UserError

    try:  # the metadata first, for the one line a lava-dl file (no dataset) deserves
        netx_file.read_metadata(args.net)
    except UserError as exc:
        raise UserError(f"--net needs an rssnn-lava NetX file (it names its dataset): {exc}") from None
    net, meta = netx_file.read(args.net)
    info = dict(
        dataset=meta["dataset"],
        num_classes=int(net.layers[-1].out_shape[0]),
        config=meta["training_config"],
        base_classifier="integer (deployed)",
    )
    return smoothing.integer_classifier(net), info, net


def _key(r: float) -> str:
    return f"{r:g}"


def summarise(report: dict[str, Any], radii: list[float]) -> None:
    """Fill in the report's summary fields from its ``images`` rows."""
    from rssnn import smoothing

    rows = report["images"]
    labels = [r["label"] for r in rows]
    acc = smoothing.certified_accuracy(
        labels, [r["prediction"] for r in rows], [r["radius"] for r in rows], radii
    )
    report["certified_accuracy"] = {_key(r): a for r, a in zip(radii, acc)}
    n = max(1, len(rows))
    report["images_done"] = len(rows)
    report["abstain_rate"] = sum(r["prediction"] == smoothing.ABSTAIN for r in rows) / n
    report["predict_accuracy"] = sum(r["predict"] == r["label"] for r in rows) / n
    report["predict_abstain_rate"] = sum(r["predict"] == smoothing.ABSTAIN for r in rows) / n
    report["seconds_per_image"] = sum(r["seconds"] for r in rows) / n
    report["samples_per_second"] = (report["n0"] + report["n"]) / max(report["seconds_per_image"], 1e-12)


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    anchor = ANCHOR["certified_accuracy"]
    lines = [
        f"# Certified accuracy by randomized smoothing: {report['base_classifier']} model",
        "",
        f"`{report['model']}`, sigma {report['sigma']:g}, n0 {report['n0']}, n {report['n']}, alpha "
        f"{report['alpha']:g}; {report['images_done']} {cfg['dataset']} {cfg['split']} images (every "
        f"{cfg['skip']}-th); {report['seconds_per_image']:.3g} s per image"
        + ("" if report["complete"] else " (**incomplete**: resume with --resume)"),
        "",
        "| L2 radius ([0, 1] pixels) | certified accuracy | Cohen et al. ResNet-110, sigma 0.25 |",
        "|---|---|---|",
    ]
    for r, a in report["certified_accuracy"].items():
        lines.append(f"| {r} | {a:.3f} | {anchor.get(r, '-')} |")
    lines += [
        "",
        f"CERTIFY abstains on {report['abstain_rate']:.3f} of the images; PREDICT (on the n estimation "
        f"samples) is correct on {report['predict_accuracy']:.3f} and abstains on "
        f"{report['predict_abstain_rate']:.3f}. {_max_radius_text(report)}",
    ]
    check = report.get("lava_check")
    if check:
        lines += [
            "",
            f"Lava check: {check['samples']} noisy inputs of the certificate, Lava's predictions equal "
            f"the integer model's on {check['agreement']:.3f} of them.",
        ]
    return "\n".join(lines) + "\n"


def _max_radius_text(report: dict[str, Any]) -> str:
    top, n, alpha = report["max_radius"], report["n"], report["alpha"]
    if top is None:
        return f"n = {n} certifies no radius at alpha {alpha:g}: even nA = n gives pA_lower <= 1/2."
    return f"The largest radius n = {n} can certify is {top:.3g} (all n samples on cA)."


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rssnn import smoothing
    from rssnn.atomic import atomic_save_figure

    rows = report["images"]
    top = max([report["max_radius"] or 0, *(float(r) for r in report["certified_accuracy"])]) * 1.05
    grid = np.linspace(0, top, 200)
    curve = smoothing.certified_accuracy(
        [r["label"] for r in rows], [r["prediction"] for r in rows], [r["radius"] for r in rows], grid
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(grid, curve, "-", label=f"{report['base_classifier']}, sigma {report['sigma']:g}")
    ar = [float(k) for k in ANCHOR["certified_accuracy"]]
    ax.plot(
        ar, list(ANCHOR["certified_accuracy"].values()), "k^", label="Cohen et al. ResNet-110, sigma 0.25"
    )
    ax.set(
        xlabel="L2 radius in [0, 1] pixel space",
        ylabel="certified accuracy",
        ylim=(0, 1),
        title=f"n0 {report['n0']}, n {report['n']}, alpha {report['alpha']:g}, {len(rows)} images",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def lava_check(
    net, images: np.ndarray, indexes: list[int], sigma: float, seed: int, k: int
) -> dict[str, Any]:
    """Lava's predictions on K of the certificate's own noisy inputs against the integer model's.

    Sample j is the (j // M)-th selection sample of image j mod M (M images): the same draw
    CERTIFY classified (:func:`rssnn.smoothing.image_rng`), rounded to the device's 8 bits.
    Args: images float32 [M, 3, H, W] in [0, 1]; indexes [M] their split indices.
    """
    from rssnn import smoothing
    from rssnn.integer_forward import run_fixed
    from rssnn.lava_guard import cleanup_on_exit

    from ..lava_procs import backends, runtime

    m = len(images)
    per_image = [len(range(i, k, m)) for i in range(m)]
    inputs = np.empty((k, *images.shape[1:]), dtype=np.uint8)
    for i, count in enumerate(per_image):
        if count:
            rng = smoothing.image_rng(seed, indexes[i])
            inputs[i::m] = smoothing.device_pixels(smoothing.noisy_copies(images[i], sigma, rng, count))
    t0 = time.perf_counter()
    fixed = run_fixed(net, inputs)["logits"].argmax(1)
    sim = backends.choose("sim")
    backend, run_cfg = sim.label(), sim.run_config()
    with cleanup_on_exit():
        lava = runtime.run(runtime.build_pair(net, inputs, None, monitor=False), run_cfg)["predictions"][0]
    agree = lava == fixed
    return dict(
        samples=k,
        backend=backend,
        agreement=float(agree.mean()),
        mismatches=[int(j) for j in np.flatnonzero(~agree)],
        lava_predictions=lava.tolist(),
        integer_predictions=fixed.tolist(),
        seconds=time.perf_counter() - t0,
    )


def _resume(out: Path, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier report at ``out`` made with the same settings (UserError if not)."""
    from rssnn.errors import UserError

    if not out.is_file():
        return []
    try:
        old = json.loads(out.read_text())
        same = {k: old.get(k) for k in RESUME_KEYS} == {k: report[k] for k in RESUME_KEYS}
        rows = old["images"] if same else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"--resume: '{out}' is not a certify report; choose another --out") from None
    if rows is None:
        changed = [k for k in RESUME_KEYS if old.get(k) != report[k]]
        raise UserError(
            f"--resume: '{out}' was made with other settings ({', '.join(changed)}); use a new --out"
        )
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from rssnn import cifar, smoothing
    from rssnn.atomic import atomic_write_text, check_output_file, claim, file_sha256

    radii = check_flags(args)
    out = Path(args.out)
    for path in (out, out.with_suffix(".md"), out.with_suffix(".png")):
        check_output_file(path)  # before any work
    classify, info, net = load_base(args)
    images, labels, _ = cifar.load_run_split(args.data_root, info["dataset"], args.split, info["config"])
    indexes = list(range(0, len(labels), args.skip))[: args.limit]
    model = args.net or args.checkpoint
    report: dict[str, Any] = dict(
        sigma=args.sigma,
        alpha=args.alpha,
        n0=args.n0,
        n=args.n,
        certified_accuracy={},
        base_classifier=info["base_classifier"],
        model=str(model),
        model_sha256=file_sha256(model),
        seed=args.seed,
        split=args.split,
        skip=args.skip,
        max_radius=smoothing.radius(smoothing.lower_confidence_bound(args.n, args.n, args.alpha), args.sigma),
        config=dict(
            dataset=info["dataset"],
            split=args.split,
            skip=args.skip,
            limit=args.limit,
            data_root=args.data_root,
            batch_size=args.batch_size,
            seed=args.seed,
            device=info.get("device", "cpu (numpy)"),
            noise="N(0, sigma^2 I) in [0, 1] pixel space, per image seeded by (seed, index)",
            input=(
                "not clamped (float model)"
                if args.checkpoint
                else "clipped to [0, 1] and rounded to 8 bits after the noise (part of the device)"
            ),
        ),
        anchor=ANCHOR,
        complete=False,
        images=[],
        lava_check=None,
    )
    with claim(out):
        if args.resume:
            done = {r["index"]: r for r in _resume(out, report)}
            report["images"] = [done[i] for i in indexes if i in done]
        todo = [i for i in indexes if i not in {r["index"] for r in report["images"]}]
        per_image = args.n0 + args.n
        print(
            f"certifying {len(todo)} images ({len(indexes) - len(todo)} resumed) of {args.split}, "
            f"{report['base_classifier']} model, sigma {args.sigma:g}, n0 {args.n0}, n {args.n}"
        )
        with tqdm(
            total=len(todo) * per_image,
            desc="certify",
            unit="sample",
            unit_scale=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        ) as bar:
            for i in todo:
                x = images[i].astype(np.float32) / 255.0
                t0 = time.perf_counter()
                res = smoothing.certify(
                    classify,
                    x,
                    args.sigma,
                    args.n0,
                    args.n,
                    args.alpha,
                    info["num_classes"],
                    smoothing.image_rng(args.seed, i),
                    args.batch_size,
                    bar.update,
                )
                row = dict(index=i, label=int(labels[i]), **res, seconds=time.perf_counter() - t0)
                report["images"].append(row)
                report["images"].sort(key=lambda r: indexes.index(r["index"]))
                summarise(report, radii)
                atomic_write_text(out, json.dumps(report, indent=2))  # a kill loses one image at most
        summarise(report, radii)
        if args.lava_check:
            m = min(len(indexes), args.lava_check)
            pixels = images[indexes[:m]].astype(np.float32) / 255.0
            report["lava_check"] = lava_check(
                net, pixels, indexes[:m], args.sigma, args.seed, args.lava_check
            )
        report["complete"] = True
        atomic_write_text(out, json.dumps(report, indent=2))
        atomic_write_text(out.with_suffix(".md"), markdown(report))
        plot(report, out.with_suffix(".png"))
    table = ", ".join(f"r={r}: {a:.3f}" for r, a in report["certified_accuracy"].items())
    print(
        f"certified accuracy ({report['images_done']} images, {report['base_classifier']}): {table}; "
        f"{report['seconds_per_image']:.3g} s per image; report {out}"
    )
    check = report["lava_check"]
    if check:
        print(
            f"Lava check: {check['samples']} noisy inputs, agreement with the integer model "
            f"{check['agreement']:.3f}"
        )
        if check["mismatches"]:
            print(
                f"WARNING: Lava disagrees with the integer model on samples {check['mismatches'][:10]}: "
                "the deployed certificate does not carry over to Lava",
                file=sys.stderr,
            )
    return report


def main(argv: list[str] | None = None) -> int:
    from rssnn.cli_support import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    from rssnn.cli_support import exit_process

    exit_process(main())
