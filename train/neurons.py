"""DLIF: a Loihi-style LIF neuron whose leak and threshold are learned.

One module serves training (float, surrogate gradients), export (Loihi integer parameters) and
the fixed-point checks (bit-exact Loihi 2 arithmetic from :mod:`rssnn.dynamics`).

Float dynamics per neuron, time step t = 1..T (the reference code's LIF when the current leak is 0)::

    u[t] = current_leak * u[t-1] + gain[t] * I[t]
    m[t] = leak * h[t-1] + u[t]
    s[t] = H(m[t] - threshold)          triangle surrogate of half-width `surrogate_width`
    h[t] = m[t] * (1 - s[t])            hard reset to 0, differentiated as in the reference

``leak`` and ``threshold`` are learnable (per layer, or per channel), ``current_leak`` optionally,
and ``gain`` (the paper's DLIF a[t], per layer and time step) is an option. Parameters are
clamped to what Loihi 2 represents: leak in [1/4096, 1] (vDecay 0..4095), current leak in
[0, 1] (iDecay 0..4096), threshold in [threshold_min, threshold_max] (a positive mantissa once
the exporter picks the layer's weight scale). The vanilla LIF is the same module with
``learn_leak=learn_threshold=False``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from rssnn import dynamics
from rssnn.errors import UserError
from rssnn.neuron import REFERENCE_LEAK, FloatCuba, LoihiCuba
from rssnn.signals import deferred_signals

THRESHOLD_RANGE = (1.0 / 64, 64.0)  # float units; keeps vThMant positive and well in 17 bits


@dataclass
class NeuronConfig:
    """Hyper-parameters shared by every spiking layer of a model (stored in checkpoints)."""

    leak: float = REFERENCE_LEAK
    threshold: float = 1.0
    learn_leak: bool = True
    learn_threshold: bool = True
    per_channel: bool = False
    current_leak: float = 0.0  # 0: no current state (plain LIF), as in the reference code
    learn_current_leak: bool = False
    learn_gain: bool = False  # the paper's per-step input gain a[t]
    surrogate_width: float = 1.0
    detach_reset: bool = False
    backend: str = "auto"  # auto | fused | torch

    @classmethod
    def lif(cls, **overrides) -> NeuronConfig:
        """The vanilla LIF baseline: leak 0.99, threshold 1.0, nothing learned."""
        base = dict(learn_leak=False, learn_threshold=False, learn_gain=False, learn_current_leak=False)
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)


class TriangleSpike(torch.autograd.Function):
    """Heaviside forward, triangle surrogate ``max(0, w - |x|) / w**2`` backward (peak 1/w)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.width = width
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        w = ctx.width
        return grad * torch.clamp(w - x.abs(), min=0) / (w * w), None


