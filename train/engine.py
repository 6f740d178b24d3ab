"""The training loop: optimiser and schedule, epochs, validation, checkpoints, resume.

What a step differentiates lives in :mod:`train.objective` (joint CE + MS-MPPD); what an epoch
measures and writes in :mod:`train.metrics`.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from rssnn.errors import UserError, first_line

from . import checkpoint, data, distributed, mppd
from .config import TrainConfig
from .metrics import mppd_profile, neuron_summary, split_accuracy, write_metrics
from .models import constrain_, spiking_layers
from .objective import JointObjective, joint_loss


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _cosine(total_steps: int):
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def make_optimizer(model: nn.Module, cfg: TrainConfig, total_steps: int):
    """SGD with momentum (weight decay on weights only, not on neuron parameters) + cosine LR."""
    neuron_params = {id(p) for _, m in spiking_layers(model) for p in m.parameters()}
    weights = [p for p in model.parameters() if id(p) not in neuron_params and p.requires_grad]
    dyn = [p for p in model.parameters() if id(p) in neuron_params and p.requires_grad]
    groups = [dict(params=weights, weight_decay=cfg.weight_decay)]
    if dyn:
        groups.append(dict(params=dyn, weight_decay=0.0, lr=cfg.lr * cfg.neuron_lr_scale))
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(total_steps))
    return opt, sched


class Trainer:
    """Runs (or resumes) one training run into ``cfg.out``.

    Under torchrun (``world.distributed``) every rank runs this loop on its shard of each global
    batch (:mod:`train.distributed`); the objective is wrapped in DistributedDataParallel,
    BatchNorm is synchronised unless ``--no-sync-bn``, and only rank 0 evaluates and writes.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        train_split: data.Split,
        val_split: data.Split,
        device: torch.device,
        spec: dict[str, Any],
        world: distributed.World | None = None,
    ):
        self.world = world or distributed.World()
        if self.world.distributed and not cfg.no_sync_bn:
            model = distributed.synchronise_batchnorm(model, device)  # before the optimiser sees it
        self.cfg, self.model, self.device, self.spec = cfg, model.to(device), device, spec
        self.train_split, self.val_split = train_split, val_split
        self.out = Path(cfg.out)
        try:
            self.layers = mppd.select_layers(model, cfg.mppd_layers)
        except ValueError as exc:
            raise UserError(f"--mppd-layers: {exc}") from exc
        self.objective: nn.Module = JointObjective(self.model, cfg, self.layers)
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.objective = DistributedDataParallel(self.objective, device_ids=ids)
        self.batches_per_epoch = math.ceil(len(train_split) / cfg.batch_size)
        self.opt, self.sched = make_optimizer(model, cfg, cfg.epochs * self.batches_per_epoch)
        self.epoch, self.batch_in_epoch, self.best_acc = 0, 0, -1.0
        self.history: list[dict[str, Any]] = []
        self.mppd_steps: dict[str, dict[str, list[float]]] = {}
        self.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.running = dict(loss=0.0, ce_clean=0.0, ce_pert=0.0, mppd=0.0, correct=0, seen=0, seconds=0.0)
        self.elapsed = 0.0  # training seconds over all sessions of this run

    # -- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return dict(
            model=self.spec,
            state_dict=self.model.state_dict(),
            optimizer=self.opt.state_dict(),
            scheduler=self.sched.state_dict(),
            epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch,
            best_acc=self.best_acc,
            history=self.history,
            mppd_steps=self.mppd_steps,
            running=self.running,
            elapsed=self.elapsed,
            noise_rng=self.noise_gen.get_state(),
            torch_rng=torch.get_rng_state(),
            config=self.cfg.to_dict(),
            class_names=self.train_split.class_names,
        )

    def resume_from(self, ckpt: dict[str, Any], path: Path) -> None:
        if ckpt["model"] != self.spec:
            raise UserError(
                f"checkpoint '{path}' is from another model "
                f"({ckpt['model']['name']}, T={ckpt['model']['num_steps']}, "
                f"width={ckpt['model']['width']}); resume with the same --model, "
                "--timesteps, --width and neuron flags, or use a new --out"
            )
        try:
            self.model.load_state_dict(ckpt["state_dict"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            self.noise_gen.set_state(ckpt["noise_rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            self.epoch, self.batch_in_epoch = ckpt["epoch"], ckpt["batch_in_epoch"]
            self.best_acc, self.history = ckpt["best_acc"], ckpt["history"]
            self.mppd_steps, self.running = ckpt["mppd_steps"], ckpt["running"]
            self.elapsed = ckpt["elapsed"]
        except (KeyError, ValueError, RuntimeError) as exc:
            raise UserError(
                f"checkpoint '{path}' cannot be resumed: it lacks training state "
                f"({exc.__class__.__name__}: {str(exc)[:80]})"
            ) from exc

    def save_last(self) -> None:
        if self.world.is_main:
            checkpoint.save(self.out / "last.pt", self.state())

    # -- loop ------------------------------------------------------------------------------
    def epoch_generator(self, epoch: int) -> torch.Generator:
        """Data order and augmentation of an epoch depend only on (seed, epoch): resumable."""
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        deadline = time.monotonic() + 60 * cfg.max_minutes - self.elapsed if cfg.max_minutes else None
        stopped_early = False
        if self.world.is_main:
            for stale in self.out.glob(".*.tmp"):  # left by a kill during an atomic write
                stale.unlink(missing_ok=True)
            if not (self.out / "last.pt").exists():
                self.save_last()  # a good state to fall back on from the very first batch
        distributed.barrier(self.world)
        try:
            while self.epoch < cfg.epochs and not stopped_early:
                stopped_early = self._train_epoch(deadline)
                self._end_epoch(partial=stopped_early)
        except RuntimeError as exc:
            if not self.world.distributed:
                raise
            raise UserError(
                f"rank {self.world.rank}: the process group failed ({first_line(exc, 160)}); another rank "
                f"probably stopped; the last checkpoint is '{self.out / 'last.pt'}' (resume with --resume)"
            ) from exc
        return dict(history=self.history, best_acc=self.best_acc, stopped_early=stopped_early)

    def _train_epoch(self, deadline: float | None) -> bool:
        cfg, model = self.cfg, self.model
        model.train()
        gen = self.epoch_generator(self.epoch)
        it = data.batches(
            self.train_split,
            cfg.batch_size,
            shuffle=True,
            generator=gen,
            augmentation=not cfg.no_augment,
            cutout=cfg.cutout,
        )
        bar = tqdm(
            it,
            total=self.batches_per_epoch,
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=cfg.quiet or not self.world.is_main,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )  # keep log files small
        for b, (x, y) in enumerate(bar):
            if b < self.batch_in_epoch:  # resuming mid-epoch: replay order and augmentation
                continue
            t0 = time.monotonic()
            shard = None
            if self.world.distributed:  # this rank's rows of the global batch
                rows = self.world.shard(len(y))
                shard = (rows.start, len(y))
                x, y = x[rows], y[rows]
            x, y = x.to(self.device), y.to(self.device)
            loss, parts = joint_loss(model, x, y, cfg, self.layers, self.noise_gen, self.objective, shard)
            # One all-reduce per batch (none in a plain run): the logged sums over the global
            # batch, and the flags every rank must agree on before the backward's collectives.
            n = len(y)
            past_deadline = deadline is not None and time.monotonic() > deadline
            totals = distributed.sum_across(
                [loss.item() * n, parts.ce_clean * n, parts.ce_pert * n, parts.mppd * n,
                 parts.correct, n, int(not torch.isfinite(loss)), int(past_deadline)],
                self.world, self.device,
            )  # fmt: skip
            if totals[6]:
                bar.close()
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {self.epoch + 1}, batch {b + 1}; "
                    f"training stopped, the last good checkpoint is '{self.out / 'last.pt'}'; "
                    "lower --lr or --rho"
                )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            constrain_(model)
            r = self.running
            for key, value in zip(("loss", "ce_clean", "ce_pert", "mppd", "correct", "seen"), totals):
                r[key] += value
            dt = time.monotonic() - t0
            r["seconds"] += dt
            self.elapsed += dt
            self.batch_in_epoch = b + 1
            bar.set_postfix(
                refresh=False, loss=f"{r['loss'] / r['seen']:.3f}", acc=f"{r['correct'] / r['seen']:.3f}"
            )
            if cfg.checkpoint_every and self.batch_in_epoch % cfg.checkpoint_every == 0:
                self.save_last()
            if totals[7]:
                bar.close()
                return True
        bar.close()
        return False

    def _end_epoch(self, partial: bool) -> None:
        """Validation, metrics and checkpoints (rank 0 alone; the others wait for it)."""
        if not self.world.is_main:
            self.epoch += 1
            self.batch_in_epoch = 0
            self.running = {k: 0 for k in self.running}
            distributed.barrier(self.world)
            return
        self._evaluate_and_save(partial)
        distributed.barrier(self.world)

    def _evaluate_and_save(self, partial: bool) -> None:
        cfg, r = self.cfg, self.running
        seen = max(1, r["seen"])
        val_acc = split_accuracy(self.model, self.val_split, cfg.eval_batch_size, self.device)
        val_gn = split_accuracy(
            self.model,
            self.val_split,
            cfg.eval_batch_size,
            self.device,
            sigma=cfg.sigma,
            seed=cfg.seed,
        )
        probe = data.Split(self.val_split.images[:128], self.val_split.labels[:128], [])
        x_probe = next(data.batches(probe, 128))[0].to(self.device)
        self.mppd_steps[str(self.epoch + 1)] = mppd_profile(self.model, x_probe, cfg.sigma)
        row: dict[str, Any] = dict(
            epoch=self.epoch + 1,
            partial_epoch=int(partial),
            images=r["seen"],
            lr=self.opt.param_groups[0]["lr"],
            train_loss=r["loss"] / seen,
            train_ce_clean=r["ce_clean"] / seen,
            train_ce_pert=r["ce_pert"] / seen,
            train_mppd=r["mppd"] / seen,
            train_acc=r["correct"] / seen,
            val_acc=val_acc,
            val_acc_gn=val_gn,
            epoch_train_s=r["seconds"],
            elapsed_train_s=self.elapsed,
        )
        row.update({f"gamma/{k}": v for k, v in mppd.gain_bounds(self.model).items()})
        row.update(neuron_summary(self.model))
        self.history.append(row)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.running = {k: 0 for k in self.running}
        is_best = val_acc > self.best_acc
        self.best_acc = max(self.best_acc, val_acc)
        # last.pt goes last: a kill before it resumes from the previous last.pt, which replays
        # this epoch deterministically and rewrites best.pt and the metrics identically.
        if is_best:
            checkpoint.save(self.out / "best.pt", self.state())
        write_metrics(self.out, self.history, self.mppd_steps)
        self.save_last()
        if not cfg.quiet:
            tqdm.write(
                f"epoch {row['epoch']}: loss {row['train_loss']:.3f} train acc "
                f"{row['train_acc']:.3f} val acc {val_acc:.4f} (GN {val_gn:.4f}) "
                f"MS-MPPD {row['train_mppd']:.4g} [{self.elapsed / 60:.1f} min]"
            )
