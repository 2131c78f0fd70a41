"""Chapter 7's reference against the trusted libraries (torch.func, torch.autograd, sklearn)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.func import functional_call, grad, vmap

from solutions.continual import accuracy, ewc_penalty, fisher_diagonal, permute_pixels

# float64 throughout: a Fisher entry is a mean of n squared gradients of order 1, and the loop
# and vmap sum the same terms in different orders, so they agree to a few ulps; 1e-9 is ample.
TOL = 1e-9


def mlp(widths, seed, activation=torch.nn.Tanh):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(widths) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


def data(n, d, k, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return X, torch.randint(0, k, (n,), generator=g)


def per_sample_grads(model, X, c):
    """d/d theta log p(c_i | x_i) for every i, with vmap(grad): dict name -> (n, *shape)."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}

    def logp(p, x, ci):
        out = functional_call(model, {**p, **buffers}, (x[None],))
        return torch.log_softmax(out, dim=1)[0].gather(0, ci[None])[0]

    return vmap(grad(logp), in_dims=(None, 0, 0))(params, X, c)


def fisher_by_vmap(model, X, y):
    if y is not None:
        return {k: (g**2).mean(0) for k, g in per_sample_grads(model, X, y).items()}
    with torch.no_grad():
        p = torch.softmax(model(X), dim=1)
    k = p.shape[1]
    total = None
    for c in range(k):
        g = per_sample_grads(model, X, torch.full((X.shape[0],), c))
        w = p[:, c]
        term = {n: (w.reshape(-1, *[1] * (v.ndim - 1)) * v**2).mean(0) for n, v in g.items()}
        total = term if total is None else {n: total[n] + term[n] for n in total}
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("widths", [[3, 2], [5, 7, 4], [4, 6, 6, 3]])
def test_empirical_fisher_matches_vmap(seed, widths):
    """Is fisher_diagonal(model, X, y) the mean of squared vmap(grad) per-sample gradients?"""
    model = mlp(widths, seed)
    X, y = data(13, widths[0], widths[-1], seed)
    got, want = fisher_diagonal(model, X, y), fisher_by_vmap(model, X, y)
    assert list(got) == [n for n, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        assert got[name].shape == p.shape and got[name].dtype == p.dtype
        assert not got[name].requires_grad
        torch.testing.assert_close(got[name], want[name], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", [0, 3])
def test_model_fisher_is_the_probability_weighted_sum(seed):
    """With y=None, is the Fisher sum_c p(c|x) (grad log p(c|x))^2, averaged over samples?"""
    model = mlp([4, 8, 5], seed, torch.nn.ReLU)
    X, _ = data(11, 4, 5, seed)
    got, want = fisher_diagonal(model, X), fisher_by_vmap(model, X, None)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=TOL, atol=TOL)


def test_model_fisher_differs_from_the_empirical_one():
    """Do the two Fishers differ (so that a test telling them apart means something)?"""
    model = mlp([4, 8, 5], 0)
    X, y = data(20, 4, 5, 0)
    a, b = fisher_diagonal(model, X, y), fisher_diagonal(model, X)
    assert max(float((a[n] - b[n]).abs().max()) for n in a) > 1e-3


def test_fisher_is_a_mean_of_squares_not_a_square_of_the_mean():
    """Is the Fisher of n copies of one sample that sample's squared gradient (mean, not sum),
    and larger than the squared mean gradient of two different samples?"""
    model = mlp([3, 4, 2], 1)
    X, y = data(2, 3, 2, 1)
    one = fisher_diagonal(model, X[:1], y[:1])
    many = fisher_diagonal(model, X[:1].repeat(5, 1), y[:1].repeat(5))
    for n in one:
        torch.testing.assert_close(many[n], one[n], rtol=TOL, atol=TOL)
    g = per_sample_grads(model, X, y)
    both = fisher_diagonal(model, X, y)
    for n in both:
        assert torch.all(both[n] >= g[n].mean(0) ** 2 - 1e-15)


def test_frozen_parameters_are_left_out_and_values_unchanged():
    """Are parameters with requires_grad=False absent, and the parameters untouched?"""
    model = mlp([4, 6, 3], 2)
    model[0].weight.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    X, y = data(9, 4, 3, 2)
    got = fisher_diagonal(model, X, y)
    assert set(got) == {"0.bias", "2.weight", "2.bias"}
    want = fisher_by_vmap(model, X, y)
    for n in got:
        torch.testing.assert_close(got[n], want[n], rtol=TOL, atol=TOL)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])


