"""Spiking CIFAR models built from lava-dl SLAYER synapses, BatchNorm and DLIF neurons.

Every tensor between modules is [N, C, H, W, T] (SLAYER's layout) or [N, F, T] after flatten.
Input is a pixel batch [N, 3, H, W] in [0, 1]; normalisation is the model's first step, so
noise and attacks live in pixel space. Direct (analog) encoding: the first convolution sees the
same image every step, so it is computed once and its current reused for all T steps (the DLIF
kernels accept a constant-in-time input). Output: logits averaged over T, [N, classes].

Models:
    ``cpu``    a small strided-conv net that learns CIFAR-10 within minutes on 2 CPU cores;
    ``vgg11``  the reference code's VGG-11 plan (8 convs, 3 avg-pools, FC 4096-4096);
    ``vgg5``   the reference ablation net;
    ``wrn16``  the reference pre-activation WRN-16-4 with learnable convex residual mixing;
    ``cpu-res`` the same residual blocks at the CPU net's widths (trains within minutes).
"""

from __future__ import annotations

import torch
from torch import nn

from rssnn.folding import batchnorm_affine

from .neurons import DLIF, NeuronConfig
from .slayer_import import slayer


class Normalize(nn.Module):
    """Per-channel (x - mean) / std on pixel batches [N, 3, H, W]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ConvUnit(nn.Module):
    """SLAYER conv synapse -> BatchNorm (statistics over N, H, W and T) -> DLIF.

    [N, Cin, H, W, T] -> spikes [N, Cout, H', W', T]. A [N, Cin, H, W, 1] input (constant in
    time) yields a [.., 1] current that the neuron repeats over T.
    """

    def __init__(
        self, cin: int, cout: int, num_steps: int, neuron: NeuronConfig, kernel: int = 3, stride: int = 1
    ):
        super().__init__()
        self.synapse = slayer.synapse.Conv(cin, cout, kernel, stride=stride, padding=kernel // 2)
        nn.init.kaiming_normal_(self.synapse.weight, mode="fan_out", nonlinearity="relu")
        self.norm = nn.BatchNorm3d(cout)
        self.neuron = DLIF(cout, num_steps, neuron)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.synapse(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.current(x))


class DenseUnit(nn.Module):
    """SLAYER dense synapse + bias (or BatchNorm) -> DLIF: [N, Fin, T] -> spikes [N, Fout, T].

    SLAYER synapses carry no bias; the reference FC layers have one and no BatchNorm. With
    ``norm=True`` a BatchNorm over (N, T) replaces the bias: it keeps a narrow FC layer firing
    from the first step (without it the CPU model's FC layer starts almost silent).
    """

    def __init__(self, fin: int, fout: int, num_steps: int, neuron: NeuronConfig | None, norm: bool = False):
        super().__init__()
        self.synapse = slayer.synapse.Dense(fin, fout)
        nn.init.kaiming_uniform_(self.synapse.weight, a=5**0.5)
        self.norm = nn.BatchNorm1d(fout) if norm else None
        self.bias = None if norm else nn.Parameter(torch.zeros(fout))
        self.neuron = DLIF(fout, num_steps, neuron) if neuron is not None else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        y = self.synapse(x)
        return self.norm(y) if self.norm is not None else y + self.bias.view(1, -1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = self.current(x)
        return self.neuron(i) if self.neuron is not None else i


class AvgPool(nn.Module):
    """2x2 average pooling of spikes, no neuron (the reference); [N, C, H, W, T] -> [.., H/2, W/2, T]."""

    def __init__(self, kernel: int = 2):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        return nn.functional.avg_pool3d(x, (k, k, 1), (k, k, 1))


class Flatten(nn.Module):
    """[N, C, H, W, T] -> [N, C*H*W, T] in (C, H, W) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, x.shape[-1])


class ImageClassifier(nn.Module):
    """What every model here shares: T, the image size, and normalisation as its first step."""

    def __init__(self, num_steps: int, dataset: str, image_size: int):
        super().__init__()
        from .data import NORMALISATION

        self.num_steps = num_steps
        self.image_size = image_size
        self.normalize = Normalize(*NORMALISATION[dataset])