def dlif_reference(
    x: torch.Tensor,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    current_leak: torch.Tensor,
    num_steps: int,
    width: float,
    detach_reset: bool,
    spike_fn=TriangleSpike.apply,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Autograd time loop (any device); the definition the fused kernel is tested against.

    ``spike_fn(x, width)`` is the Heaviside with triangle surrogate; tests swap in a smooth
    ramp with the same derivative to check gradients against finite differences.

    Args:
        x: input current [N, C, *S, T] or [N, C, *S, 1] (constant over time).
        leak, threshold, current_leak: broadcastable to [N, C, *S] (e.g. [C, 1, 1] or [1]).
    Returns:
        spikes and pre-reset membrane, both [N, C, *S, T].
    """
    u = torch.zeros_like(x[..., 0])
    h = torch.zeros_like(x[..., 0])
    spikes, membrane = [], []
    for t in range(num_steps):
        x_t = x[..., 0 if x.shape[-1] == 1 else t]
        u, m, s = dynamics.float_lif_update(
            u, h, x_t, current_leak, leak, threshold, spike=lambda d: spike_fn(d, width)
        )
        h = m * (1 - (s.detach() if detach_reset else s))
        spikes.append(s)
        membrane.append(m)
    return torch.stack(spikes, -1), torch.stack(membrane, -1)


def _numba_threads_like_torch() -> None:
    """The kernels' parallel loops take as many threads as torch's own ops do.

    numba defaults to every core whatever ``OMP_NUM_THREADS`` says, so two processes on two
    cores (torchrun's ranks, which it gives one torch thread each, or the suite's two workers)
    ran 2 x 2 threads on 2 cores: three training tests took 71 s side by side instead of 49 s.
    The kernels' rows are independent, so the thread count changes no result."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


class _FusedDLIF(torch.autograd.Function):
    """CPU autograd wrapper around the numba kernels of :mod:`train.lif_kernels`."""

    @staticmethod
    def forward(ctx, x, leak, threshold, current_leak, num_steps, width, detach_reset):
        from . import lif_kernels

        n, c = x.shape[:2]
        spatial = int(np.prod(x.shape[2:-1])) if x.dim() > 3 else 1
        x2 = x.detach().contiguous().reshape(-1, x.shape[-1]).numpy()
        lk = leak.detach().float().expand(c).contiguous().numpy()
        th = threshold.detach().float().expand(c).contiguous().numpy()
        cl = current_leak.detach().float().expand(c).contiguous().numpy()
        _numba_threads_like_torch()
        with deferred_signals():  # a signal under numba's dispatcher crashes it (rssnn.signals)
            spikes, membrane = lif_kernels.dlif_forward(x2, num_steps, c, spatial, lk, th, cl)
        out_shape = (*x.shape[:-1], num_steps)
        spikes_t = torch.from_numpy(spikes).view(out_shape)
        membrane_t = torch.from_numpy(membrane).view(out_shape)
        ctx.save_for_backward(membrane_t)
        ctx.set_materialize_grads(False)
        ctx.params = (
            lk,
            th,
            cl,
            c,
            spatial,
            width,
            detach_reset,
            x.shape[-1] == 1,
            leak.shape,
            threshold.shape,
            current_leak.shape,
        )
        return spikes_t, membrane_t

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane):
        from . import lif_kernels

        (membrane,) = ctx.saved_tensors
        lk, th, cl, c, spatial, width, detach_reset, const, lk_shape, th_shape, cl_shape = ctx.params
        num_steps = membrane.shape[-1]
        if grad_spikes is None:  # only the membrane output was used
            grad_spikes = torch.zeros_like(membrane)
        gs = grad_spikes.contiguous().reshape(-1, num_steps).numpy()
        gm = (
            grad_membrane.contiguous().reshape(-1, num_steps).numpy()
            if grad_membrane is not None
            else np.zeros((0, num_steps), np.float32)
        )
        m2 = membrane.reshape(-1, num_steps).numpy()
        _numba_threads_like_torch()
        with deferred_signals():
            gx, g_leak, g_th, g_cl = lif_kernels.dlif_backward(
                gs,
                gm,
                m2,
                const,
                c,
                spatial,
                lk,
                th,
                cl,
                float(width),
                bool(detach_reset),
                bool(ctx.needs_input_grad[3]),
            )
        gx_t = torch.from_numpy(gx).view(*membrane.shape[:-1], 1 if const else num_steps)

        def per_param(g: np.ndarray, shape: torch.Size) -> torch.Tensor:
            g_c = torch.from_numpy(g).double().view(-1, c, spatial).sum((0, 2)).float()
            return g_c.sum().reshape(shape) if int(np.prod(shape)) == 1 else g_c.reshape(shape)

        return (
            gx_t,
            per_param(g_leak, lk_shape) if ctx.needs_input_grad[1] else None,
            per_param(g_th, th_shape) if ctx.needs_input_grad[2] else None,
            per_param(g_cl, cl_shape) if ctx.needs_input_grad[3] else None,
            None,
            None,
            None,
        )


