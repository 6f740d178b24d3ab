"""Membrane potential perturbation dynamics (MPPD): recording, the MS-MPPD loss, the gain bound.

The recursion itself (``eps[t] = leak * eps[t-1] + dI[t]``) and Theorem 3.1's constant live in
:mod:`rssnn.dynamics`, shared with the Lava monitor; this module applies them to PyTorch models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from rssnn import dynamics
from rssnn.neuron import REFERENCE_LEAK

from .models import ConvUnit, DenseUnit, batchnorm_affine_of, spiking_layers
from .neurons import DLIF


def select_layers(model: nn.Module, which: str | Sequence[str] = "last") -> list[tuple[str, DLIF]]:
    """Spiking layers for MS-MPPD: ``"last"`` (the reference), ``"all"``, or a list of names."""
    layers = spiking_layers(model)
    if which == "last":
        return layers[-1:]
    if which == "all":
        return layers
    names = {n for n, _ in layers}
    unknown = [w for w in which if w not in names]
    if unknown:
        raise ValueError(f"unknown spiking layers {unknown}; available: {sorted(names)}")
    return [(n, m) for n, m in layers if n in which]


@contextmanager
def recording(layers: list[tuple[str, DLIF]]) -> Iterator[None]:
    """Make the given layers keep their input current and membrane during forwards."""
    for _, m in layers:
        m.record = True
    try:
        yield
    finally:
        for _, m in layers:
            m.record = False
            m.recorded_current = m.recorded_membrane = None


def mppd_sequence(delta_current: torch.Tensor, leak: torch.Tensor) -> torch.Tensor:
    """Reset-free MPPD eps[t] for all t.

    Args:
        delta_current: I_clean - I_pert, [N, C, *S, T].
        leak: per-channel leak [C] (or [1]).
    Returns:
        eps [N, C, *S, T], eps[0] = dI[0], eps[t] = leak * eps[t-1] + dI[t].
    """
    view = (1, -1) + (1,) * (delta_current.dim() - 3)
    lam = leak.reshape(view)
    eps = torch.zeros_like(delta_current[..., 0])
    out = []
    for t in range(delta_current.shape[-1]):
        eps = dynamics.mppd_step(eps, lam, delta_current[..., t])
        out.append(eps)
    return torch.stack(out, -1)


def _per_channel(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[C] or [1] -> broadcastable against [N, C, *S, T]."""
    return p.reshape((1, -1) + (1,) * (like.dim() - 2))


def ms_mppd(
    clean_current: torch.Tensor,
    pert_current: torch.Tensor,
    leak: torch.Tensor,
    unit: torch.Tensor | None = None,
) -> torch.Tensor:
    """MS-MPPD = mean over N, neurons and T of eps^2, clean side detached (the reference).

    Args:
        clean_current, pert_current: I(x) and I(x~), [N, C, *S, T].
        leak: the recursion's leak, [C] or [1] (see :func:`recursion_params`).
        unit: what dI is measured in, [C] or [1] (the layer's detached threshold), or None
            (raw current units).
    """
    delta = clean_current.detach() - pert_current
    if unit is not None:
        delta = delta / _per_channel(unit, delta)
    return mppd_sequence(delta, leak).pow(2).mean()


