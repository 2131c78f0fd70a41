"""Chapter 3 references checked against torch.optim and against the closed forms they imply."""

import inspect
import math

import numpy as np
import pytest
import torch

from solutions.adaptive import AdaGrad, Adam, AdamW, RMSprop, ema_weights

# (ours, torch's, constructor keyword arguments): each runs 200 float64 steps below.
CONFIGS = [
    (AdaGrad, torch.optim.Adagrad, {}),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
    (AdaGrad, torch.optim.Adagrad, dict(lr=0.05, initial_accumulator_value=0.5, eps=1e-3)),
    (RMSprop, torch.optim.RMSprop, {}),
    (RMSprop, torch.optim.RMSprop, dict(lr=3e-3, alpha=0.9, eps=1e-2, weight_decay=0.1)),
    (Adam, torch.optim.Adam, {}),
    (Adam, torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    (Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (AdamW, torch.optim.AdamW, {}),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.0)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.5)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.3, amsgrad=True)),
]


def make_problem(seed, n=24, d=4, h=6, k=2):
    """Initial weights of a tanh MLP and regression data, float64, from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    weights = [
        torch.randn(h, d, generator=g, dtype=torch.float64) / math.sqrt(d),
        0.1 * torch.randn(h, generator=g, dtype=torch.float64),
        torch.randn(k, h, generator=g, dtype=torch.float64) / math.sqrt(h),
        0.1 * torch.randn(k, generator=g, dtype=torch.float64),
    ]
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, k, generator=g, dtype=torch.float64)
    return weights, X, y


def train(opt_class, kwargs, num_steps=200, seed=0, batch_size=5, groups=None, use_closure=False):
    """Parameters after each step of ``opt_class`` on cyclic mini-batches, plus returned losses."""
    weights, X, y = make_problem(seed)
    params = [w.clone().requires_grad_() for w in weights]
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)  # grad stays None
    if groups is None:
        opt = opt_class(params + [unused], **kwargs)
    else:
        opt = opt_class(
            [{"params": params[:2], **groups[0]}, {"params": params[2:] + [unused], **groups[1]}],
            **kwargs,
        )
    n = X.shape[0]
    path, losses = [], []
    for step in range(num_steps):
        rows = torch.arange(step * batch_size, (step + 1) * batch_size) % n

        def closure(rows=rows):
            opt.zero_grad()
            W1, b1, W2, b2 = params
            out = torch.tanh(X[rows] @ W1.T + b1) @ W2.T + b2
            loss = ((out - y[rows]) ** 2).mean()
            loss.backward()
            return loss

        if use_closure:
            losses.append(float(opt.step(closure).detach()))
        else:
            losses.append(float(closure().detach()))
            opt.step()
        path.append(torch.cat([p.detach().flatten() for p in params + [unused]]).clone())
    return torch.stack(path), losses


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    CONFIGS,
    ids=[f"{o.__name__}-{i}" for i, (o, _, _) in enumerate(CONFIGS)],
)
def test_matches_torch_for_200_steps(ours, theirs, kwargs):
    """Do 200 float64 steps of our class equal torch.optim's, parameter by parameter?"""
    got, _ = train(ours, kwargs)
    want, _ = train(theirs, kwargs)
    # float64, identical formulas up to operation order: differences stay near 1e-15
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("ours", "theirs", "groups"),
    [
        (AdaGrad, torch.optim.Adagrad, [dict(lr=0.05, lr_decay=0.1), dict(weight_decay=0.2)]),
        (RMSprop, torch.optim.RMSprop, [dict(alpha=0.9), dict(lr=3e-3, weight_decay=0.2)]),
        (Adam, torch.optim.Adam, [dict(betas=(0.5, 0.9)), dict(lr=3e-3, amsgrad=True)]),
        (AdamW, torch.optim.AdamW, [dict(weight_decay=0.0), dict(lr=3e-3, weight_decay=0.5)]),
    ],
)
def test_param_groups_closure_and_missing_grads(ours, theirs, groups):
    """With two parameter groups, step(closure) and a parameter whose grad is None, do we match?"""
    got, got_losses = train(ours, dict(lr=1e-2), num_steps=50, groups=groups, use_closure=True)
    want, want_losses = train(theirs, dict(lr=1e-2), num_steps=50, groups=groups, use_closure=True)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert got_losses == pytest.approx(want_losses, rel=1e-12)
    # the unused parameter (last three entries) never moves, even under weight decay
    torch.testing.assert_close(got[:, -3:], torch.ones(50, 3, dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (AdaGrad, torch.optim.Adagrad),
        (RMSprop, torch.optim.RMSprop),
        (Adam, torch.optim.Adam),
        (AdamW, torch.optim.AdamW),
    ],
)
def test_constructor_defaults_are_torchs(ours, theirs):
    """Does each constructor take torch's leading arguments, in order, with torch's defaults?"""
    mine = list(inspect.signature(ours.__init__).parameters.values())[1:]
    torch_params = inspect.signature(theirs.__init__).parameters
    assert [p.name for p in mine] == list(torch_params)[1 : len(mine) + 1]
    for p in mine[1:]:
        assert p.default == torch_params[p.name].default, p.name
    x = torch.zeros(2, requires_grad=True)
    ours_group, torch_group = ours([x]).param_groups[0], theirs([x]).param_groups[0]
    for p in mine[1:]:
        assert ours_group[p.name] == torch_group[p.name], p.name