class SpikingNet(ImageClassifier):
    """A feed-forward spiking model described by a layer plan.

    Plan entries: ``("conv", cout, stride)``, ``("pool",)``, ``("flatten",)``,
    ``("dense", fout)`` or ``("dense", fout, "bn")``; a non-spiking dense read-out to
    ``num_classes`` is appended.
    """

    def __init__(
        self,
        plan: list[tuple],
        num_steps: int,
        num_classes: int = 10,
        neuron: NeuronConfig | None = None,
        dataset: str = "cifar10",
        in_channels: int = 3,
        image_size: int = 32,
    ):
        super().__init__(num_steps, dataset, image_size)
        neuron = neuron or NeuronConfig()
        layers: list[nn.Module] = []
        c, size, features = in_channels, image_size, None
        for entry in plan:
            kind = entry[0]
            if kind == "conv":
                layers.append(ConvUnit(c, entry[1], num_steps, neuron, stride=entry[2]))
                c, size = entry[1], (size + entry[2] - 1) // entry[2]
            elif kind == "pool":
                layers.append(AvgPool())
                size //= 2
            elif kind == "flatten":
                layers.append(Flatten())
                features = c * size * size
            elif kind == "dense":
                layers.append(DenseUnit(features, entry[1], num_steps, neuron, norm="bn" in entry[2:]))
                features = entry[1]
            else:
                raise ValueError(f"unknown plan entry {entry}")
        self.layers = nn.Sequential(*layers)
        self.readout = DenseUnit(features, num_classes, num_steps, None)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] pixels in [0, 1] -> logits [N, classes] (mean over T)."""
        x = self.normalize(pixels).unsqueeze(-1)  # constant in time: [N, 3, H, W, 1]
        x = self.layers(x)
        return self.readout(x).mean(-1)

    def stock_netx_exportable(self) -> tuple[bool, str]:
        """Whether stock lava-dl NetX can run this model (answer, reason)."""
        neurons = [m for m in self.modules() if isinstance(m, DLIF)]
        if any(n.gain is not None for n in neurons):
            return False, "the per-step input gain a[t] has no NetX/Loihi mapping"
        if any(n.leak.numel() > 1 or n.threshold.numel() > 1 for n in neurons):
            return False, "per-channel leaks/thresholds need the rssnn NetX extension"
        if any(isinstance(m, AvgPool) for m in self.modules()):
            return True, "conv/dense layers; average pooling is folded into the next synapse"
        return True, "conv/dense layers only"


CPU_PLAN_WIDTH = 32


def cpu_plan(width: int = CPU_PLAN_WIDTH) -> list[tuple]:
    """The CPU default: 4 strided convs, no pooling (trivially NetX-exportable)."""
    w = width
    return [
        ("conv", w, 1),
        ("conv", 2 * w, 2),
        ("conv", 2 * w, 1),
        ("conv", 4 * w, 2),
        ("conv", 4 * w, 2),
        ("flatten",),
        ("dense", 256, "bn"),
    ]


VGG11_PLAN = [
    ("conv", 64, 1),
    ("pool",),
    ("conv", 128, 1),
    ("conv", 256, 1),
    ("pool",),
    ("conv", 512, 1),
    ("conv", 512, 1),
    ("conv", 512, 1),
    ("pool",),
    ("conv", 512, 1),
    ("conv", 512, 1),
    ("flatten",),
    ("dense", 4096),
    ("dense", 4096),
]
VGG5_PLAN = [
    ("conv", 64, 1),
    ("pool",),
    ("conv", 128, 1),
    ("conv", 128, 1),
    ("pool",),
    ("flatten",),
    ("dense", 4096),
    ("dense", 4096),
]


class PreActBlock(nn.Module):
    """Pre-activation residual block: BN -> DLIF -> conv -> BN -> DLIF -> conv, mixed with the shortcut.

    The residual stream is analog, [N, C, H, W, T]: ``out = c0 * shortcut + c1 * residual`` with
    the reference code's learnable convex combination (initialised 0.5, 0.5). The shortcut is
    the identity when shapes agree, else a 1x1 conv (stride ``stride``) of the block's *first
    spikes* ``s`` (the reference's choice). On Loihi the stream is never materialised: it is a
    sum of synaptic currents, each term a synapse into the neuron that reads the stream (see
    ``export/lowering.py``).
    """

    def __init__(self, cin: int, cout: int, stride: int, num_steps: int, neuron: NeuronConfig):
        super().__init__()
        self.norm1 = nn.BatchNorm3d(cin)
        self.neuron1 = DLIF(cin, num_steps, neuron)
        self.conv1 = slayer.synapse.Conv(cin, cout, 3, stride=stride, padding=1)
        self.norm2 = nn.BatchNorm3d(cout)
        self.neuron2 = DLIF(cout, num_steps, neuron)
        self.conv2 = slayer.synapse.Conv(cout, cout, 3, padding=1)
        self.shortcut = (
            slayer.synapse.Conv(cin, cout, 1, stride=stride) if (cin != cout or stride != 1) else None
        )
        self.mix = nn.Parameter(torch.tensor([0.5, 0.5]))
        for conv in (self.conv1, self.conv2, self.shortcut):
            if conv is not None:
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.neuron1(self.norm1(x))
        out = self.conv2(self.neuron2(self.norm2(self.conv1(s))))
        short = self.shortcut(s) if self.shortcut is not None else x
        return self.mix[0] * short + self.mix[1] * out


class ResNet(ImageClassifier):
    """Pre-activation spiking ResNet: stem conv -> residual blocks -> BN -> DLIF -> global
    average pool -> read-out.

    [N, 3, H, W] pixels -> logits [N, classes]. ``blocks`` lists (width, stride) per block. The
    stem has no neuron (its analog output starts the residual stream); the last DLIF is the
    reference's MS-MPPD layer.
    """

    def __init__(
        self,
        stem_width: int,
        blocks: list[tuple[int, int]],
        num_steps: int,
        num_classes: int = 10,
        neuron: NeuronConfig | None = None,
        dataset: str = "cifar10",
        image_size: int = 32,
    ):
        super().__init__(num_steps, dataset, image_size)
        neuron = neuron or NeuronConfig()
        self.stem = slayer.synapse.Conv(3, stem_width, 3, padding=1)
        units, cin = [], stem_width
        for width, stride in blocks:
            units.append(PreActBlock(cin, width, stride, num_steps, neuron))
            cin = width
        self.blocks = nn.Sequential(*units)
        self.norm = nn.BatchNorm3d(cin)
        self.neuron = DLIF(cin, num_steps, neuron)  # the reference's MS-MPPD layer
        self.readout = DenseUnit(cin, num_classes, num_steps, None)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(pixels).unsqueeze(-1)).expand(-1, -1, -1, -1, self.num_steps)
        s = self.neuron(self.norm(self.blocks(x)))
        pooled = s.mean((2, 3))  # global average pool: [N, C, T]
        return self.readout(pooled).mean(-1)

    def stock_netx_exportable(self) -> tuple[bool, str]:
        return False, "residual connections need the rssnn NetX graph extension"


def wrn16_blocks(widen: int = 4) -> list[tuple[int, int]]:
    """WRN-16-k as in the reference code: 3 stages of 2 blocks, widths 16k, 32k, 64k."""
    return [
        (16 * widen, 1),
        (16 * widen, 1),
        (32 * widen, 2),
        (32 * widen, 1),
        (64 * widen, 2),
        (64 * widen, 1),
    ]


def cpu_res_blocks(width: int = CPU_PLAN_WIDTH) -> list[tuple[int, int]]:
    """The CPU residual net: the default CPU net's widths in three blocks (conv and identity
    shortcuts both occur), so it trains in the CPU budget."""
    return [(2 * width, 2), (2 * width, 1), (4 * width, 2)]


def build_model(
    name: str,
    num_steps: int,
    num_classes: int = 10,
    neuron: NeuronConfig | None = None,
    dataset: str = "cifar10",
    width: int = CPU_PLAN_WIDTH,
) -> nn.Module:
    """Construct a model by name; the checkpoint stores exactly these arguments."""
    if name == "cpu":
        return SpikingNet(cpu_plan(width), num_steps, num_classes, neuron, dataset)
    if name == "vgg11":
        return SpikingNet(VGG11_PLAN, num_steps, num_classes, neuron, dataset)
    if name == "vgg5":
        return SpikingNet(VGG5_PLAN, num_steps, num_classes, neuron, dataset)
    if name == "wrn16":
        return ResNet(16, wrn16_blocks(), num_steps, num_classes, neuron, dataset)
    if name == "cpu-res":
        return ResNet(width, cpu_res_blocks(width), num_steps, num_classes, neuron, dataset)
    raise ValueError(f"unknown model '{name}': choose {', '.join(MODEL_NAMES)}")


MODEL_NAMES = ("cpu", "cpu-res", "vgg11", "vgg5", "wrn16")


def spiking_layers(model: nn.Module) -> list[tuple[str, DLIF]]:
    """All DLIF layers in execution order, with their module names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, DLIF)]


def batchnorm_affine_of(
    norm: nn.Module, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A BatchNorm module's inference-mode (scale, shift) [C], detached, in ``dtype`` if given
    (the formula is :func:`rssnn.folding.batchnorm_affine`; the exporter folds in float64)."""

    def read(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(dtype) if dtype is not None else t.detach()

    return batchnorm_affine(
        read(norm.weight), read(norm.bias), read(norm.running_mean), read(norm.running_var), norm.eps
    )


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, pixels: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to the exact statistics of one batch.

    For untrained models in benchmarks and tests: with real statistics every layer fires on
    real images, as in a trained model. Returns the model in eval mode.
    """
    for bn in model.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch gives its exact statistics
    model.train()
    model(pixels)
    return model.eval()


def constrain_(model: nn.Module) -> None:
    """Project every neuron's parameters back into Loihi range (after an optimiser step)."""
    for _, neuron in spiking_layers(model):
        neuron.constrain_()
