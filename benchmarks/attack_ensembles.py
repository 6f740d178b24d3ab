"""Old ensemble against new on the same images, float and deployed, with Square at 5,000 queries.

    python benchmarks/attack_ensembles.py --checkpoint runs/main/train/best.pt --limit 500 \
        [--eps 2/255,8/255] [--chunk 25] [--full-images 0] [--lava-images 20] \
        [--out benchmarks/results/attack_ensembles.json]

Per chunk of validation images (in order; each chunk's results are cached beside --out, so a
stopped run resumes where it left off, and the summary covers the chunks done so far):

- ``v1``: the ensemble of issue 21 as it shipped (``train.attack_kinds.ENSEMBLE_V1``).
- ``new``: the affordable ``ensemble``'s gradient members with its Square raised to 5,000
  queries, so that what Square still breaks is the check of issue 28 (at most 0.5 % of images
  beyond the gradient members); every member's candidates are checked on the integer model and
  Square (``--deployed-square-queries``) runs against the integer model itself.
- ``full`` (first ``--full-images`` images only): ``ensemble-full``.

At the end, every image Square broke beyond the new ensemble's gradient members is diagnosed
(``square_images`` in the JSON): its clean logit margin, the share of pixels with a non-zero
input gradient through three surrogates (zero would be gradient masking), and whether the
``ensemble-full`` gradient members (100 steps, 21 surrogates) break it, which separates a
schedule too short from an image no gradient reaches. Then ``--lava-images`` of the new
ensemble's final adversarial images (first chunk) run in Lava (an exported .net in a temporary
folder) for the agreement with the integer model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rssnn  # noqa: F401
from rssnn.atomic import atomic_write_text
from rssnn.perturbation import parse_fraction
from rssnn.train import attack_kinds, checkpoint, data, surrogates
from rssnn.train.attacks import AttackWrapper, ensemble_members, with_square_queries, worst_case
from rssnn.train.deployed import IntegerModel, lower_model, to_uint8

SQUARE_CHECK_QUERIES = 5000


def plans(eps: float, square_queries: int = SQUARE_CHECK_QUERIES) -> dict[str, list]:
    v1 = attack_kinds.Ensemble("v1", attack_kinds.ENSEMBLE_V1).members(eps)
    new = with_square_queries(ensemble_members(eps, "ensemble"), square_queries)
    return dict(v1=v1, new=new, full=ensemble_members(eps, "ensemble-full"))


def run_chunk(model, deployed, name, members, x, y, seed, dep_queries) -> dict:
    t0 = time.perf_counter()
    res = worst_case(
        model,
        members,
        x,
        y,
        torch.Generator().manual_seed(seed),
        deployed if name != "v1" else None,
        dep_queries,
    )
    grad = [m.text for m in members if m.kind != "square"]
    # images that survive every gradient member (before Square), float
    return dict(
        n=len(y),
        members=[m.text for m in members],
        robust="".join("1" if v else "0" for v in res.robust.tolist()),
        robust_deployed=None
        if res.robust_deployed is None
        else "".join("1" if v else "0" for v in res.robust_deployed.tolist()),
        broke=res.broke,
        broken_by=res.broken_by,
        broke_deployed=res.broke_deployed,
        member_seconds=res.seconds,
        gradient_members=grad,
        seconds=time.perf_counter() - t0,
        x_adv=res.x_adv,
    )


def summarise(chunks: list[dict], eps_list: list[float]) -> dict:
    out = {}
    for eps in eps_list:
        key = f"{eps * 255:g}/255"
        rows = {}
        for name in ("v1", "new", "full"):
            done = [c[key][name] for c in chunks if name in c.get(key, {})]
            if not done:
                continue
            n = sum(d["n"] for d in done)
            robust = "".join(d["robust"] for d in done)
            row = dict(
                n=n,
                members=done[0]["members"],
                robust_accuracy=robust.count("1") / n,
                robust="".join(d["robust"] for d in done),
                broken_by=[k for d in done for k in d["broken_by"]],
                broke={k: sum(d["broke"].get(k, 0) for d in done) for k in done[0]["broke"]},
                seconds_per_image=sum(d["seconds"] for d in done) / n,
                member_seconds_per_image={
                    k: sum(d["member_seconds"].get(k, 0.0) for d in done) / n
                    for k in done[0]["member_seconds"]
                },
            )
            squares = [k for k in row["broke"] if k.startswith("square:")]
            row["square_beyond_gradient"] = sum(row["broke"][k] for k in squares)
            row["square_beyond_gradient_fraction"] = row["square_beyond_gradient"] / n
            if done[0]["robust_deployed"] is not None:
                dep = "".join(d["robust_deployed"] for d in done)
                row.update(
                    robust_accuracy_deployed=dep.count("1") / n,
                    robust_deployed=dep,
                    broke_deployed={
                        k: sum(d["broke_deployed"].get(k, 0) for d in done) for k in done[0]["broke_deployed"]
                    },
                )
            rows[name] = row
        # paired: images v1 left standing that the new ensemble broke, and the reverse
        if "v1" in rows and "new" in rows:
            a, b = rows["v1"]["robust"], rows["new"]["robust"][: len(rows["v1"]["robust"])]
            rows["paired"] = dict(
                n=len(a),
                new_breaks_v1_missed=sum(1 for p, q in zip(a, b) if p == "1" and q == "0"),
                v1_breaks_new_missed=sum(1 for p, q in zip(a, b) if p == "0" and q == "1"),
                square_broke_new=[
                    i for i, k in enumerate(rows["new"]["broken_by"]) if k and k.startswith("square:")
                ],
            )
        out[key] = rows
    return out


def markdown(summary: dict) -> str:
    """The summary as tables: robust accuracy per ensemble and budget, then what each member added."""
    lines = [
        f"{summary['images']} validation images of `{summary['checkpoint']}`; clean accuracy "
        f"float {summary['clean_accuracy_float']:.3f}, deployed {summary['clean_accuracy_deployed']:.3f} "
        f"(on {summary['clean_images']}).",
        "",
        "| budget | ensemble | robust (float) | robust (deployed) | Square beyond gradients | s/image |",
        "|---|---|---|---|---|---|",
    ]
    for key, rows in summary["results"].items():
        for name in ("v1", "new", "full"):
            if name not in rows:
                continue
            r = rows[name]
            dep = f"{r['robust_accuracy_deployed']:.3f}" if "robust_accuracy_deployed" in r else "-"
            lines.append(
                f"| {key} | {name} | {r['robust_accuracy']:.3f} ({r['robust'].count('1')}/{r['n']}) "
                f"| {dep} | "
                f"{r['square_beyond_gradient']} ({100 * r['square_beyond_gradient_fraction']:.1f} %) | "
                f"{r['seconds_per_image']:.1f} |"
            )
    for key, rows in summary["results"].items():
        for name in ("v1", "new", "full"):
            if name not in rows:
                continue
            r = rows[name]
            dep = r.get("broke_deployed", {})
            lines += ["", f"{key} {name}: images each member broke first (float; deployed), s/image", ""]
            for k in [*r["broke"], *(k for k in dep if k not in r["broke"])]:
                lines.append(
                    f"- `{k}`: {r['broke'].get(k, '-')}; {dep.get(k, '-')}; "
                    f"{r['member_seconds_per_image'].get(k, 0.0):.2f}"
                )
        if "square_images" in rows:
            d = rows["square_images"]
            lines += ["", f"{key}: the images Square broke beyond the new gradient members", ""]
            for i, idx in enumerate(d["images"]):
                grads = ", ".join(f"{k} {v[i]:.2f}" for k, v in d["gradient_nonzero_fraction"].items())
                verdict = (
                    "survives every ensemble-full gradient member"
                    if d["full_gradient_robust"][i]
                    else f"broken by ensemble-full's `{d['full_gradient_broken_by'][i]}`"
                )
                lines.append(
                    f"- image {idx} (label {d['labels'][i]}): clean margin {d['clean_logit_margin'][i]:.3f}; "
                    f"non-zero gradient share {grads}; {verdict}"
                )
        if "paired" in rows:
            p = rows["paired"]
            lines += [
                "",
                f"{key} paired on {p['n']} images: the new ensemble broke {p['new_breaks_v1_missed']} "
                f"that v1 left standing, v1 broke {p['v1_breaks_new_missed']} that the new one left; "
                f"images Square broke beyond the new gradient members: {p['square_broke_new']}",
            ]
    return "\n".join(lines) + "\n"


DIAGNOSIS_SURROGATES = ("tri0.25", "exp0.5", "rga")


def diagnose_square_images(model, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int) -> dict:
    """Why gradients missed what Square found, for images ``x`` [K, 3, H, W] (labels ``y`` [K]):
    the clean logit margin (correct class minus the best other, in the model's logit units),
    the fraction of pixels with a non-zero cross-entropy gradient per surrogate, and the
    ``ensemble-full`` gradient members' per-image verdict (``robust``: none of them breaks it)."""
    with torch.no_grad():
        logits = model(x)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    margin = (logits.gather(1, y[:, None])[:, 0] - other).tolist()
    nonzero = {}
    for name in DIAGNOSIS_SURROGATES:
        pixels = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(AttackWrapper(model, surrogates.make(name))(pixels), y)
        (grad,) = torch.autograd.grad(loss, pixels)
        nonzero[name] = [round(v, 4) for v in (grad != 0).flatten(1).float().mean(1).tolist()]
    full = [m for m in plans(eps)["full"] if m.kind != "square"]
    t0 = time.perf_counter()
    res = worst_case(model, full, x, y, torch.Generator().manual_seed(seed))
    return dict(
        clean_logit_margin=[round(v, 4) for v in margin],
        gradient_nonzero_fraction=nonzero,
        full_gradient_members=[m.text for m in full],
        full_gradient_robust=res.robust.tolist(),
        full_gradient_broken_by=res.broken_by,
        full_seconds=time.perf_counter() - t0,
    )


def lava_spot_check(ckpt_path: str, net, images: np.ndarray) -> dict:
    """The integer model's predictions against Lava's on adversarial images (uint8 [N, 3, H, W])."""
    import subprocess

    from rssnn.export.verify import run_lava
    from rssnn.integer_forward import run_fixed

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.net"
        subprocess.run(
            [sys.executable, "-m", "rssnn.export.to_netx", "--checkpoint", ckpt_path, "--out", str(path)],
            check=True,
            capture_output=True,
        )
        lava = run_lava(path, net, torch.from_numpy(images))
    fixed = run_fixed(net, images)["logits"].argmax(1)
    return dict(
        images=len(images),
        agreement=float(np.mean(lava["logits"].argmax(1) == fixed)),
        lava_run_s=lava["run_s"],
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", default="runs/main/train/best.pt")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--eps", default="2/255,8/255")
    ap.add_argument("--full-images", type=int, default=0, help="images that also get ensemble-full")
    ap.add_argument("--square-queries", type=int, default=SQUARE_CHECK_QUERIES, help="the new one's Square")
    ap.add_argument("--deployed-square-queries", type=int, default=1000)
    ap.add_argument("--lava-images", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/attack_ensembles.json")
    args = ap.parse_args(argv)
    eps_list = [parse_fraction(e) for e in args.eps.split(",")]
    out = Path(args.out)
    cache = out.with_suffix(".cache")
    cache.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.load(args.checkpoint)
    model = checkpoint.restore_model(ckpt, args.checkpoint).eval()
    net = lower_model(model, ckpt.get("class_names"))
    deployed = IntegerModel(net)
    split = data.load_run_split(None, ckpt["model"]["dataset"], "val", ckpt.get("config", {}))
    n = min(args.limit, len(split))
    x_all = split.images[:n].float() / 255
    y_all = split.labels[:n]
    with torch.no_grad():
        clean_float = (model(x_all).argmax(1) == y_all).float().mean().item()
    clean_dep = (deployed.predict(x_all) == y_all).float().mean().item()
    chunks: list[dict] = []
    for c, start in enumerate(range(0, n, args.chunk)):
        x, y = x_all[start : start + args.chunk], y_all[start : start + args.chunk]
        path = cache / f"chunk{start:05d}-{len(y)}.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        for eps in eps_list:
            key = f"{eps * 255:g}/255"
            record.setdefault(key, {})
            for name, members in plans(eps, args.square_queries).items():
                if name in record[key] or (name == "full" and start >= args.full_images):
                    continue
                print(
                    f"[{time.strftime('%H:%M:%S')}] images {start}..{start + len(y)} {key} {name}", flush=True
                )
                res = run_chunk(
                    model, deployed, name, members, x, y, args.seed + c, args.deployed_square_queries
                )
                adv = res.pop("x_adv")
                if name == "new" and c == 0:
                    np.save(cache / f"adv-{eps * 255:g}.npy", to_uint8(adv))
                record[key][name] = res
                atomic_write_text(path, json.dumps(record))
        chunks.append(record)
        summary = dict(
            checkpoint=args.checkpoint,
            images=start + len(y),
            clean_accuracy_float=clean_float,
            clean_accuracy_deployed=clean_dep,
            clean_images=n,
            deployed_square_queries=args.deployed_square_queries,
            results=summarise(chunks, eps_list),
        )
        atomic_write_text(out, json.dumps(summary, indent=1))
        atomic_write_text(out.with_suffix(".md"), markdown(summary))
    for eps in eps_list:
        key = f"{eps * 255:g}/255"
        images = summary["results"][key].get("paired", {}).get("square_broke_new", [])
        path = cache / f"square-images-{eps * 255:g}.json"
        found = json.loads(path.read_text()) if path.exists() else {}
        if images and found.get("images") != images:
            print(f"[{time.strftime('%H:%M:%S')}] {key}: diagnosing Square's images {images}", flush=True)
            found = dict(images=images, labels=y_all[images].tolist())
            found.update(diagnose_square_images(model, x_all[images], y_all[images], eps, args.seed))
            atomic_write_text(path, json.dumps(found))
        if images:
            summary["results"][key]["square_images"] = found
    atomic_write_text(out, json.dumps(summary, indent=1))
    atomic_write_text(out.with_suffix(".md"), markdown(summary))
    for eps in eps_list:
        f = cache / f"adv-{eps * 255:g}.npy"
        if args.lava_images and f.exists():
            summary[f"lava_spot_check_{eps * 255:g}/255"] = lava_spot_check(
                args.checkpoint, net, np.load(f)[: args.lava_images]
            )
            atomic_write_text(out, json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}, indent=1))
    return summary


if __name__ == "__main__":
    main()
