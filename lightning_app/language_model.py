"""LanguageModel: the training logic around ``TinyDecoderLM`` (loss, BPC metrics, optimizer, learning-rate schedule).

The network itself is built in ``setup``, once the datamodule knows the vocabulary, or from the
tokenizer stored in a checkpoint, so ``LanguageModel.load_from_checkpoint(path)`` needs no arguments.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.callbacks import GradientAccumulationScheduler, LearningRateMonitor
from lightning.pytorch.strategies import FSDPStrategy, SingleDeviceStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden
from torchmetrics import MeanMetric

from .checkpoint_format import CHECKPOINT_FORMAT, check_format, load_checkpoint
from .errors import UsageError
from .host_values import on_host
from .metrics import BitsPerCharacter
from .model import ModelConfig, TinyDecoderLM
from .optim import MuonAdamW
from .schedule import LearningRateSchedule
from .step_graph import StepGraph, capturable
from .tokenizer import Tokenizer, tokenizer_from_dict
from .training_guards import LogThroughoutTheRun, StopOnNonFiniteLoss, ValidateAtLastStep, is_logging_step

# model.compile auto compiles a run planned for at least this many steps: on an H200 compiling the GPU
# recipe's blocks added 11 to 13 s of start-up and saved about 5 ms per step (bench/RESULTS.md), so it
# pays back after ~3,000.
AUTO_COMPILE_STEPS = 3000

log = logging.getLogger(__name__)


def start_compile_workers() -> None:
    """Start torch.compile's kernel-compiling worker processes now, in the background.

    PyTorch starts them at the first compiled call and, until they are up (their first process
    imports torch, about 4 s on an H200 machine), compiles kernels one at a time in the training
    process. Started while the data is prepared, they are ready when the first step compiles (bench/RESULTS.md).
    A run that then does not compile leaves them idle until it ends, at no measured cost in time.
    Without Triton (a PyTorch built for CPUs) PyTorch uses no workers, and this does nothing.
    """
    try:
        from torch._inductor.async_compile import maybe_warm_pool

        maybe_warm_pool()
    except Exception as err:  # a speed-up only: without it the workers start at the first compiled call, as before
        log.debug("Could not start torch.compile's workers early: %s", err)


class LanguageModel(LightningModule):
    def __init__(
        self,
        dim: PositiveInt = 256,
        depth: PositiveInt = 6,
        heads: PositiveInt = 8,
        dropout: float = 0.0,
        context_len: PositiveInt = 256,
        pos_encoding: Literal["sinusoidal", "rotary"] = "sinusoidal",
        tie_embeddings: bool = False,
        qk_norm: bool = False,
        zero_init: bool = False,
        logit_softcap: NonNegativeFloat = 0.0,
        optimizer: Literal["adamw", "muon"] = "adamw",
        lr: PositiveFloat = 3e-4,
        weight_decay: NonNegativeFloat = 0.01,
        beta2: OpenUnitInterval = 0.999,
        warmup_steps: NonNegativeInt = 0,
        schedule: Literal["cosine", "wsd"] = "cosine",
        decay_fraction: OpenUnitInterval = 0.3,
        min_lr: NonNegativeFloat = 0.0,
        compile: bool | Literal["auto"] = False,
        compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default",
        cuda_graph: bool = False,
    ) -> None:
        """Decoder-only Transformer language model and its optimisation.

        Args:
            dim: Embedding/hidden dimension (even, divisible by heads).
            depth: Number of decoder blocks.
            heads: Attention heads per block.
            dropout: Dropout applied in attention and feed-forward blocks.
            context_len: Maximum sequence length (set from data.context_len).
            pos_encoding: Positions: sinusoidal (added to the embeddings) or rotary (applied to queries and keys in attention).
            tie_embeddings: Share the token embedding matrix with the output head.
            qk_norm: RMS-normalise queries and keys per head before attention.
            zero_init: Start the blocks' output projections and the head at zero (each block starts as the identity).
            logit_softcap: Bound the logits smoothly to (-cap, cap) with cap * tanh(logits / cap); 0 turns it off.
            optimizer: adamw, or muon (Muon for the blocks' matrices, AdamW for embeddings, head and gains, one learning rate).
            lr: Peak learning rate.
            weight_decay: Decoupled weight decay (matrices and embeddings only, not norms).
            beta2: AdamW second-moment decay (0.99 suits small batches).
            warmup_steps: Linear learning-rate warmup steps.
            schedule: After warmup: cosine decay to min_lr, or wsd (stable at lr, then a linear decay to min_lr over the last decay_fraction of the steps after the warmup).
            decay_fraction: Share of the steps after the warmup that the wsd schedule spends decaying.
            min_lr: Learning rate that the decay ends at.
            compile: Compile the network's blocks with torch.compile (a faster step for a few seconds of start-up);
                auto: only when the run is planned to last at least 3,000 steps, where that pays back on a GPU.
            compile_mode: torch.compile mode; reduce-overhead replays the network as CUDA graphs (cuda_graph goes further).
            cuda_graph: On one GPU, record the whole training step as one CUDA graph and replay it (for small, launch-bound models).
        """
        super().__init__()
        self.save_hyperparameters()
        # The network's settings, checked now (before any data work); the vocabulary comes from the data.
        sizes = {field.name for field in dataclasses.fields(ModelConfig)} - {"vocab_size"}
        self.config = ModelConfig(**{name: self.hparams[name] for name in sizes})
        if not 0 < decay_fraction < 1:
            raise ValueError(f"model.decay_fraction must be between 0 and 1 (exclusive), got {decay_fraction}.")
        if lr <= 0 or not 0 <= min_lr <= lr:
            raise ValueError(f"model.lr must be positive and model.min_lr in [0, lr], got lr={lr}, min_lr={min_lr}.")
        if cuda_graph and compile and compile_mode in ("reduce-overhead", "max-autotune"):
            raise ValueError(
                f"model.cuda_graph records the whole step itself; set model.compile_mode to default or "
                f"max-autotune-no-cudagraphs (not {compile_mode}, which records the network a second time)."
            )
        if compile is True or (compile == "auto" and torch.cuda.is_available()):
            start_compile_workers()
        self.model: TinyDecoderLM | None = None
        self.parameter_count = 0  # the network's, set when it is built
        self.compiled = False
        self.tokenizer: Tokenizer | None = None
        self.register_buffer("nonfinite", torch.zeros((), dtype=torch.bool), persistent=False)
        self.step_graph: StepGraph | None = None  # set in on_train_start where model.cuda_graph applies

    def _build(self, tokenizer: Tokenizer) -> None:
        hp = self.hparams
        self.tokenizer = tokenizer
        self.model = TinyDecoderLM(dataclasses.replace(self.config, vocab_size=tokenizer.vocab_size))
        self.parameter_count = sum(p.numel() for p in self.model.parameters())  # before any strategy shards them
        if hp.compile is True:
            self._compile()
        chars = torch.from_numpy(tokenizer.chars_per_token())
        self.train_bpc = BitsPerCharacter(chars)
        self.val_bpc = BitsPerCharacter(chars)
        self.val_loss = MeanMetric()  # nats per token

    def _compile(self) -> None:
        # Block by block, in place (parameter names and checkpoints stay as they are): the blocks share one
        # compiled graph, so compiling takes as long for 24 blocks as for one. It happens at the first call.
        for block in self.model.blocks:
            block.compile(mode=self.hparams.compile_mode)
        self.compiled = True

    def setup(self, stage: str) -> None:
        if self.model is None:
            datamodule = self.trainer.datamodule
            if datamodule is None:
                raise RuntimeError("LanguageModel learns its vocabulary from the datamodule; pass one to the Trainer.")
            self._build(datamodule.tokenizer)
            c = self.model.config
            rank_zero_info(
                f"Model: {self.parameter_count:,} parameters ({c.depth} blocks of "
                f"{c.dim} channels, {c.heads} heads, {c.pos_encoding} positions, vocabulary of {c.vocab_size})."
            )

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def _nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-token negative log-likelihood (B*T,) of targets y given inputs x (B, T)."""
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nll = self._nll(x, y)
        loss = nll.mean()
        self.nonfinite |= ~torch.isfinite(loss.detach())  # read by training_guards.StopOnNonFiniteLoss
        return nll, loss

    def _whole_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step that model.cuda_graph records: what Lightning's optimization loop does, in one function."""
        nll, loss = self._loss(x, y)
        with torch.autocast(self.device.type, enabled=False):  # as in Lightning's loop, only the forward is autocast
            loss.backward()
            self._clip(self.trainer.gradient_clip_val, self.trainer.gradient_clip_algorithm)
            self.trainer.optimizers[0].step()
        return nll, loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        x, y = batch  # (B, T), (B, T)
        recorded = self.step_graph is not None
        # A recorded step is the whole update in one graph launch: forward, backward, clipping and the optimizer.
        nll, loss = self.step_graph(x, y) if recorded else self._loss(x, y)
        # Logging costs about a millisecond of Python per step, more than a small model's GPU work, and the
        # logger only writes on Lightning's logging steps (every log_every_n_steps; never when it is 0): log those only.
        if is_logging_step(self.trainer, self.global_step + 1):  # the step being taken
            values = {"train_loss": loss, "train_bpc": self.train_bpc(nll, y.flatten())}  # this batch's, this rank's
            self.train_bpc.reset()
            self.log_dict(on_host(values), prog_bar=True)
        # None tells Lightning's loop that this batch needs no backward of its own (see optimizer_step).
        return None if recorded else loss

    def on_train_start(self) -> None:
        # Known only now: asking Lightning for the step count in configure_optimizers would build the
        # train dataloader before a resumed run restores its position in the epoch.
        total = self.trainer.estimated_stepping_batches  # inf for a run with no step or epoch limit
        self.schedule.total = int(total) if math.isfinite(total) else 0
        # A resumed run's optimizer holds the rate for the run length it was saved with; this run's may differ.
        scheduler = self.lr_schedulers()
        for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * self.schedule(scheduler.last_epoch)
        if self.hparams.compile == "auto" and not self.compiled:
            self._compile_if_worth_it()
        self.step_graph = None
        if self.hparams.cuda_graph:
            # After a resume has restored the optimizer: the graph records its state tensors' addresses.
            reason = self._why_not_capturable()
            if reason:
                rank_zero_info(f"model.cuda_graph is not used: {reason}; training runs as usual.")
            else:
                self.step_graph = StepGraph(self._whole_step, self.trainer.optimizers[0])
                self._warn_about_recorded_hooks()
                # Lightning warns about a training_step that returns None, which the recorded step does on purpose
                # (the filters are restored when training ends).
                self._warning_filters = list(warnings.filters)
                warnings.filterwarnings("ignore", message="`training_step` returned `None`")

    def _compile_if_worth_it(self) -> None:
        """model.compile auto: compile on a GPU when the steps left are enough to pay the compiling back."""
        left = self.schedule.total - self.global_step  # a resumed run has fewer steps left
        if self.device.type != "cuda":
            decision = f"not compiling (it pays back on a GPU, and this run trains on {self.device.type})"
        elif isinstance(self.trainer.strategy, FSDPStrategy):
            decision = "not compiling (FSDP has wrapped the blocks by the time the run's length is known; set model.compile true)"
        elif self.schedule.total and left < AUTO_COMPILE_STEPS:
            decision = f"not compiling ({left:,} steps to go; it pays back from {AUTO_COMPILE_STEPS:,})"
        else:
            self._compile()
            decision = f"compiling ({f'{left:,} steps to go' if self.schedule.total else 'no step limit'})"
        rank_zero_info(f"model.compile auto: {decision}.")

    def on_train_end(self) -> None:
        if self.step_graph is not None:
            warnings.filters[:] = self._warning_filters
        self.step_graph = None  # frees the graph's memory (after the callbacks: the sample after training has run)

    def _warn_about_recorded_hooks(self) -> None:
        """One line naming the callback hooks that a recorded step takes out of Lightning's hands."""
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        names = sorted({f"{type(c).__name__}.{hook}" for c in self.trainer.callbacks for hook in hooks if is_overridden(hook, c, Callback)})
        if names:
            rank_zero_warn(
                f"model.cuda_graph records backward and optimizer step in one graph, so {', '.join(names)} will not "
                "run; set model.cuda_graph false to run them as usual."
            )

    def _why_not_capturable(self) -> str | None:
        trainer = self.trainer
        if self.device.type != "cuda":
            return f"it needs a CUDA GPU, and this run trains on {self.device.type}"
        if not isinstance(trainer.strategy, SingleDeviceStrategy):
            return f"it records one GPU's step, and this run trains with {type(trainer.strategy).__name__}"
        accumulating = any(isinstance(callback, GradientAccumulationScheduler) for callback in trainer.callbacks)
        if trainer.accumulate_grad_batches > 1 or accumulating:
            return "it records a whole optimizer step, which gradient accumulation spreads over several batches"
        if trainer.precision == "16-mixed":
            return "fp16 loss scaling checks every step's gradients on the host (use bf16-mixed)"
        if not capturable(trainer.optimizers[0]):
            return "it needs an optimizer that updates on the GPU alone (the fused AdamW, or model.optimizer muon)"
        return None

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        if self.step_graph is None:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
            return
        # The one place where a recorded step leaves Lightning's loop: the closure runs training_step (which
        # replays the graph) and, as the step returned None, no backward; the update is already done, so the
        # optimizer is not stepped again. Lightning still counts the step and steps the learning-rate schedule.
        # Hooks around backward and the optimizer step do not run (named in a warning when training starts).
        # Between replays the gradients may be set to None: the graph keeps its own memory for them.
        optimizer_closure()

    @torch.compiler.set_stance("force_eager")
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Eager even when the model is compiled: compiling a second (no-grad) graph, and again for a
        # shorter last batch, costs more start-up time than it saves over a few validation passes.
        x, y = batch
        nll = self._nll(x, y)
        self.val_bpc.update(nll, y.flatten())
        self.val_loss.update(nll)

    def on_validation_epoch_end(self) -> None:
        # Logged once per validation from the metrics, which sum over batches and ranks: a self.log in
        # every validation step costs about a millisecond of Python each.
        self.log_dict({"val_loss": self.val_loss.compute(), "val_bpc": self.val_bpc.compute()})
        self.val_loss.reset()
        self.val_bpc.reset()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end()

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        # Muon takes the blocks' matrices; the embedding and head (2-D too) and the norm gains stay on AdamW.
        muon = [p for name, p in named if hp.optimizer == "muon" and name.startswith("blocks.") and p.dim() == 2]
        taken = {id(p) for p in muon}
        # Decay matrices and embeddings; leave norm gains (1-D) alone.
        groups = [
            {"params": [p for _, p in named if p.dim() >= 2 and id(p) not in taken], "weight_decay": hp.weight_decay},
            {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0},
        ]
        betas = (0.9, hp.beta2)
        if muon:
            optimizer = MuonAdamW([{"params": muon, "weight_decay": hp.weight_decay, "muon": True}, *groups], lr=hp.lr, betas=betas)
        else:
            # Fused AdamW (one kernel) on GPUs, except under fp16 loss scaling, where gradients must be unscaled first.
            fused = self.device.type == "cuda" and self.trainer.precision != "16-mixed"
            optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=betas, fused=fused)
        self.schedule = LearningRateSchedule(hp.schedule, hp.warmup_steps, hp.min_lr / hp.lr, hp.decay_fraction)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"}}

    def configure_callbacks(self) -> list[Callback]:
        # The learning rate is logged (as lr/pg1, lr/pg2, ...) by Lightning's monitor, which needs a logger.
        monitor = [LearningRateMonitor(logging_interval="step")] if self.trainer.loggers else []
        return [StopOnNonFiniteLoss(), ValidateAtLastStep(), LogThroughoutTheRun(), *monitor]

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> LanguageModel:
        """Load a trained model for inference, with one clear error for a missing, damaged or foreign file.

        Loads with ``weights_only=True``: a checkpoint holds tensors and plain data, never code.
        """
        path = Path(path)
        checkpoint = load_checkpoint(path, "The checkpoint", map_location)
        hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
        unknown = sorted(set(hparams) - set(inspect.signature(cls.__init__).parameters))
        if unknown:
            raise UsageError(f"{path} has model settings this version of ctt does not know ({', '.join(unknown)}); use the version that wrote it.")
        model = cls(**hparams | {"compile": False})  # inference runs eagerly (and generate captures CUDA graphs)
        model._restore_tokenizer(checkpoint)
        model.load_state_dict(checkpoint["state_dict"])
        return model.to(map_location).eval()

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: str | torch.device | None = None, **kwargs: Any) -> LanguageModel:  # type: ignore[override]
        """Lightning's name for ``from_checkpoint`` (one loader): the model on ``map_location``, the CPU by default."""
        if kwargs:
            raise UsageError(
                f"LanguageModel.load_from_checkpoint takes a path and a map_location only (the settings come from the "
                f"checkpoint); drop {', '.join(kwargs)}."
            )
        return cls.from_checkpoint(checkpoint_path, map_location or "cpu")

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        if not gradient_clip_val:
            return
        if isinstance(self.trainer.strategy, FSDPStrategy) and gradient_clip_algorithm != "value":
            # Lightning's precision plugin cannot norm-clip sharded gradients; FSDP's own method can.
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
        elif optimizer.defaults.get("fused"):
            # Lightning refuses to clip for an optimizer that unscales internally (fused AdamW), even under
            # bf16, which has no loss scale; the gradients here are the true ones (see configure_optimizers).
            self._clip(gradient_clip_val, gradient_clip_algorithm)
        else:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _clip(self, clip_val: float | None, algorithm: str | None) -> None:
        """Clip the gradients on the device (no wait for the GPU, so it can be recorded in a CUDA graph)."""
        if not clip_val:
            return
        if algorithm == "value":
            torch.nn.utils.clip_grad_value_(self.parameters(), clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(self.parameters(), clip_val, foreach=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tokenizer"] = self.tokenizer.to_dict()
        checkpoint["ctt_format"] = CHECKPOINT_FORMAT

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_format(checkpoint)
        self._restore_tokenizer(checkpoint)

    def _restore_tokenizer(self, checkpoint: dict[str, Any]) -> None:
        """Build the network for the checkpoint's tokenizer, or check that it matches the one this run made."""
        tokenizer = tokenizer_from_dict(checkpoint["tokenizer"])
        if self.model is None:
            self._build(tokenizer)
        elif tokenizer.to_dict() != self.tokenizer.to_dict():
            raise UsageError(
                "The checkpoint's tokenizer differs from the one made from this command's data; "
                "use the data.data_dir and data.vocab it was trained with."
            )
