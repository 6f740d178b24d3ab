"""The deployed model as an attack target: the integer network Lava runs, as a torch module.

The integer reference forward (:func:`rssnn.integer_forward.run_fixed`) is bit-exact with Lava
(``export/verify.py``), so checking an adversarial image on it is checking it on the device.
Pixels are rounded to the 8-bit grid first, as the device's input is 8 bit: a candidate is
judged as it would be deployed. No gradient flows through it: only black-box attacks (Square)
and the checks of candidates crafted on the float model use it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rssnn.integer_forward import float_equivalent_logits, run_fixed
from rssnn.lowered import LoweredNet


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] -> uint8 levels (round half to even, as torch.round)."""
    return torch.round(pixels.detach().clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


class IntegerModel(nn.Module):
    """[N, 3, H, W] pixels in [0, 1] -> [N, classes] float-equivalent logits of the integer net."""

    def __init__(self, net: LoweredNet, batch_size: int = 250):
        super().__init__()
        self.net = net
        self.batch_size = batch_size
        # torchattacks reads the device from the first parameter; the net has none of torch's.
        self._device_marker = nn.Parameter(torch.zeros(1), requires_grad=False)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        px = to_uint8(pixels)
        out = [
            float_equivalent_logits(self.net, run_fixed(self.net, px[i : i + self.batch_size])["logits"])
            for i in range(0, len(px), self.batch_size)
        ]
        return torch.from_numpy(np.concatenate(out)).float().to(pixels.device)

    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """Classes [N] (int64)."""
        return self(pixels).argmax(1)


def lower_model(model: nn.Module, class_names: list[str] | None = None) -> LoweredNet:
    """A trained float model lowered in memory, exactly as ``export/to_netx.py`` writes it."""
    from ..export import lowering

    return lowering.lower(model, class_names or [str(i) for i in range(10)])
