"""A NIR graph run in snnTorch (1.0.0) and Norse (1.1.0) under docs/nir.md's contract.

Each library's own importer builds the network (``snntorch.import_nir.import_from_nir``,
``norse.torch.from_nir``); this module only drives it and works around what docs/nir.md lists:

* both build ``torch.nn.Flatten`` with NIR's dims as written, and NIR's dims exclude the batch,
  so ``start_dim=0`` would flatten the batch too: :func:`batch_flatten` shifts them by one;
* snnTorch keeps neuron state between calls: every image batch starts from ``reset_mem()``;
* snnTorch's importer assumes dt = 1e-4 (it asserts ``r == tau_mem / 1e-4``); Norse's
  ``from_nir`` assumes 1e-3 unless given ``dt=``: we pass the graph's ``metadata["dt"]``.

Both fire on ``v > threshold`` where Loihi and our float model fire on ``v >= threshold``;
only exact ties differ, and the agreement figures include them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

FRAMEWORKS = ("snntorch", "norse", "norse-fx")


def batch_flatten(module: torch.nn.Module) -> torch.nn.Module:
    """Shift every ``Flatten``'s non-negative dims by one: NIR's dims exclude the batch."""
    for m in module.modules():
        if isinstance(m, torch.nn.Flatten):
            m.start_dim = m.start_dim + 1 if m.start_dim >= 0 else m.start_dim
            m.end_dim = m.end_dim + 1 if m.end_dim >= 0 else m.end_dim
    return module


def load(graph, framework: str, dt: float | None = None) -> torch.nn.Module:
    """The graph as a torch module built by ``framework``'s own NIR importer (workarounds applied)."""
    dt = float(graph.metadata.get("dt", 1e-4)) if dt is None else dt
    if framework == "snntorch":
        from snntorch.import_nir import import_from_nir

        if not np.isclose(dt, 1e-4, rtol=1e-9, atol=0):
            raise ValueError(f"snnTorch's importer assumes dt = 1e-4; this graph has dt = {dt:g}")
        module = import_from_nir(graph)
    elif framework == "norse":
        import norse.torch

        module = norse.torch.from_nir(graph, dt=dt)
    elif framework == "norse-fx":
        module = _norse_fx(graph, dt)
    else:
        raise ValueError(f"unknown framework {framework!r}; one of {FRAMEWORKS}")
    return batch_flatten(module).eval()


def _neurons(module: torch.nn.Module, framework: str) -> list[tuple[str, torch.nn.Module]]:
    if framework == "snntorch":
        import snntorch

        kind: Any = snntorch.SpikingNeuron
    else:
        from norse.torch.module.lif_box import LIFBoxCell
        from norse.torch.utils.import_nir import CubaLIF

        kind = (CubaLIF, LIFBoxCell)
    found = [(n, m) for n, m in module.named_modules() if isinstance(m, kind)]
    # Norse's CubaLIF holds a LIFBoxCell: count the outer module only.
    return [(n, m) for n, m in found if not any(n.startswith(f"{o}.") for o, _ in found)]


@torch.no_grad()
def run(module: torch.nn.Module, framework: str, pixels: torch.Tensor, num_steps: int) -> dict[str, Any]:
    """Images [N, C, H, W] (uint8) through ``module`` for ``num_steps`` steps each.

    Returns ``logits`` [N, classes] (the Output summed over the steps, float64) and
    ``spikes``: per neuron layer (in module order) the spike count per image, int64 [N].
    """
    x = pixels.float() / 255 if not pixels.is_floating_point() else pixels.float()
    neurons = _neurons(module, framework)
    counts = [torch.zeros(len(x), dtype=torch.int64) for _ in neurons]
    hooks = []
    for i, (_, m) in enumerate(neurons):

        def count(_m, _inp, out, i=i):
            spikes = out[0] if isinstance(out, tuple) else out
            counts[i] += spikes.reshape(len(x), -1).sum(1).round().long()

        hooks.append(m.register_forward_hook(count))
    try:
        if framework == "snntorch":
            for _, m in neurons:
                m.reset_mem()
        state = None
        logits = 0.0
        for _ in range(num_steps):
            if framework == "snntorch":
                out, _ = module(x)
            else:
                out, state = module(x, state)
            logits = logits + out.double()
    finally:
        for h in hooks:
            h.remove()
    return dict(logits=logits, spikes=[c.numpy() for c in counts], layers=[n for n, _ in neurons])


def _norse_fx(graph, dt: float) -> torch.nn.Module:
    """Norse's own node modules wired by ``nirtorch.nir_to_torch`` (a topological torch.fx
    graph) instead of ``from_nir``'s deprecated ``nirtorch.load``: that one orders nodes
    depth-first, which evaluates a residual merge before all of its inputs (docs/nir.md)."""
    from functools import partial

    import nir
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    node = partial(_import_norse_module, dt=dt)
    kinds = (nir.Affine, nir.Conv2d, nir.Flatten, nir.Linear, nir.CubaLIF, nir.LIF, nir.IF, nir.SumPool2d)
    return nirtorch.nir_to_torch(graph, {k: node for k in kinds})
