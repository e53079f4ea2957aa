"""The four SSL losses of train_ref.py against hand-computed values, plus the multi-crop combination."""
import math

import pytest
import torch

import train_ref as tr


def test_nt_xent_identical_orthonormal_pairs():
    # z_a == z_b == e_i: the positive has similarity 1, the 2n-2 negatives similarity 0
    n, t = 4, 0.5
    z = torch.eye(n)
    loss, _ = tr.nt_xent_loss(z, z.clone(), temperature=t)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_all_orthogonal_is_uniform():
    # every pair orthogonal: all 2n-1 candidates score equally -> loss = log(2n-1)
    n = 3
    z = torch.eye(2 * n)
    loss, _ = tr.nt_xent_loss(z[:n], z[n:], temperature=0.1)
    assert loss.item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_nt_xent_scale_invariant_and_lower_when_aligned():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    aligned, _ = tr.nt_xent_loss(a, 3 * a)
    random_pair, _ = tr.nt_xent_loss(a, torch.randn(8, 16))
    same_scale, _ = tr.nt_xent_loss(a, a)
    assert aligned.item() == pytest.approx(same_scale.item(), rel=1e-5)
    assert aligned.item() < random_pair.item()


def test_vicreg_collapsed_embeddings_pay_the_variance_hinge():
    z = torch.zeros(4, 3)
    loss, parts = tr.vicreg_loss(z, z.clone())
    # std = sqrt(0 + 1e-4) = 0.01 per dim -> hinge 0.99 per view, averaged over the two views
    assert parts["invariance"].item() == 0
    assert parts["variance"].item() == pytest.approx(0.99, rel=1e-6)
    assert parts["covariance"].item() == 0
    assert loss.item() == pytest.approx(25 * 0.99, rel=1e-6)


def test_vicreg_spread_decorrelated_is_zero_and_correlated_pays_covariance():
    spread = torch.tensor([[2.0, 0], [-2, 0], [0, 2], [0, -2]])  # var 8/3 per dim, covariance 0
    loss, _ = tr.vicreg_loss(spread, spread.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    corr = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # n=2: var 2 per dim, cov 2 -> per view 2*(2^2)/2 = 4
    loss, parts = tr.vicreg_loss(corr, corr.clone())
    assert parts["covariance"].item() == pytest.approx(8.0, rel=1e-6)
    assert loss.item() == pytest.approx(8.0, rel=1e-6)
    shifted, parts = tr.vicreg_loss(spread, spread + 1)  # invariance = mean squared difference = 1
    assert parts["invariance"].item() == pytest.approx(1.0)
    assert shifted.item() == pytest.approx(25.0, rel=1e-6)


def test_barlow_identity_correlation_is_zero():
    z = torch.tensor([[1.0, 1], [1, -1], [-1, 1], [-1, -1]])  # standardised, decorrelated columns
    loss, _ = tr.barlow_loss(z, z.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_barlow_known_cross_correlation():
    za = torch.tensor([[1.0, 1], [1, -1], [-1, 1], [-1, -1]])
    zb = torch.tensor([[1.0, 1], [-1, -1], [1, -1], [-1, 1]])
    # C = za^T zb / 4 = [[0, 0], [1, 0]] -> on-diagonal (1-0)^2 * 2 = 2, off-diagonal 1
    lambd = 0.0051
    loss, parts = tr.barlow_loss(za, zb, lambd=lambd)
    assert parts["on_diag"].item() == pytest.approx(2.0, rel=1e-4)
    assert parts["off_diag"].item() == pytest.approx(1.0, rel=1e-4)
    assert loss.item() == pytest.approx(2.0 + lambd, rel=1e-4)


def test_barlow_ignores_scale_and_shift():
    torch.manual_seed(1)
    a, b = torch.randn(32, 8), torch.randn(32, 8)
    l1, _ = tr.barlow_loss(a, b)
    l2, _ = tr.barlow_loss(5 * a + 2, 0.5 * b - 1)
    assert l1.item() == pytest.approx(l2.item(), rel=1e-4)


def test_byol_identical_orthogonal_opposite():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert tr.byol_loss(p, 3 * p)[0].item() == pytest.approx(0.0, abs=1e-7)
    assert tr.byol_loss(p, p.flip(1))[0].item() == pytest.approx(2.0)
    assert tr.byol_loss(p, -p)[0].item() == pytest.approx(4.0)


def test_byol_target_gets_no_gradient():
    p = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    tr.byol_loss(p, t)[0].backward()
    assert p.grad is not None and t.grad is None


def test_multicrop_alpha_weights_global_and_local_pairs():
    calls = []

    def pair(i, j):
        calls.append((i, j))
        value = torch.tensor(1.0 if j < 2 and i < 2 else 3.0)
        return value, {"x": value}

    loss, parts = tr.multicrop_loss(pair, n_views=4, n_global=2, alpha=0.25)
    # pairs: (0,1) global-global; (2,0),(2,1),(3,0),(3,1) local-global
    assert sorted(calls) == [(0, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert loss.item() == pytest.approx(0.25 * 1.0 + 0.75 * 3.0)
    assert parts["loss_gg"].item() == 1.0 and parts["loss_gl"].item() == 3.0
    calls.clear()
    loss, _ = tr.multicrop_loss(pair, n_views=2, n_global=2, alpha=0.25)
    assert calls == [(0, 1)] and loss.item() == 1.0


def test_lars_excludes_one_dimensional_params_from_decay_and_adaptation():
    w = torch.nn.Parameter(torch.ones(2, 2))
    b = torch.nn.Parameter(torch.ones(2))
    groups = tr.param_groups([("w", w), ("b", b)], weight_decay=0.1)
    opt = tr.LARS(groups, lr=1.0, momentum=0.0, eta=0.01)
    w.grad = torch.full((2, 2), 1.0)
    b.grad = torch.full((2,), 1.0)
    opt.step()
    # w: g = 1 + 0.1*1 = 1.1 everywhere, |w| = 2, |g| = 2.2 -> trust 0.01*2/2.2 -> step = 0.01*2/2.2*1.1 = 0.01
    assert torch.allclose(w, torch.full((2, 2), 0.99))
    assert torch.allclose(b, torch.zeros(2))  # plain SGD step of the raw gradient


def test_lr_schedule_warmup_then_cosine():
    peak = 1.0
    lrs = [tr.lr_at(s, 100, 10, peak, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5, rel=1e-6)  # half-way through the cosine
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert tr.lr_at(100, 100, 10, peak, 0.1) == pytest.approx(0.1)


def test_ema_momentum_cosine_from_base_to_one():
    model = tr.SSLModel("small", 4, "8-4", "8-4", num_classes=3)
    target = tr.EMATarget(model, 0.996)
    assert target.momentum(0, 100) == pytest.approx(0.996)
    assert target.momentum(50, 100) == pytest.approx(0.998)
    assert target.momentum(100, 100) == pytest.approx(1.0)
    with torch.no_grad():
        for prm in model.projector.parameters():
            prm.add_(1.0)
    before = [t.clone() for t in target.projector.parameters()]
    target.update(model, 0.75)
    for b, t, o in zip(before, target.projector.parameters(), model.projector.parameters()):
        assert torch.allclose(t, 0.75 * b + 0.25 * o)


def test_mlp_spec_and_bad_spec():
    mlp, out = tr.build_mlp(16, "32-32-8")
    assert out == 8 and mlp(torch.randn(4, 16)).shape == (4, 8)
    with pytest.raises(ValueError, match="2048-2048-256"):
        tr.build_mlp(16, "32-x")
