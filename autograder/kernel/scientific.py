"""Kernel-side drivers for chapter 8: they build what cannot cross as data (a torch model, the
right-hand side of an ODE) and call the notebook's ``pinn_residual`` and ``rk4_odeint`` on it.

A network travels as ``{"widths": [2, h, ..., 1], "state": {name: array}}`` (a float64
``nn.Sequential`` of Linear layers with tanh between them) or as ``{"wave": [D, r, C]}``, the
exact travelling wave ``(1 + C exp(x sqrt(r / 6D) - 5 r t / 6))^-2``. A vector field travels as
``{"A": (d, d), "b": (d,), "cubic": bool}``: ``f(t, y) = g(y) @ A + sin(t) b`` with ``g(y) = y**3``
if cubic, else ``y``.
"""

import math

import numpy as np
import torch


class RuleBroken(Exception):
    """The notebook's code broke a rule its prompt states (the grader reports it as failed)."""


def _model(net):
    if "wave" in net:
        D, r, C = (float(v) for v in net["wave"])

        def wave(xt):
            x, t = xt[:, :1], xt[:, 1:]
            return (1 + C * torch.exp(x * math.sqrt(r / (6 * D)) - 5 * r * t / 6)) ** -2

        return wave, []
    widths = [int(w) for w in net["widths"]]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(widths) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    state = {k: torch.tensor(np.asarray(v), dtype=torch.float64) for k, v in net["state"].items()}
    model.load_state_dict(state)
    return model, list(model.named_parameters())


def pinn_residual(ns, net, x, t, D, r):
    """The notebook's ``pinn_residual(model, x, t, D, r)``: ``{"residual": (n, 1), "grad":
    {name: array}}``, the gradient of the mean squared residual in the parameters."""
    model, params = _model(net)
    x = torch.as_tensor(np.asarray(x))
    t = torch.as_tensor(np.asarray(t))
    res = ns["pinn_residual"](model, x, t, D, r)
    if not isinstance(res, torch.Tensor):
        raise RuleBroken(f"returned a {type(res).__name__} from pinn_residual, not a tensor")
    if tuple(res.shape) != (x.shape[0], 1):
        raise RuleBroken(f"pinn_residual returned shape {tuple(res.shape)}; expected (n, 1)")
    if x.requires_grad or t.requires_grad:
        raise RuleBroken("set requires_grad on the caller's x or t; differentiate leaf copies")
    grads = {}
    if params:
        if not res.requires_grad:
            raise RuleBroken(
                "returned a residual with no graph in the parameters (create_graph=True)"
            )
        values = torch.autograd.grad((res**2).mean(), [p for _, p in params], allow_unused=True)
        grads = {
            n: (torch.zeros_like(p) if g is None else g).detach().numpy()
            for (n, p), g in zip(params, values)
        }
    return {"residual": res.detach().numpy(), "grad": grads}


def _field(field, tensor):
    cubic = bool(field.get("cubic", False))
    if tensor:
        A = torch.tensor(np.asarray(field["A"]), dtype=torch.float64, requires_grad=True)
        b = torch.tensor(np.asarray(field["b"]), dtype=torch.float64)

        def f(s, y):
            s = torch.as_tensor(s, dtype=torch.float64)
            return (y**3 if cubic else y) @ A + torch.sin(s) * b

        return f, A
    A = np.array(field["A"], dtype=np.float64)
    b = np.array(field["b"], dtype=np.float64)

    def f(s, y):
        return (np.asarray(y) ** 3 if cubic else np.asarray(y)) @ A + math.sin(float(s)) * b

    return f, None


def rk4_odeint(ns, field, y0, t, tensor=False):
    """The notebook's ``rk4_odeint(f, y0, t)`` on the field ``field``. NumPy (``tensor=False``):
    the float64 array it returns. Tensors: ``{"ys": array, "grad_y0": ..., "grad_A": ...}``, the
    gradients of ``sum(ys * w)`` (w = 1, 2, 3, ... over the flattened result) by autograd."""
    f, A = _field(field, tensor)
    if not tensor:
        out = ns["rk4_odeint"](f, np.asarray(y0), np.asarray(t))
        if not isinstance(out, np.ndarray) or out.dtype != np.float64:
            raise RuleBroken("rk4_odeint with NumPy inputs must return a float64 NumPy array")
        return out
    y0 = torch.tensor(np.asarray(y0), dtype=torch.float64, requires_grad=True)
    out = ns["rk4_odeint"](f, y0, torch.tensor(np.asarray(t), dtype=torch.float64))
    if not isinstance(out, torch.Tensor):
        raise RuleBroken("rk4_odeint with a tensor y0 must return a tensor (torch.stack)")
    if not out.requires_grad:
        raise RuleBroken("rk4_odeint's result has no graph: it must be differentiable")
    w = torch.arange(1, out.numel() + 1, dtype=torch.float64).reshape(out.shape)
    g_y0, g_A = torch.autograd.grad((out * w).sum(), [y0, A], allow_unused=True)
    zero = torch.zeros_like
    return {
        "ys": out.detach().numpy(),
        "grad_y0": (zero(y0) if g_y0 is None else g_y0).detach().numpy(),
        "grad_A": (zero(A) if g_A is None else g_A).detach().numpy(),
    }
