"""The training loop: explicit, readable, resumable, DDP-aware.

Determinism and exact resume: the generic RNGs are re-seeded at the start of every epoch from
``(seed, epoch, rank)`` and the sampler shuffles from ``(seed, epoch)``, so epoch ``k`` draws the same
random numbers whether the run was interrupted before it or not. With ``train.deterministic: true`` a run
stopped after epoch k and resumed from ``last.pt`` ends with weights identical to an uninterrupted run.

Global batches: the training sampler is always a :class:`~torch.utils.data.DistributedSampler` (one replica
when not distributed) and ``train.batch_size`` is the *global* batch. Under DDP with W processes each rank
takes ``batch_size / W`` samples, and the ranks together see exactly the samples of the single-process global
batch, so a W-process run follows the single-process loss trajectory up to float summation order.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from distill3d.engine.allocator import tune_glibc_malloc
from distill3d.engine.checkpoint import best_checkpoint_problem, load_checkpoint, save_checkpoint
from distill3d.engine.config import OptimizerConfig, ScheduleConfig, TrainConfig
from distill3d.engine.distributed import DistInfo, all_reduce_mean, barrier, broadcast_from_main
from distill3d.engine.logging import MetricLogger
from distill3d.engine.task import Task
from distill3d.errors import ConfigError, Distill3dError, NonFiniteLossError, RunInterruptedError
from distill3d.files import atomic_write_text, remove_orphaned_temporaries

CHECKPOINT_FORMAT = "distill3d-checkpoint-v1"


@dataclass
class FitResult:
    run_dir: Path
    epochs_completed: int
    global_step: int
    last_metrics: dict[str, float] = field(default_factory=dict)
    best_value: float | None = None
    best_epoch: int | None = None
    step_losses: list[float] = field(default_factory=list)


def build_optimizer(params: list[dict[str, Any]] | list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The configured optimiser over parameters or parameter groups (dicts with ``params`` and per-group options)."""
    if not params or all(isinstance(g, dict) and not g["params"] for g in params):
        raise Distill3dError("the model has no trainable parameters")
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based).

    Linear warm-up over ``warmup_epochs``, then constant, cosine (to ``min_lr_ratio``) or step decay.
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        return cfg.gamma ** (step // (cfg.step_epochs * steps_per_epoch))
    progress = (step - warmup) / max(1, total_steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def move_to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Recursively move tensors in dicts/lists/tuples to ``device`` (4-D float tensors to channels_last)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device, channels_last) for v in batch)
    return batch


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63 - 1)


