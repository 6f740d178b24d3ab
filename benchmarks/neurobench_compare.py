"""NeuroBench's metrics on the trained PyTorch model beside our activity counts from Lava.

    python benchmarks/neurobench_compare.py [--checkpoint runs/main/train/best.pt] [--images 100]

NeuroBench 2.3.0 (``pip install -e '.[neurobench]'``: it pins torchaudio 2.3.1 and pulls tonic,
librosa and scikit-learn, too heavy for the default install) measures the SLAYER model through
its ``TorchModel`` wrapper: ``SynapticOperations`` (Effective_MACs, Effective_ACs, Dense),
``ActivationSparsity``, ``Footprint`` and ``ConnectionSparsity``. Ours come from the same
checkpoint exported to NetX and run in Lava, counted by the network monitor (rssnn.activity),
on the same images. Writes benchmarks/results/neurobench_compare.json and .md; docs/loihi2.md
explains every difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def neurobench_metrics(model, pixels, labels) -> dict:
    """NeuroBench on the float model: pixels uint8 [N, 3, H, W], one batch per call."""
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations
    from neurobench.models import TorchModel

    from rssnn.train.neurons import DLIF

    wrapped = TorchModel(model.eval())
    wrapped.add_activation_module(DLIF)  # our spiking layers are its activations
    data = torch.utils.data.TensorDataset(pixels.float() / 255, labels)
    loader = torch.utils.data.DataLoader(data, batch_size=50)
    bench = Benchmark(
        wrapped, loader, [], [lambda logits: logits.argmax(1)],
        [[Footprint, ConnectionSparsity], [SynapticOperations, ActivationSparsity, ClassificationAccuracy]],
    )  # fmt: skip
    return bench.run(quiet=True)


def float_accumulates(model, pixels) -> float:
    """Our synaptic-operation count applied to the float model (float spikes, non-zero float
    weights) per inference: NeuroBench's Effective_ACs by the same definition, so the gap to
    the Lava column is what quantisation changes."""
    from types import SimpleNamespace

    import numpy as np

    from rssnn import activity
    from rssnn.export import fold_torch, folded

    net = fold_torch.fold(model)
    spikes = folded.forward(net, pixels)["spikes"]
    fans = [np.zeros(s.shape[1:-1], np.int64) for s in spikes]
    for layer in net.layers:
        for term in layer.terms:
            if term.source < 0:
                continue
            kind = layer.kind if term is layer.own else "conv"
            syn = SimpleNamespace(kind=kind, weight=term.weight, stride=term.stride, padding=term.padding)
            shape = fans[term.source].shape
            in_shape = shape if kind == "conv" else (int(np.prod(shape)),)
            fans[term.source] += activity.synapse_fan_out(syn, in_shape).reshape(shape)
    total = sum(int((s.sum((0, -1)).numpy() * f).sum()) for s, f in zip(spikes, fans))
    return total / len(pixels)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "runs" / "main" / "train" / "best.pt"))
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "neurobench_compare.json"))
    args = ap.parse_args(argv)
    try:
        import neurobench  # noqa: F401
    except ImportError:
        sys.exit("neurobench is not installed: pip install -e '.[neurobench]'")

    from rssnn import activity, netx_file
    from rssnn.atomic import atomic_write_text
    from rssnn.export import lowering
    from rssnn.lava_procs import backends, runtime
    from rssnn.train import checkpoint, data

    ckpt = checkpoint.load(args.checkpoint)
    model = checkpoint.restore_model(ckpt, args.checkpoint).eval()
    split = data.load_run_split(None, ckpt["model"]["dataset"], "val", ckpt.get("config", {}))
    pixels, labels = split.images[: args.images], split.labels[: args.images]
    theirs = neurobench_metrics(model, pixels, labels)
    float_acs = float_accumulates(model, pixels)

    net = lowering.lower(model, split.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.net"
        netx_file.write(path, net, {})
        net, _ = netx_file.read(path)
    counts = runtime.count_activity(net, pixels.numpy(), backends.choose("sim").run_config())
    ours = activity.summarise(net, counts, len(pixels))
    reference = activity.reference_counts(net, pixels)
    assert counts["spikes"].tolist() == reference["spikes"].tolist(), "Lava and the reference differ"
    lava_acc = float((counts["predictions"] == labels.numpy()).mean())
    spiking_synops = ours["synops_per_inference"] - ours["input_macs_per_inference"]
    synops = theirs["SynapticOperations"]
    rows = [
        ("multiply-accumulates (graded input)", synops["Effective_MACs"], ours["input_macs_per_inference"]),
        ("accumulates (spikes), our count on the float model", synops["Effective_ACs"], float_acs),
        ("accumulates (spikes)", synops["Effective_ACs"], spiking_synops),
        (
            "synaptic operations, all",
            synops["Effective_MACs"] + synops["Effective_ACs"],
            ours["synops_per_inference"],
        ),
        ("dense operations (every synapse, every input)", synops["Dense"], None),
        ("activation sparsity", theirs["ActivationSparsity"], ours["sparsity"]),
        ("connection sparsity", theirs["ConnectionSparsity"], None),
        ("footprint (bytes)", theirs["Footprint"], None),
        ("accuracy", theirs["ClassificationAccuracy"], lava_acc),
    ]
    result = dict(
        benchmark="neurobench_compare",
        checkpoint=args.checkpoint,
        images=len(pixels),
        num_steps=net.num_steps,
        neurobench=theirs,
        ours=ours,
        lava_accuracy=lava_acc,
        rows=[dict(metric=m, neurobench=a, ours=b) for m, a, b in rows],
    )
    out = Path(args.out)
    atomic_write_text(out, json.dumps(result, indent=2, default=float))
    title = f"NeuroBench 2.3.0 on the float model vs the network monitor in Lava ({len(pixels)} images, "
    md = [title + f"T = {net.num_steps}), per inference", "",
          "| metric | NeuroBench | ours (Lava) | ours / NeuroBench |", "|---|---|---|---|"]  # fmt: skip
    for m, a, b in rows:
        ratio = f"{b / a:.3f}" if (b is not None and a) else "-"
        md.append(f"| {m} | {a:.6g} | {'-' if b is None else f'{b:.6g}'} | {ratio} |")
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
