import logging
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import GradientAccumulationScheduler
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy

from lightning_app import language_model
from lightning_app.cli import main
from lightning_app.language_model import LanguageModel
from lightning_app.optim import MuonAdamW
from lightning_app.tokenizer import ByteTokenizer

TINY = [
    "--model.dim=32", "--model.depth=2", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.max_steps=12", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false", "--sample.length=0", "--model.warmup_steps=4", "--model.lr=3e-3",
]  # fmt: skip


def test_cuda_graph_with_a_graph_recording_compile_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="model.compile_mode"):
        LanguageModel(compile=True, compile_mode="reduce-overhead", cuda_graph=True)


def test_on_a_cpu_cuda_graph_and_compile_auto_say_why_and_train_as_usual(text_dir: Path, caplog):
    with caplog.at_level(logging.INFO):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=cpu", "--model.cuda_graph=true", "--model.compile=auto"])
    assert "model.cuda_graph is not used: it needs a CUDA GPU" in caplog.text
    assert "model.compile auto: not compiling (it pays back on a GPU, and this run trains on cpu)" in caplog.text  # at train start
    assert Path("checkpoints/model.ckpt").is_file()


@pytest.mark.parametrize(
    "device, total, step, compiled, said",
    [
        ("cuda", 8000, 0, True, "compiling (8,000 steps to go)"),
        ("cuda", 0, 0, True, "compiling (no step limit)"),
        ("cuda", 2500, 0, False, "not compiling (2,500 steps to go; it pays back from 3,000)"),
        ("cuda", 8000, 6000, False, "not compiling (2,000 steps to go"),  # a resumed run
        ("cpu", 8000, 0, False, "not compiling (it pays back on a GPU, and this run trains on cpu)"),
        ("fsdp", 8000, 0, False, "not compiling (FSDP has wrapped the blocks"),
    ],
)
def test_compile_auto_compiles_a_gpu_run_long_enough_to_pay_back(device, total, step, compiled, said, caplog):
    module = LanguageModel(compile="auto")
    module._build(ByteTokenizer())
    module.schedule = SimpleNamespace(total=total)
    module._trainer = SimpleNamespace(global_step=step, strategy=FSDPStrategy() if device == "fsdp" else SingleDeviceStrategy())
    module._device = torch.device("cpu") if device == "cpu" else torch.device("cuda", 0)  # only the attribute: compiling is lazy
    with caplog.at_level(logging.INFO):
        module._compile_if_worth_it()
    assert module.compiled is compiled
    assert all((block._compiled_call_impl is not None) is compiled for block in module.model.blocks)
    assert f"model.compile auto: {said}" in caplog.text