@pytest.mark.parametrize(("rho", "num_steps"), [(0.0, 3), (0.5, 10), (0.9, 50), (0.99, 700)])
def test_ema_weights_sum_and_order(rho, num_steps):
    """Do the EMA weights sum to 1 - rho**num_steps, grow towards the newest, and match an EMA?"""
    w = ema_weights(rho, num_steps)
    assert w.shape == (num_steps,)
    assert w.sum() == pytest.approx(1 - rho**num_steps, rel=1e-12)
    assert np.all(np.diff(w) >= 0)
    # feeding the impulse e_i through s <- rho s + (1 - rho) x gives weight w[i]
    for i in (0, num_steps // 2, num_steps - 1):
        s = 0.0
        for j in range(num_steps):
            s = rho * s + (1 - rho) * float(j == i)
        assert s == pytest.approx(w[i], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
def test_ema_mean_lag_tends_to_rho_over_one_minus_rho(rho):
    """Does the weighted mean age of the inputs tend to rho / (1 - rho) as the window grows?"""
    lags = []
    for num_steps in (10, 100, 10_000):
        w = ema_weights(rho, num_steps)
        ages = np.arange(num_steps - 1, -1, -1)
        lags.append(float(w @ ages / w.sum()))
    assert lags[0] <= lags[1] <= lags[2]
    # after 10_000 steps rho**n is below 1e-43: the limit holds to rounding
    assert lags[-1] == pytest.approx(rho / (1 - rho), rel=1e-10)


def test_ema_weights_reject_bad_input():
    """Are rho outside [0, 1] and a negative num_steps refused with ValueError?"""
    with pytest.raises(ValueError):
        ema_weights(1.5, 3)
    with pytest.raises(ValueError):
        ema_weights(0.5, -1)


def reddi_run(amsgrad, num_steps=300, C=3.0, alpha=0.5):
    """Online losses C x (t % 3 == 1) and -x otherwise on [-1, 1], lr alpha / sqrt(t), beta1 = 0."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = Adam([x], lr=alpha, betas=(0.0, 1 / (1 + C**2)), amsgrad=amsgrad)
    for t in range(1, num_steps + 1):
        opt.param_groups[0]["lr"] = alpha / math.sqrt(t)
        opt.zero_grad()
        ((C if t % 3 == 1 else -1.0) * x.sum()).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    return float(x.detach())


def test_reddi_counterexample():
    """On Reddi et al.'s online problem (optimum -1), does Adam end near +1 and AMSGrad near -1?"""
    assert reddi_run(amsgrad=False) > 0.9
    assert reddi_run(amsgrad=True) < -0.9


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
@pytest.mark.parametrize(("ours", "kwargs"), [(c[0], c[2]) for c in CONFIGS])
def test_cuda_matches_cpu(ours, kwargs):
    """On CUDA tensors, does each class follow its own CPU trajectory (float64)?"""
    weights, X, y = make_problem(0)
    paths = []
    for device in ("cpu", "cuda"):
        params = [w.to(device).clone().requires_grad_() for w in weights]
        Xd, yd = X.to(device), y.to(device)
        opt = ours(params, **kwargs)
        path = []
        for _ in range(50):
            opt.zero_grad()
            W1, b1, W2, b2 = params
            ((torch.tanh(Xd @ W1.T + b1) @ W2.T + b2 - yd) ** 2).mean().backward()
            opt.step()
            path.append(torch.cat([p.detach().cpu().flatten() for p in params]))
        paths.append(torch.stack(path))
    # CUDA may reduce in another order; float64 keeps the drift far below this
    torch.testing.assert_close(paths[1], paths[0], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (AdaGrad, torch.optim.Adagrad, dict(lr=0.05, lr_decay=0.2)),
        (RMSprop, torch.optim.RMSprop, dict(lr=1e-2, alpha=0.9)),
        (Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
        (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    ],
)
def test_a_parameter_that_starts_late_counts_its_own_steps(ours, theirs, kwargs):
    """A parameter with no gradient for the first 6 steps, then trained: does its path equal
    torch's, whose step count (bias corrections, lr decay) is per parameter?"""

    def run(opt_class):
        g = torch.Generator().manual_seed(3)
        early = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
        late = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
        opt = opt_class([early, late], **kwargs)
        path = []
        for step in range(20):
            opt.zero_grad(set_to_none=True)
            loss = (torch.sin(early * (1 + step)) ** 2).sum()
            if step >= 6:
                loss = loss + ((late - 0.1 * step) ** 2).sum()
            loss.backward()
            opt.step()
            path.append(torch.cat([early.detach(), late.detach()]).clone())
        return torch.stack(path)

    # the same formulas in float64, up to operation order
    torch.testing.assert_close(run(ours), run(theirs), rtol=0, atol=1e-12)


def test_adagrad_initial_accumulator_value_is_the_groups():
    """With two groups holding their own initial_accumulator_value, does each group follow a
    torch.optim.Adagrad built with that value (torch's class itself reads only the
    constructor's value, for every group: the exercise asks for the group's)?"""
    g = torch.Generator().manual_seed(5)
    start = [torch.randn(3, generator=g, dtype=torch.float64) for _ in range(2)]
    ours_p = [s.clone().requires_grad_() for s in start]
    theirs_p = [s.clone().requires_grad_() for s in start]
    ours = AdaGrad(
        [{"params": [ours_p[0]]}, {"params": [ours_p[1]], "initial_accumulator_value": 2.0}],
        lr=0.1,
        initial_accumulator_value=0.1,
    )
    theirs = [
        torch.optim.Adagrad([theirs_p[0]], lr=0.1, initial_accumulator_value=0.1),
        torch.optim.Adagrad([theirs_p[1]], lr=0.1, initial_accumulator_value=2.0),
    ]
    for step in range(15):
        for params, opts in ((ours_p, [ours]), (theirs_p, theirs)):
            for opt in opts:
                opt.zero_grad()
            (torch.cos(params[0] * step).sum() + (params[1] ** 3).sum()).backward()
            for opt in opts:
                opt.step()
    for a, b in zip(ours_p, theirs_p):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-12)
