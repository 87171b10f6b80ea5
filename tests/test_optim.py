import pytest
import torch

from lightning_app.optim import MuonAdamW, orthogonalize


@pytest.mark.parametrize("shape", [(8, 32), (32, 8)])
def test_orthogonalize_pushes_singular_values_towards_one(shape):
    torch.manual_seed(0)
    g = torch.randn(shape) * 100
    assert torch.linalg.svdvals(g).max() > 2 * torch.linalg.svdvals(g).min()  # far from orthogonal to begin with
    singular = torch.linalg.svdvals(orthogonalize(g).float())
    assert singular.min() > 0.5 and singular.max() < 1.3  # the quintic iteration's band
    assert orthogonalize(g).shape == g.shape


def _problem():
    torch.manual_seed(0)
    matrix = torch.nn.Parameter(torch.randn(16, 16) * 0.1)
    bias = torch.nn.Parameter(torch.zeros(16))
    x = torch.randn(64, 16)
    target = x @ torch.randn(16, 16) * 0.1 + 0.1  # reachable: a linear map and an offset
    return matrix, bias, lambda: torch.nn.functional.mse_loss(x @ matrix + bias, target)


def test_muon_and_adamw_groups_both_reduce_the_loss():
    matrix, bias, loss_fn = _problem()
    optimizer = MuonAdamW([{"params": [matrix], "muon": True}, {"params": [bias]}], lr=0.05)
    first = loss_fn().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    assert loss_fn().item() < 0.3 * first
    assert "momentum_buffer" in optimizer.state[matrix] and "exp_avg" in optimizer.state[bias]


def test_a_tensor_learning_rate_gives_the_same_step_as_a_number():
    results = []
    for lr in (0.01, torch.tensor(0.01)):
        matrix, bias, loss_fn = _problem()
        optimizer = MuonAdamW([{"params": [matrix], "muon": True}, {"params": [bias]}], lr=lr, weight_decay=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            loss_fn().backward()
            optimizer.step()
        results.append((matrix.detach().clone(), bias.detach().clone()))
    torch.testing.assert_close(results[0], results[1])


def test_muon_refuses_vectors():
    with pytest.raises(ValueError, match="matrices only"):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.zeros(3))], "muon": True}])


def test_the_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    mine, reference = torch.nn.Parameter(torch.randn(5, 3)), None
    reference = torch.nn.Parameter(mine.detach().clone())
    ours = MuonAdamW([{"params": [mine]}], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    torch_adamw = torch.optim.AdamW([reference], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    for _ in range(5):
        grad = torch.randn(5, 3)
        for p, opt in ((mine, ours), (reference, torch_adamw)):
            p.grad = grad.clone()
            opt.step()
    torch.testing.assert_close(mine, reference)