@pytest.mark.parametrize(
    "compile, cuda, started",
    [(True, False, True), ("auto", True, True), ("auto", False, False), (False, True, False)],
)
def test_compile_workers_start_when_the_model_is_made_if_it_may_compile(compile, cuda, started, monkeypatch):
    calls = []
    monkeypatch.setattr(language_model, "start_compile_workers", lambda: calls.append(1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    LanguageModel(compile=compile)
    assert bool(calls) is started


def _compile_workers_running() -> bool:
    """Whether a child of this process is Inductor's compile-worker pool (read from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after the name: state, ppid, ...
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if ppid == os.getpid() and b"compile_worker" in command:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_compile_workers_run_after_starting_them_where_triton_compiles():
    from torch._inductor import config
    from torch.utils._triton import has_triton_package

    # Triton (in CUDA builds) compiles in a pool of worker processes, unless PyTorch's settings say otherwise.
    pool = (config.compile_threads or 1) > 1 and config.worker_start_method == "subprocess"
    settings = pool and os.environ.get("TORCH_WARM_POOL", "1") == "1"
    language_model.start_compile_workers()
    assert _compile_workers_running() is (has_triton_package() and settings)


def test_a_failure_to_start_compile_workers_early_is_not_an_error(monkeypatch):
    from torch._inductor import async_compile

    def fail() -> None:
        raise OSError("no more processes")

    monkeypatch.setattr(async_compile, "maybe_warm_pool", fail)
    language_model.start_compile_workers()  # the workers would start at the first compiled call instead


def _capturable_trainer(**changes: object) -> SimpleNamespace:
    fused = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], fused=True)
    trainer = {"strategy": SingleDeviceStrategy(), "callbacks": [], "accumulate_grad_batches": 1, "optimizers": [fused], "precision": "bf16-mixed"}
    return SimpleNamespace(**trainer | changes)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({}, None),
        ({"strategy": DDPStrategy()}, "this run trains with DDPStrategy"),
        ({"accumulate_grad_batches": 2}, "gradient accumulation"),
        ({"callbacks": [GradientAccumulationScheduler({0: 2})]}, "gradient accumulation"),
        ({"optimizers": [torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])]}, "fused AdamW"),
        ({"optimizers": [MuonAdamW([{"params": [torch.nn.Parameter(torch.zeros(1))]}])]}, None),
        ({"precision": "16-mixed"}, "fp16 loss scaling"),
    ],
)
def test_cuda_graph_applies_to_one_gpu_with_a_fused_optimizer(changes, reason):
    module = LanguageModel(cuda_graph=True)
    module._trainer = _capturable_trainer(**changes)
    module._device = torch.device("cuda", 0)  # only the attribute: nothing runs on a GPU here
    why = module._why_not_capturable()
    assert why == reason if reason is None else reason in why


class EagerStepGraph:
    """StepGraph without the graph: the step function run as it is, so the Lightning side is tested on a CPU."""

    def __init__(self, step, optimizer):
        self.step, self.optimizer = step, optimizer

    def __call__(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        return self.step(x, y)


def test_the_recorded_step_trains_exactly_like_lightnings_loop(text_dir: Path, monkeypatch, recwarn):
    """Lightning must neither step nor clip a second time, and the schedule still applies."""
    monkeypatch.setattr(language_model, "StepGraph", EagerStepGraph)
    monkeypatch.setattr(LanguageModel, "_why_not_capturable", lambda self: None)
    checkpoints = {}
    for cuda_graph in (False, True):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=cpu", "--trainer.val_check_interval=5",
              "--trainer.gradient_clip_val=0.05", f"--model.cuda_graph={cuda_graph}", f"--checkpoint.dirpath=ckpt{cuda_graph}"])  # fmt: skip
        checkpoints[cuda_graph] = torch.load(f"ckpt{cuda_graph}/last.ckpt", weights_only=True)
    plain, recorded = checkpoints[False], checkpoints[True]
    assert not [w for w in recwarn if "returned `None`" in str(w.message)]  # returned on purpose: Lightning's warning is not shown
    assert not [f for f in warnings.filters if f[1] is not None and "returned" in f[1].pattern]  # and only during the run
    assert recorded["global_step"] == plain["global_step"] == 12
    assert recorded["lr_schedulers"][0]["_last_lr"] == plain["lr_schedulers"][0]["_last_lr"]
    for name, tensor in plain["state_dict"].items():
        # Equal up to rounding: Lightning's clipping and the step's sum the norms in another order.
        torch.testing.assert_close(recorded["state_dict"][name], tensor, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")
@pytest.mark.parametrize("flags, tolerance", [([], 1e-4), (["--trainer.precision=bf16-mixed", "--model.compile=true"], 2e-2)])
def test_a_recorded_step_trains_like_lightnings_loop(text_dir: Path, flags: list[str], tolerance: float):
    weights = {}
    for cuda_graph in (False, True):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=gpu", "--trainer.devices=1", *flags,
              "--trainer.val_check_interval=5", f"--model.cuda_graph={cuda_graph}", f"--checkpoint.dirpath=ckpt{cuda_graph}"])  # fmt: skip
        weights[cuda_graph] = torch.load(f"ckpt{cuda_graph}/last.ckpt", weights_only=True)["state_dict"]
    for name, tensor in weights[False].items():
        torch.testing.assert_close(weights[True][name], tensor, rtol=10 * tolerance, atol=tolerance, msg=name)


class GradientProbe(Callback):
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        pass


def test_callback_hooks_that_a_recorded_step_bypasses_are_named(text_dir: Path, monkeypatch):
    monkeypatch.setattr(language_model, "StepGraph", EagerStepGraph)
    monkeypatch.setattr(LanguageModel, "_why_not_capturable", lambda self: None)
    with pytest.warns(UserWarning, match=r"GradientProbe.on_before_optimizer_step will not run"):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=cpu", "--model.cuda_graph=true",
              "--trainer.callbacks+=tests.test_language_model.GradientProbe"])  # fmt: skip
