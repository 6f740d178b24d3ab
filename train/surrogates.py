"""The attacker's surrogates: which spike derivative a gradient attack differentiates through.

The forward pass is never changed (the model's spikes and logits are exact); only the backward
of the Heaviside, or of a whole layer, is. An attack through the training surrogate alone can
meet a flat or misleading gradient where the model's potentials sit, so the ensembles attack
through several (Özdenizci & Legenstein, TMLR 2024). Formulas: /work/shared notes
"attacks-and-certificates" and the papers named per class; ``u = m - threshold`` (float units).

Each surrogate is one class in :data:`SURROGATES` (names as in :data:`rssnn.perturbation.SURROGATES`,
the grammar). ``applied(model)`` installs it in every spiking layer for one forward;
``reset()`` forgets what a stateful one (ASSG) learnt about the previous batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rssnn import perturbation

from .models import spiking_layers
from .neurons import DLIF


class SpikeWithDerivative(torch.autograd.Function):
    """Heaviside forward; backward ``grad * derivative(u)`` for any ``derivative`` callable."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, derivative: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.derivative = derivative
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad * ctx.derivative(u), None


class Surrogate:
    """Base: the model's own surrogate (nothing changed)."""

    name = "own"

    def __init__(self, width: float | None = None):
        self.width = width

    def reset(self) -> None:
        """Forget per-batch state (a new attack begins)."""

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        yield

    def __repr__(self) -> str:
        return f"{self.name}{self.width:g}" if self.width is not None else self.name


class Triangle(Surrogate):
    """Training's triangle ``max(0, w - |u|) / w^2`` at another half-width (the fused kernel)."""

    name = "tri"

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        saved = [(n, n.config.surrogate_width) for _, n in spiking_layers(model)]
        for n, _ in saved:
            n.config.surrogate_width = self.width
        try:
            yield
        finally:
            for n, w in saved:
                n.config.surrogate_width = w


class _SpikeFnSurrogate(Surrogate):
    """A surrogate installed as ``DLIF.spike_fn`` (the autograd time loop,
    :func:`train.neurons.dlif_reference`, calls it once per step, in order). ``prepare`` runs in
    the forward pass with the detached potential and returns the derivative the backward uses,
    so statistics are those of the forward (the backward visits steps in reverse)."""

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, layer: int, step: int, u: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The derivative for this layer and step (default: the fixed shape)."""
        return self.derivative

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        layers = [n for _, n in spiking_layers(model)]
        for i, n in enumerate(layers):
            n.spike_fn = self._spike_fn(i, n.num_steps)
        try:
            yield
        finally:
            for n in layers:
                n.spike_fn = None

    def _spike_fn(self, layer: int, num_steps: int):
        calls = [0]

        def spike(u: torch.Tensor, _width: float) -> torch.Tensor:
            step = calls[0] % num_steps
            calls[0] += 1
            if not (torch.is_grad_enabled() and u.requires_grad):
                return (u >= 0).to(u.dtype)
            return SpikeWithDerivative.apply(u, self.prepare(layer, step, u.detach()))

        return spike


class Exponential(_SpikeFnSurrogate):
    """SLAYER's ``exp(-|u| / w) / (2 w)`` (scale_rho 1, tau_rho w)."""

    name = "exp"

    def derivative(self, u):
        return torch.exp(-u.abs() / self.width) / (2 * self.width)


class Rectangular(_SpikeFnSurrogate):
    """``1[|u| < w] / (2 w)``."""

    name = "rect"

    def derivative(self, u):
        return (u.abs() < self.width).to(u.dtype) / (2 * self.width)


def atan_derivative(u: torch.Tensor, alpha) -> torch.Tensor:
    """The Atan surrogate's derivative ``alpha / (2 (1 + (pi alpha u / 2)^2))`` (integral 1)."""
    return alpha / (2 * (1 + (math.pi / 2 * alpha * u) ** 2))


class Arctan(_SpikeFnSurrogate):
    """Atan with ``alpha = 2 / w``: peak ``1 / w``, as the triangle of half-width w."""

    name = "atan"

    def derivative(self, u):
        return atan_derivative(u, 2.0 / self.width)


# ASSG's a = 2 tan(pi A) / pi. Wang et al. pick A per model by a ternary search in [0.35, 0.49]
# and report 0.41-0.45; we fix the middle, 0.43 (a search costs one attack per probe).
ASSG_A = 0.43
ASSG_BETA = 0.9  # their EMA factor for M and D


class ASSG(_SpikeFnSurrogate):
    """Adaptive sharpness (Wang et al., arXiv 2512.22522): Atan whose sharpness is set per
    neuron, step and image, ``alpha = a / (M + 1.5 D + 1e-4)``, with M the EMA of |u| over the
    attack's iterations and D the EMA of ||u| - M| (beta 0.9). Sharp where the potential keeps
    close to threshold, wide where it stays far. State: [N, C, *S] per (layer, step)."""

    name = "assg"

    def __init__(self, width: float | None = None):
        super().__init__(None)
        self.a = 2 * math.tan(math.pi * ASSG_A) / math.pi
        self.stats: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def reset(self) -> None:
        self.stats = {}

    def prepare(self, layer, step, u):
        # One differentiated forward = one attack iteration: update the EMAs, then use them.
        mag = u.abs()
        old = self.stats.get((layer, step))
        if old is None or old[0].shape != mag.shape:
            m, d = mag, torch.zeros_like(mag)
        else:
            m = ASSG_BETA * old[0] + (1 - ASSG_BETA) * mag
            d = ASSG_BETA * old[1] + (1 - ASSG_BETA) * (mag - m).abs()
        self.stats[(layer, step)] = (m, d)
        alpha = self.a / (m + 1.5 * d + 1e-4)
        return lambda v: atan_derivative(v, alpha)


