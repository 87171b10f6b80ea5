import pytest
import torch
import torch.nn.functional as F

from lightning_app.model import ModelConfig, TinyDecoderLM
from lightning_app.optim import MuonAdamW
from lightning_app.step_graph import Step, StepGraph

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)")


def test_an_optimizer_that_reads_back_to_the_host_is_refused():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="updates on the GPU alone"):
        StepGraph(lambda x, y: (x,), torch.optim.AdamW(model.parameters()))
    StepGraph(lambda x, y: (x,), MuonAdamW([{"params": model.parameters()}]))  # capturable: accepted


def _step(model: TinyDecoderLM, optimizer: torch.optim.Optimizer, clip: float | None = None) -> Step:
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
        optimizer.step()
        return (loss,)

    return step


def _train(steps: int, captured: bool) -> tuple[TinyDecoderLM, torch.optim.Optimizer, list[float]]:
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig(64, dim=32, depth=2, heads=2, context_len=16)).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))  # a new rate every step
    step = _step(model, optimizer, clip=0.5)
    graph = StepGraph(step, optimizer, warmup=2)
    data = torch.randint(0, 64, (steps, 4, 17), generator=torch.Generator().manual_seed(1)).cuda()
    losses = []
    for batch in data:
        x, y = batch[:, :-1], batch[:, 1:]
        if captured:
            (loss,) = graph(x, y)
        else:
            optimizer.zero_grad()
            (loss,) = step(x, y)
        losses.append(loss.item())
        schedule.step()
    return model, optimizer, losses


@cuda
def test_replays_train_like_eager_steps():
    eager, _, eager_losses = _train(8, captured=False)
    replayed, _, replayed_losses = _train(8, captured=True)
    assert replayed_losses == pytest.approx(eager_losses, rel=1e-4)
    for a, b in zip(eager.parameters(), replayed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@cuda
def test_param_groups_keep_plain_learning_rates():
    _, optimizer, _ = _train(4, captured=True)  # warm-up 2, capture, one more replay
    assert [(type(group["lr"]), group["capturable"]) for group in optimizer.param_groups] == [(float, False)]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 5)  # the schedule still sets it


@cuda
def test_a_batch_of_another_shape_is_refused():
    model = TinyDecoderLM(ModelConfig(64, dim=32, depth=1, heads=2, context_len=16)).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    graph = StepGraph(_step(model, optimizer), optimizer, warmup=0)
    x = torch.zeros(4, 16, dtype=torch.long, device="cuda")
    graph(x, x)
    with pytest.raises(ValueError, match="shape"):
        graph(x[:2], x[:2])


@cuda
def test_each_replay_draws_new_dropout_masks():
    model = TinyDecoderLM(ModelConfig(64, dim=32, depth=1, heads=2, context_len=16, dropout=0.5)).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0, fused=True)  # the weights stay as they are
    graph = StepGraph(_step(model, optimizer), optimizer, warmup=1)
    x = torch.randint(0, 64, (4, 16), device="cuda")
    losses = {graph(x, x)[0].item() for _ in range(4)}  # one eager step, the capture, then replays
    assert len(losses) == 4