class DLIF(nn.Module):
    """Spiking layer with learnable leak and threshold (Loihi 2 representable).

    Input: synaptic current [N, C, *S, T] (or [N, C, *S, 1] for an input that is constant over
    time, e.g. the direct-encoded first layer). Output: spikes [N, C, *S, T] in {0, 1}.

    With ``record = True`` the last forward keeps ``recorded_current`` (the input current I[t]
    before the gain, as the reference code's MS-MPPD uses) and ``recorded_membrane`` (the
    pre-reset membrane m[t]); :mod:`train.mppd` reads them.
    """

    def __init__(self, channels: int, num_steps: int, config: NeuronConfig | None = None):
        super().__init__()
        cfg = config or NeuronConfig()
        self.config = cfg
        self.num_steps = num_steps
        self.channels = channels
        n = channels if cfg.per_channel else 1
        self.leak = nn.Parameter(torch.full((n,), float(cfg.leak)), requires_grad=cfg.learn_leak)
        self.threshold = nn.Parameter(
            torch.full((n,), float(cfg.threshold)), requires_grad=cfg.learn_threshold
        )
        self.current_leak = nn.Parameter(
            torch.full((n,), float(cfg.current_leak)), requires_grad=cfg.learn_current_leak
        )
        self.gain = nn.Parameter(torch.ones(num_steps)) if cfg.learn_gain else None
        # An attacker's spike derivative (train.surrogates): ``spike_fn(u, width)``, Heaviside
        # forward; None: training's triangle (and the fused kernel where it runs).
        self.spike_fn = None
        self.record = False
        self.recorded_current: torch.Tensor | None = None
        self.recorded_membrane: torch.Tensor | None = None
        self.constrain_()

    # -- parameters -------------------------------------------------------------------------
    def clamped(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Leak, threshold and current leak clamped to the Loihi-representable ranges."""
        return (
            self.leak.clamp(*dynamics.LEAK_RANGE),
            self.threshold.clamp(*THRESHOLD_RANGE),
            self.current_leak.clamp(*dynamics.CURRENT_LEAK_RANGE),
        )

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the raw parameters back into range (called after every optimiser step)."""
        self.leak.clamp_(*dynamics.LEAK_RANGE)
        self.threshold.clamp_(*THRESHOLD_RANGE)
        self.current_leak.clamp_(*dynamics.CURRENT_LEAK_RANGE)

    def _use_fused(self, x: torch.Tensor) -> bool:
        backend = self.config.backend
        if backend == "torch":
            return False
        fused_ok = x.device.type == "cpu" and x.dtype == torch.float32
        if backend == "fused" and not fused_ok:
            raise ValueError(
                "the fused DLIF kernel runs on float32 CPU tensors only; " "use backend='torch' or 'auto'"
            )
        return fused_ok

    # -- float forward ----------------------------------------------------------------------
    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if current.shape[1] != self.channels:
            raise ValueError(
                f"DLIF expects {self.channels} channels at dim 1, "
                f"got input of shape {tuple(current.shape)}"
            )
        leak, threshold, current_leak = self.clamped()
        x = current
        if self.gain is not None:
            x = x.expand(*x.shape[:-1], self.num_steps) * self.gain
        spatial_dims = x.dim() - 3
        view = (-1,) + (1,) * spatial_dims  # [C, 1, ...] broadcasts over [N, C, *S]
        if self.spike_fn is None and self._use_fused(x):
            spikes, membrane = _FusedDLIF.apply(
                x,
                leak,
                threshold,
                current_leak,
                self.num_steps,
                self.config.surrogate_width,
                self.config.detach_reset,
            )
        else:
            spikes, membrane = dlif_reference(
                x,
                leak.view(view),
                threshold.view(view),
                current_leak.view(view),
                self.num_steps,
                self.config.surrogate_width,
                self.config.detach_reset,
                self.spike_fn or TriangleSpike.apply,
            )
        if self.record:
            self.recorded_current = current.expand(*current.shape[:-1], self.num_steps)
            self.recorded_membrane = membrane
        return spikes

    # -- Loihi ------------------------------------------------------------------------------
    def float_form(self) -> FloatCuba:
        """This layer's neuron as the core's float CUBA-LIF, parameters [C] (per-layer values
        repeated): DLIF and the LIF baseline alike, after the Loihi range clamp.

        The one refusal of the per-step input gain a[t] (UserError): a CUBA-LIF's parameters
        are time-invariant, so no deployed form carries it. The exporter (export/lowering) and
        :meth:`loihi_params` both come through here.
        """
        if self.gain is not None:
            raise UserError(
                "cannot export: the per-step input gain a[t] (--learn-gain) has no Loihi mapping "
                "(Loihi weights are time-invariant); train without --learn-gain to deploy"
            )
        leak, threshold, current_leak = (
            p.detach().double().expand(self.channels).cpu().numpy() for p in self.clamped()
        )
        return FloatCuba(leak, threshold, current_leak)

    def loihi_params(self, weight_step: float) -> dict[str, np.ndarray]:
        """Integer Loihi parameters for a layer whose weights are ``w_int * weight_step``.

        Returns per-channel int64 arrays ``iDecay``, ``vDecay`` and ``vThMant``. The threshold
        becomes ``round(threshold / weight_step)``; a value outside 17 bits raises ValueError,
        a layer with the per-step gain UserError (:meth:`float_form`).
        """
        return self.float_form().to_loihi(weight_step).netx()

    @torch.no_grad()
    def forward_fixed(
        self, a_in: torch.Tensor, params: dict[str, np.ndarray], bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Bit-exact Loihi 2 forward on integer synaptic input.

        Args:
            a_in: integer synaptic input [N, C, *S, T] (or [..., 1] for a constant input).
            params: output of :meth:`loihi_params` (arrays of shape [C]).
            bias: optional ``bias_mant`` per channel [C], added to v as ``bias_mant << 6``.
        Returns:
            spikes [N, C, *S, T] as float32 {0, 1}.
        """
        from rssnn.integer_forward import lif_sequence

        spikes = lif_sequence(
            a_in.cpu().numpy(), LoihiCuba(params["iDecay"], params["vDecay"], params["vThMant"]),
            None if bias is None else np.asarray(bias), self.num_steps,
        )  # fmt: skip
        return torch.from_numpy(spikes).float().to(a_in.device)