class PDSG(_SpikeFnSurrogate):
    """Potential-dependent surrogate (Lun et al., CVPR 2025): ``ds/du = N(u; 0.5 sigma, sigma)``,
    sigma the per-channel standard deviation of the potential over the steps so far of this
    forward, the batch and the map (1 where it is 0)."""

    name = "pdsg"

    def __init__(self, width: float | None = None):
        super().__init__(None)
        self.seen: dict[int, list[torch.Tensor]] = {}

    def prepare(self, layer, step, u):
        if step == 0:
            self.seen[layer] = []
        self.seen[layer].append(u.transpose(0, 1).reshape(u.shape[1], -1))  # [C, N*S]
        seen = torch.cat(self.seen[layer], 1)
        sigma = seen.std(1, correction=1 if seen.shape[1] > 1 else 0)  # one value: 0, then 1 below
        sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma)).view((1, -1) + (1,) * (u.dim() - 2))

        def derivative(v: torch.Tensor) -> torch.Tensor:
            z = (v - 0.5 * sigma) / sigma
            return torch.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))

        return derivative


class _RateSurrogate(Surrogate):
    """A layer's whole backward replaced by a rate derivative: the spikes are the model's, and
    ``d s[t] / d xbar = g(xbar)`` for every t, with ``xbar`` the time-mean input current."""

    def rate_derivative(self, layer: DLIF, xbar: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        layers = [n for _, n in spiking_layers(model)]
        for n in layers:
            n.forward = self._forward(n, type(n).forward.__get__(n))
        try:
            yield
        finally:
            for n in layers:
                del n.forward  # back to the class's forward

    def _forward(self, layer: DLIF, exact):
        def forward(current: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                spikes = exact(current)
            x = (
                current
                if layer.gain is None
                else current.expand(*current.shape[:-1], layer.num_steps) * layer.gain
            )
            xbar = x.mean(-1)  # [N, C, *S]
            g = self.rate_derivative(layer, xbar.detach(), spikes.mean(-1)).detach()
            carrier = g * xbar - (g * xbar).detach()  # value 0, gradient g
            return spikes + carrier.unsqueeze(-1)

        return forward


def _channel_view(layer: DLIF, p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return p.view((1, -1) + (1,) * (like.dim() - 2)) if p.numel() > 1 else p


# RGA's gamma (Bu et al., CVPR 2023)
RGA_GAMMA = 0.2


class RGA(_RateSurrogate):
    """Rate gradient approximation (Bu et al., CVPR 2023), for ``m = tau m + x``, threshold 1:
    ``gamma`` on [0, 1 - tau], ``(1 - gamma + gamma tau) / (tau + 1)`` on [1 - tau, 2], else 0;
    here in threshold units (xbar / theta, derivative / theta), tau the layer's leak."""

    name = "rga"

    def rate_derivative(self, layer, xbar, rate):
        leak, th, _ = layer.clamped()
        tau, th = _channel_view(layer, leak.detach(), xbar), _channel_view(layer, th.detach(), xbar)
        xn = xbar / th
        low = ((xn >= 0) & (xn <= 1 - tau)).to(xbar.dtype)
        high = ((xn > 1 - tau) & (xn <= 2)).to(xbar.dtype)
        return (RGA_GAMMA * low + (1 - RGA_GAMMA + RGA_GAMMA * tau) / (tau + 1) * high) / th


class BPTR(_RateSurrogate):
    """Backpropagation through rates (Ding et al., NeurIPS 2022): straight-through on the rate,
    ``d rate / d xbar = 1[rate > 0]`` (per threshold)."""

    name = "bptr"

    def rate_derivative(self, layer, xbar, rate):
        _, th, _ = layer.clamped()
        return (rate > 0).to(xbar.dtype) / _channel_view(layer, th.detach(), xbar)


# The table of surrogates: name (the grammar's) -> class.
SURROGATES: dict[str, type[Surrogate]] = {
    cls.name: cls for cls in (Triangle, Exponential, Rectangular, Arctan, ASSG, PDSG, RGA, BPTR)
}
if set(SURROGATES) != set(perturbation.SURROGATES):  # the grammar and the code must name the same set
    raise ImportError(
        f"surrogates {sorted(SURROGATES)} differ from the grammar's {sorted(perturbation.SURROGATES)}"
    )


def make(name: str | float | None) -> Surrogate:
    """'exp0.5' / 'assg' / a triangle width / None (the model's own) -> a fresh surrogate."""
    if name is None or name == "":
        return Surrogate()
    if isinstance(name, int | float):
        return Triangle(float(name))
    base = name.rstrip("0123456789.")
    return SURROGATES[base](perturbation.surrogate_width(name))