class Trainer:
    """Runs a :class:`~distill3d.engine.task.Task` with the settings of a :class:`TrainConfig`.

    Writes into ``run_dir``: ``last.pt`` every epoch, ``best.pt`` when the monitored validation metric
    improves, ``metrics.csv`` and (if given) ``config.yaml``. Only rank 0 writes.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        seed: int = 0,
        dist_info: DistInfo | None = None,
        config_yaml: str | None = None,
        config_dump: dict[str, Any] | None = None,
        progress: bool = True,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.dist = dist_info or DistInfo()
        self.config_yaml = config_yaml
        self.config_dump = config_dump or {}
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self._saved_epoch = 0  # epoch of the last.pt on disk (0: none); only finite weights are ever saved

    # ----------------------------------------------------------------------------------------- set-up
    def _autocast(self) -> Any:
        if self.cfg.precision == "bf16":
            return torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _loader(self, task: Task, dataset: Any, sampler: Any, batch_size: int) -> DataLoader:
        """Training loader (with the distributed sampler, full batches only) or, without sampler, in order."""
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=sampler is not None,
            num_workers=self.cfg.num_workers,
            persistent_workers=False,
            collate_fn=task.collate,
        )

    def _state(self, model: nn.Module, optimizer: Any, scheduler: Any, epoch: int, step: int,
               best: float | None, best_epoch: int | None, metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "global_step": step,
            "monitor": self.cfg.monitor,
            "best_value": best,
            "best_epoch": best_epoch,
            "metrics": dict(metrics),
            "config": self.config_dump,
        }

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, task: Task, resume: bool = False) -> FitResult:
        cfg, dist_info = self.cfg, self.dist
        tune_glibc_malloc()
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if cfg.batch_size % dist_info.world_size:
            raise Distill3dError(
                f"train.batch_size={cfg.batch_size} must be divisible by the number of processes "
                f"({dist_info.world_size})"
            )
        torch.manual_seed(self.seed)
        model = task.build_model()
        if not resume:
            task.warm_start(model)
        model = model.to(dist_info.device)
        task.setup(dist_info.device, dist_info)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        train_set, val_set = task.train_set(), task.val_set()
        if cfg.monitor is not None and val_set is None:
            raise ConfigError(f"config key 'train.monitor': '{cfg.monitor}' needs a validation split, and this task "
                              "has none (set train.monitor: null)")
        if len(train_set) < cfg.batch_size:
            raise Distill3dError(
                f"the training set has {len(train_set)} samples, fewer than train.batch_size={cfg.batch_size}"
            )
        sampler = DistributedSampler(
            train_set, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True,
            seed=self.seed, drop_last=True,
        )
        per_rank_batch = cfg.batch_size // dist_info.world_size
        train_loader = self._loader(task, train_set, sampler, per_rank_batch)
        steps_per_epoch = len(sampler) // per_rank_batch
        total_steps = steps_per_epoch * cfg.epochs
        optimizer = build_optimizer(task.parameter_groups(model), cfg.optimizer)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, steps_per_epoch, cfg.schedule)
        )

        self._probe_monitor(task, model, val_set)
        start_epoch, step, best, best_epoch = 0, 0, None, None
        last_metrics: dict[str, float] = {}
        if resume:
            last_path = self.run_dir / "last.pt"
            state = load_checkpoint(last_path)
            if state.get("format") != CHECKPOINT_FORMAT:
                raise Distill3dError(f"{last_path}: not a distill3d training checkpoint")
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                start_epoch, step = int(state["epoch"]), int(state["global_step"])
                best, best_epoch = state["best_value"], state["best_epoch"]
            except (KeyError, RuntimeError, ValueError, TypeError) as err:
                first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
                raise Distill3dError(f"{last_path}: does not match this run's model or optimizer ({first})") from None
            last_metrics = dict(state.get("metrics", {}))
            self._saved_epoch = start_epoch

        if dist_info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_orphaned_temporaries(self.run_dir)  # left by a run killed while saving
            if resume:
                self._repair_best(state)
            if self.config_yaml is not None and not resume:
                atomic_write_text(self.run_dir / "config.yaml", self.config_yaml)
        logger = MetricLogger(self.run_dir, enabled=dist_info.is_main,
                              keep_until_epoch=start_epoch if resume else None)
        train_model: nn.Module = model
        if dist_info.enabled:
            train_model = DistributedDataParallel(model, device_ids=[dist_info.device.index]
                                                  if dist_info.device.type == "cuda" else None)
        result = FitResult(self.run_dir, start_epoch, step, last_metrics, best, best_epoch)
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                step = self._train_epoch(task, train_model, train_loader, sampler, optimizer, scheduler,
                                         epoch, step, steps_per_epoch, logger, result)
                self._check_finite_weights(model, epoch)
                metrics: dict[str, float] = {}
                if val_set is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                    metrics = self._validate(task, model, val_set, epoch, step, logger)
                if dist_info.is_main:
                    best, best_epoch = self._save(model, optimizer, scheduler, epoch, step, best, best_epoch,
                                                  metrics)
                barrier()
                self._saved_epoch = epoch  # every rank: its messages name the last saved epoch
                result.epochs_completed, result.global_step = epoch, step
                result.last_metrics, result.best_value, result.best_epoch = metrics, best, best_epoch
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch, metrics)
                if cfg.stop_after_epoch is not None and epoch >= cfg.stop_after_epoch:
                    break
        except KeyboardInterrupt:
            raise RunInterruptedError(
                f"interrupted after epoch {self._saved_epoch}; resume with --resume {self.run_dir}"
                if self._saved_epoch else "interrupted during epoch 1; nothing was saved"
            ) from None
        finally:
            logger.close()
        return result

    # ------------------------------------------------------------------------------------- integrity
    def _last_good(self) -> str:
        """Where the last saved (finite) checkpoint is, for error messages; empty when there is none."""
        if not self._saved_epoch:
            return ""
        return f"; last good checkpoint: {self.run_dir / 'last.pt'} (epoch {self._saved_epoch})"

    def _check_finite_weights(self, model: nn.Module, epoch: int) -> None:
        """Refuse to go on (and so to save) when a NaN/inf gradient made any weight non-finite."""
        bad = [name for name, tensor in model.state_dict().items()
               if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
        if bad:
            raise NonFiniteLossError(
                f"non-finite weights after epoch {epoch} (e.g. '{bad[0]}'; a NaN/inf gradient although the loss "
                f"was finite); not saved; try a lower train.optimizer.lr or set train.grad_clip" + self._last_good()
            )

    def _check_monitor(self, metrics: dict[str, float]) -> None:
        """A ``train.monitor`` that names no validation metric would silently never write best.pt."""
        monitor = self.cfg.monitor
        if monitor is not None and metrics and monitor.split("/", 1)[1] not in metrics:
            known = ", ".join(f"val/{k}" for k in sorted(metrics))
            raise ConfigError(f"config key 'train.monitor': '{monitor}' is not a validation metric of this method "
                              f"(it reports {known})")

    def _validate(self, task: Task, model: nn.Module, val_set: Any, epoch: int, step: int,
                  logger: MetricLogger) -> dict[str, float]:
        """Rank 0 evaluates the validation split, logs it and checks the monitor; every rank gets its verdict.

        Under DDP the other ranks wait for rank 0 and receive its decision (``broadcast_from_main``), so a user
        error found there (a monitor naming no metric, a malformed validation file) is raised by every rank
        with the same one-line message, instead of rank 0 failing while the others wait. Returns the metrics on
        rank 0 (empty elsewhere).
        """
        metrics: dict[str, float] = {}
        problem: tuple[str, str] | None = None  # (kind of error, its message), as rank 0 saw it
        error: Exception | None = None
        if self.dist.is_main:
            try:
                metrics = self.evaluate(task, model, val_set)
                logger.log(epoch, step, {f"val/{k}": v for k, v in metrics.items()})
                self._check_monitor(metrics)
            except Exception as err:  # re-raised below, after the other ranks have heard of it
                kind = "config" if isinstance(err, ConfigError) else "user" if isinstance(err, Distill3dError) else ""
                error, problem = err, (kind, str(err) if kind else f"{type(err).__name__}: {err}")
        problem = broadcast_from_main(problem)
        if error is not None:
            raise error
        if problem is not None:
            kind, message = problem
            if kind == "config":
                raise ConfigError(message)
            if kind == "user":
                raise Distill3dError(message)
            raise RuntimeError(f"rank 0 failed while validating epoch {epoch} ({message})")
        return metrics

    def _repair_best(self, state: dict[str, Any]) -> None:
        """On resume: make best.pt hold the best epoch last.pt records (a kill between the two writes)."""
        problem = best_checkpoint_problem(self.run_dir)
        if problem is None:
            return
        message, repairable = problem
        if repairable:
            save_checkpoint(self.run_dir / "best.pt", state)
            warnings.warn(f"{message}; repaired from last.pt", stacklevel=3)
        else:
            warnings.warn(f"{message}; cannot be repaired (those weights are gone): best.pt is refused by eval "
                          f"until a better epoch replaces it", stacklevel=3)

    def _train_epoch(self, task: Task, model: nn.Module, loader: DataLoader, sampler: DistributedSampler,
                     optimizer: Any, scheduler: Any, epoch: int, step: int, steps_per_epoch: int,
                     logger: MetricLogger, result: FitResult) -> int:
        cfg, dist_info = self.cfg, self.dist
        sampler.set_epoch(epoch)
        torch.manual_seed(_epoch_seed(self.seed, epoch, dist_info.rank))
        model.train()
        sums: dict[str, float] = {}
        bar = tqdm(total=steps_per_epoch * cfg.batch_size, desc=f"epoch {epoch}/{cfg.epochs}", unit="sample",
                   unit_scale=True, dynamic_ncols=True, leave=False,
                   disable=not (self.progress and dist_info.is_main))
        started = time.perf_counter()
        for batch_index, batch in enumerate(_limited(loader, steps_per_epoch)):
            batch = move_to_device(batch, dist_info.device, cfg.channels_last)
            with self._autocast():
                outputs = task.training_step(model, batch)
            if "loss" not in outputs:
                raise Distill3dError("the task's training_step must return a dict with a 'loss' entry")
            loss = outputs["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            logged = all_reduce_mean(torch.stack([v.detach().float() for v in outputs.values()]))
            values = dict(zip(outputs.keys(), logged.tolist(), strict=True))
            if not math.isfinite(values["loss"]):
                raise NonFiniteLossError(
                    f"non-finite training loss ({values['loss']}) at epoch {epoch}, step {step + 1}; "
                    f"try a lower train.optimizer.lr or set train.grad_clip" + self._last_good()
                )
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            task.before_optimizer_step(model, optimizer, step)
            optimizer.step()
            scheduler.step()
            step += 1
            result.step_losses.append(values["loss"])
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            if step % cfg.log_every == 0 or batch_index == steps_per_epoch - 1:
                lr = optimizer.param_groups[0]["lr"]
                logger.log(epoch, step, {**{f"train/{k}": v for k, v in values.items()}, "train/lr": lr})
                bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
            bar.update(cfg.batch_size)
        bar.close()
        n = max(1, steps_per_epoch)
        epoch_values = {f"train_epoch/{k}": v / n for k, v in sums.items()}
        epoch_values["train_epoch/samples_per_s"] = steps_per_epoch * cfg.batch_size / (
            time.perf_counter() - started
        )
        logger.log(epoch, step, epoch_values)
        return step

    def _save(self, model: nn.Module, optimizer: Any, scheduler: Any, epoch: int, step: int,
              best: float | None, best_epoch: int | None, metrics: dict[str, float]) -> tuple[float | None, int | None]:
        monitor = self.cfg.monitor
        improved = False
        if monitor is not None and monitor.split("/", 1)[1] in metrics:
            value = metrics[monitor.split("/", 1)[1]]
            better = best is None or (value > best if self.cfg.monitor_mode == "max" else value < best)
            if better and math.isfinite(value):
                best, best_epoch, improved = value, epoch, True
        state = self._state(model, optimizer, scheduler, epoch, step, best, best_epoch, metrics)
        # last.pt first: a kill between the two writes leaves a best.pt that resume repairs from last.pt
        save_checkpoint(self.run_dir / "last.pt", state)
        self._saved_epoch = epoch
        if improved or (monitor is None and epoch == self.cfg.epochs):
            save_checkpoint(self.run_dir / "best.pt", state)
        return best, best_epoch

    def evaluate(self, task: Task, model: nn.Module, dataset: Any, max_batches: int | None = None) -> dict[str, float]:
        """Run ``task.evaluate`` on ``dataset`` (its first ``max_batches`` batches when given) with the model in
        eval mode, no gradients."""
        task.setup(self.dist.device, self.dist)
        loader = self._loader(task, dataset, None, self.cfg.batch_size)
        batches = loader if max_batches is None else _limited(loader, max_batches)
        was_training = model.training
        model.eval()
        device, channels_last = self.dist.device, self.cfg.channels_last
        try:
            with torch.no_grad(), self._autocast():
                metrics = task.evaluate(model, (move_to_device(b, device, channels_last) for b in batches))
        finally:
            model.train(was_training)
        return {k: float(v) for k, v in metrics.items()}

    def _probe_monitor(self, task: Task, model: nn.Module, val_set: Any) -> None:
        """Before any training: evaluate one validation batch (every rank) so that a ``train.monitor`` naming
        no metric of the task fails now, not after the first epoch."""
        if self.cfg.monitor is None or val_set is None:
            return
        try:
            metrics = self.evaluate(task, model, val_set, max_batches=1)
        except Exception:  # a task may need more than one batch: the check after epoch 1 then decides
            return
        self._check_monitor(metrics)


def _limited(loader: DataLoader, n: int) -> Iterator[Any]:
    for i, batch in enumerate(loader):
        if i >= n:
            break
        yield batch