def test_fisher_in_float32_keeps_the_dtype():
    """Does a float32 model get a float32 Fisher close to the float64 one?"""
    model = mlp([5, 6, 3], 4)
    X, y = data(10, 5, 3, 4)
    want = fisher_diagonal(model, X, y)
    got = fisher_diagonal(model.float(), X.float(), y)
    for n in want:
        assert got[n].dtype == torch.float32
        torch.testing.assert_close(got[n].double(), want[n], rtol=1e-4, atol=1e-6)


def penalty_case(seed):
    model = mlp([4, 5, 3], seed)
    g = torch.Generator().manual_seed(seed + 100)
    names = [n for n, _ in model.named_parameters()]
    fisher = {
        n: torch.rand(p.shape, generator=g, dtype=p.dtype)
        for n, p in zip(names, model.parameters())
    }
    anchor = {
        n: p.detach() + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)
        for n, p in model.named_parameters()
    }
    return model, fisher, anchor


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("lam", [0.5, 100.0])
def test_ewc_penalty_value_and_gradient(seed, lam):
    """Is the penalty (lam/2) sum F (theta - anchor)^2, with autograd gradient lam F (theta - a)?"""
    model, fisher, anchor = penalty_case(seed)
    del fisher["2.bias"]  # absent names contribute nothing
    value = ewc_penalty(model, fisher, anchor, lam)
    assert value.ndim == 0
    params = dict(model.named_parameters())
    with torch.no_grad():
        want = sum(float((fisher[n] * (params[n] - anchor[n]) ** 2).sum()) for n in fisher)
    assert float(value.detach()) == pytest.approx(lam / 2 * want, rel=1e-12)
    grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
    for (n, p), g in zip(params.items(), grads):
        if n in fisher:
            torch.testing.assert_close(g, lam * fisher[n] * (p - anchor[n]), rtol=TOL, atol=TOL)
        else:
            assert g is None or torch.all(g == 0)


def test_ewc_penalty_is_zero_at_the_anchor_and_rejects_unknown_names():
    """Is the penalty 0 at theta = anchor, and a KeyError for a Fisher name the model lacks?"""
    model, fisher, _ = penalty_case(3)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert float(ewc_penalty(model, fisher, anchor, 10.0).detach()) == 0.0
    with pytest.raises(KeyError):
        ewc_penalty(model, {**fisher, "9.weight": torch.ones(2)}, anchor, 1.0)


def test_accuracy_counts_argmax_hits():
    """Is accuracy the fraction of argmax predictions equal to the labels, as a Python float?"""
    model = mlp([6, 4], 5)
    X, y = data(50, 6, 4, 5)
    got = accuracy(model, X, y)
    want = (model(X).argmax(1) == y).double().mean().item()
    assert type(got) is float and got == want
    assert accuracy(model, X, model(X).argmax(1)) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permute_pixels_on_digit_splits(seed):
    """Does permute_pixels apply one column order (that of the seeded generator) to both halves
    of a stratified scikit-learn split, as a new array?"""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.5, stratify=y, random_state=seed)
    assert (len(Xtr), len(Xte)) == (898, 899)
    assert np.abs(np.bincount(ytr) - np.bincount(y) / 2).max() <= 0.5  # stratified
    kept = Xtr.copy()
    P = permute_pixels(Xtr, 1)
    perm = np.random.default_rng(1).permutation(64)
    assert np.array_equal(P, Xtr[:, perm]) and not np.shares_memory(P, Xtr)
    assert np.array_equal(Xtr, kept)
    assert np.array_equal(permute_pixels(Xte, 1), Xte[:, perm])
    assert not np.array_equal(permute_pixels(Xtr, 2), P)
    assert np.array_equal(np.sort(P, axis=1), np.sort(Xtr, axis=1))