def mppd_per_step(
    clean_current: torch.Tensor,
    pert_current: torch.Tensor,
    leak: torch.Tensor,
    unit: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean eps^2 per time step, [T] (for plots and reports); arguments as :func:`ms_mppd`."""
    delta = clean_current - pert_current
    if unit is not None:
        delta = delta / _per_channel(unit, delta)
    eps = mppd_sequence(delta, leak)
    return eps.pow(2).transpose(0, -1).reshape(eps.shape[-1], -1).mean(1)


# How the MS-MPPD recursion gets its leak. "detached" (default): the layer's learned leak as a
# constant, so the loss cannot shrink its own measure by lowering the leak; "fixed": the
# reference code's --tau 0.99 for every layer and model (comparable across models); "learned":
# the leak with its gradient (rssnn-lava v0.1; kept only for the ablation that shows the hole).
LEAK_MODES = ("detached", "fixed", "learned")
# How dI is measured. "threshold" (default): in units of the layer's detached threshold, which
# makes the loss invariant to scaling a layer's current and threshold together (with a hard
# reset to 0 that leaves every spike unchanged); "raw": the current itself (v0.1, the reference).
UNITS = ("threshold", "raw")


def recursion_params(
    neuron: DLIF, leak_mode: str = "detached", units: str = "threshold"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(leak [C] or [1], unit [C] or [1] or None) for MS-MPPD on this layer."""
    if leak_mode not in LEAK_MODES:
        raise ValueError(f"unknown MPPD leak mode '{leak_mode}': use one of {', '.join(LEAK_MODES)}")
    if units not in UNITS:
        raise ValueError(f"unknown MPPD units '{units}': use one of {', '.join(UNITS)}")
    leak, threshold, _ = neuron.clamped()
    if leak_mode == "fixed":
        leak = torch.full_like(leak, REFERENCE_LEAK).detach()
    elif leak_mode == "detached":
        leak = leak.detach()
    return leak, (threshold.detach() if units == "threshold" else None)


def layer_leak(neuron: DLIF) -> torch.Tensor:
    """The layer's own clamped leak, [C] or [1] (what the on-device Lava monitor uses)."""
    return neuron.clamped()[0]


def _bn_scale(norm: nn.Module | None) -> torch.Tensor | None:
    return None if norm is None else batchnorm_affine_of(norm)[0]


@torch.no_grad()
def spectral_norm(unit: nn.Module, in_shape: tuple[int, ...], iterations: int = 30, seed: int = 0) -> float:
    """||W||_2 of the linear map feeding a spiking layer, by power iteration.

    For a conv unit the map is conv followed by the inference-mode BatchNorm scale, on an input
    of shape ``in_shape`` = (C, H, W); for a dense unit it is the weight matrix.
    """
    gen = torch.Generator().manual_seed(seed)
    if isinstance(unit, DenseUnit):
        w = unit.synapse.weight.detach().reshape(unit.synapse.weight.shape[0], -1)
        if unit.norm is not None:
            w = w * _bn_scale(unit.norm)[:, None]
        return float(torch.linalg.matrix_norm(w, ord=2))
    conv = unit.synapse
    scale = _bn_scale(getattr(unit, "norm", None))
    w = conv.weight.detach()[..., 0]  # (out, in, kh, kw)

    def fwd(x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv2d(x, w, None, conv.stride[:2], conv.padding[:2])
        return y * scale.view(1, -1, 1, 1) if scale is not None else y

    x = torch.randn((1, *in_shape), generator=gen).to(w.device)
    y = fwd(x)
    for _ in range(iterations):
        x = _conv_adjoint(fwd, x, y)
        x = x / x.norm()
        y = fwd(x)
    return float(y.norm())


def _conv_adjoint(fwd, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W^T y for the linear map ``fwd`` at any point x (exact: the map is linear)."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fwd(xr), xr, grad_outputs=y)
    return grad


def gain_bounds(model: nn.Module, image_size: int = 32) -> dict[str, float]:
    """Theorem 3.1's gamma = sqrt(1/(1-leak)) * ||W||_2 per spiking layer (max leak per layer).

    Only layers fed by a single conv/dense unit have a defined W; others (the WRN's
    pre-activation neurons, fed by a residual sum) are skipped.
    """
    bounds: dict[str, float] = {}
    shapes = _unit_input_shapes(model, image_size)
    for name, unit in model.named_modules():
        if isinstance(unit, ConvUnit | DenseUnit) and unit.neuron is not None and name in shapes:
            leak = float(layer_leak(unit.neuron).max())
            bounds[name] = dynamics.l2_gain_bound(leak, spectral_norm(unit, shapes[name]))
    return bounds


@torch.no_grad()
def _unit_input_shapes(model: nn.Module, image_size: int) -> dict[str, tuple[int, ...]]:
    """Input shape (C, H, W) or (F,) of every conv/dense unit, found with one tiny forward."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, unit in model.named_modules():
        if isinstance(unit, ConvUnit | DenseUnit):
            hooks.append(
                unit.register_forward_hook(
                    lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(inp[0].shape[1:-1]))
                )
            )
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes
