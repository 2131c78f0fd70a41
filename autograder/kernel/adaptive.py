"""Kernel-side drivers for chapter 3: run optimizer classes on small torch problems, return data."""

import math

import numpy as np
import torch

_MODEL_KEYS = ("W1", "b1", "W2", "b2")


def _dtype(name):
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return getattr(torch, name)


def _mlp_loss(params, X, y):
    # L = mean over rows and outputs of (W2 tanh(W1 x + b1) + b2 - y)^2
    hidden = torch.tanh(X @ params["W1"].T + params["b1"])
    out = hidden @ params["W2"].T + params["b2"]
    return ((out - y) ** 2).mean()


def _as_plain(value):
    """Optimizer settings read back from param_groups, as plain data."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, tuple | list):
        return [_as_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def optimizer_trajectory(
    ns,
    name,
    weights,
    X,
    y,
    kwargs=None,
    num_steps=10,
    dtype="float64",
    groups=None,
    frozen=None,
    closure=False,
    batch_size=None,
    device="cpu",
    late=None,
    late_start=0,
):
    """Train ``W2 tanh(W1 x + b1) + b2`` with ``ns[name]`` and return every parameter's path.

    ``weights``: dict of arrays ``W1 (h, d)``, ``b1 (h,)``, ``W2 (k, h)``, ``b2 (k,)``;
    ``X (n, d)``, ``y (n, k)``. Step ``s`` uses rows ``[s*batch_size, (s+1)*batch_size)`` of
    the data taken cyclically (all rows when ``batch_size`` is None), so gradients change from
    step to step.
    ``kwargs`` go to the constructor (None: construct with the parameters only, i.e. defaults).
    ``groups``: None (one list of parameters) or a list of dicts ``{"params": [keys], **options}``.
    ``frozen``: an array for an extra parameter that is given to the optimizer but never used by
    the loss, so its ``grad`` stays None and it must not move. ``late``: an array for an extra
    parameter that joins the loss only from step ``late_start`` on (its ``grad`` is None before):
    its state, step count included, must start then. ``closure``: step through
    ``opt.step(closure)`` and record what it returns. Returns a dict: each key maps to an array of
    shape ``(num_steps + 1, *shape)``; ``"loss"`` (num_steps,) holds the loss of each step.
    """
    dt = _dtype(dtype)
    dev = torch.device(device)
    params = {
        k: torch.tensor(np.asarray(weights[k]), dtype=dt, device=dev).requires_grad_()
        for k in _MODEL_KEYS
    }
    if frozen is not None:
        params["frozen"] = torch.tensor(np.asarray(frozen), dtype=dt, device=dev).requires_grad_()
    if late is not None:
        params["late"] = torch.tensor(np.asarray(late), dtype=dt, device=dev).requires_grad_()
    X = torch.tensor(np.asarray(X), dtype=dt, device=dev)
    y = torch.tensor(np.asarray(y), dtype=dt, device=dev)
    n = X.shape[0]
    bs = n if batch_size is None else int(batch_size)

    if groups is None:
        spec = list(params.values())
    else:
        spec = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [params[k] for k in g["params"]],
            }
            for g in groups
        ]
    if kwargs is None:
        opt = ns[name](spec)
    else:
        opt = ns[name](spec, **kwargs)

    path = {k: [p.detach().cpu().numpy().copy()] for k, p in params.items()}
    losses = []
    calls = [0]
    for s in range(num_steps):
        rows = torch.arange(s * bs, (s + 1) * bs, device=dev) % n

        def compute_loss(rows=rows, s=s):
            calls[0] += 1
            for p in params.values():
                p.grad = None
            loss = _mlp_loss(params, X[rows], y[rows])
            if late is not None and s >= late_start:
                # pulls the late parameter toward the batch's mean target, which moves with s
                loss = loss + ((params["late"] - y[rows].mean()) ** 2).mean()
            loss.backward()
            return loss

        if closure:
            before = calls[0]
            returned = opt.step(compute_loss)
            if calls[0] - before != 1:
                raise RuntimeError(
                    f"step(closure) called the closure {calls[0] - before} times, expected once"
                )
            if returned is None:
                raise TypeError("step(closure) returned None; it must return the closure's loss")
            losses.append(float(torch.as_tensor(returned).detach()))
        else:
            loss = compute_loss()
            returned = opt.step()
            losses.append(float(loss.detach()))
        for k, p in params.items():
            path[k].append(p.detach().cpu().numpy().copy())
    out = {k: np.stack(v) for k, v in path.items()}
    out["loss"] = np.array(losses, dtype=np.float64)
    return out


def optimizer_defaults(ns, name, keys):
    """Construct ``ns[name]`` with parameters only; return ``param_groups[0][key]`` for each key.

    A key the group lacks comes back as the string ``"missing"``.
    """
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = ns[name]([p])
    group = opt.param_groups[0]
    return {k: _as_plain(group[k]) if k in group else "missing" for k in keys}


def reddi_online(ns, name, kwargs, num_steps, C=3.0, alpha=0.5, x0=0.0):
    """The online problem of Reddi, Kale & Kumar (2018) on ``[-1, 1]``; returns ``x_0..x_T``.

    At step t = 1, 2, ... the loss is ``C x`` when ``t % 3 == 1`` and ``-x`` otherwise; the
    learning rate is ``alpha / sqrt(t)`` and every step ends by projecting onto ``[-1, 1]``.
    """
    x = torch.tensor([float(x0)], dtype=torch.float64, requires_grad=True)
    opt = ns[name]([x], lr=alpha, **kwargs)
    path = [float(x.detach())]
    for t in range(1, num_steps + 1):
        for group in opt.param_groups:
            group["lr"] = alpha / math.sqrt(t)
        x.grad = None
        loss = (C if t % 3 == 1 else -1.0) * x.sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
        path.append(float(x.detach()))
    return np.array(path)


def ema_of_impulse(ns, rho, num_steps):
    """``ns['ema_weights'](rho, num_steps)`` as a float64 array (lists and tensors accepted)."""
    w = ns["ema_weights"](rho, num_steps)
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    return np.asarray(w, dtype=np.float64)
