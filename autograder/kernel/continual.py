"""Kernel-side drivers for chapter 7: they build a torch model from plain data and call the
notebook's Fisher, penalty and accuracy functions on it.

A network travels as ``{"widths": [d, h, ..., k], "activation": "relu" | "tanh", "state":
{name: array}, "frozen": [names], "dtype": "float64" | "float32"}``: an ``nn.Sequential`` of
Linear layers with the activation between them, so its parameters are named "0.weight",
"0.bias", "2.weight", ... Arrays passed by the grader are handed on as tensors that share their
memory (``torch.as_tensor``), so the harness sees any in-place change to them.
"""

import numpy as np
import torch


class RuleBroken(Exception):
    """The notebook's code broke a rule its prompt states (the grader reports it as failed)."""


ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _model(net):
    """The Sequential MLP described by ``net`` (see the module docstring)."""
    widths = [int(w) for w in net["widths"]]
    dtype = DTYPES[net.get("dtype", "float64")]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[net["activation"]]())
    model = torch.nn.Sequential(*layers)
    state = {k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in net["state"].items()}
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in net.get("frozen", ()))
    return model


def _values(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _check_unchanged(model, before, fn):
    now = dict(model.named_parameters())
    if any(not torch.equal(now[n].detach(), before[n]) for n in before):
        raise RuleBroken(f"changed the model's parameters in {fn}; leave their values as they were")


def _tensor(value, dtype):
    """A grader array as a tensor of ``dtype`` sharing its memory where the dtype allows."""
    arr = np.asarray(value)
    return torch.as_tensor(arr) if arr.dtype == dtype else torch.as_tensor(arr, dtype=dtype)


def fisher_diagonal(ns, net, X, y=None):
    """The notebook's ``fisher_diagonal(model, X, y)`` on the network ``net``; returns the dict
    as NumPy arrays (each in the dtype the notebook returned)."""
    model = _model(net)
    X = torch.as_tensor(np.asarray(X))
    y = None if y is None else torch.as_tensor(np.asarray(y))
    before = _values(model)
    out = ns["fisher_diagonal"](model, X, y) if y is not None else ns["fisher_diagonal"](model, X)
    _check_unchanged(model, before, "fisher_diagonal")
    if not isinstance(out, dict):
        raise TypeError("fisher_diagonal must return a dict from parameter name to tensor")
    result = {}
    for name, value in out.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError("fisher_diagonal's dict values must be torch tensors")
        if value.requires_grad:
            raise RuleBroken("returned tensors that require grad from fisher_diagonal; detach them")
        result[str(name)] = value.detach().cpu().numpy()
    return result


def ewc_penalty(ns, net, fisher, anchor, lam):
    """The notebook's ``ewc_penalty`` on ``net``: ``{"value": float, "grad": {name: array}}``,
    the gradient taken by autograd from the returned tensor (zero where a parameter does not
    enter it)."""
    model = _model(net)
    dtype = DTYPES[net.get("dtype", "float64")]
    fisher = {k: _tensor(v, dtype) for k, v in fisher.items()}
    anchor = {k: _tensor(v, dtype) for k, v in anchor.items()}
    before = _values(model)
    value = ns["ewc_penalty"](model, fisher, anchor, lam)
    _check_unchanged(model, before, "ewc_penalty")
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        raise RuleBroken("returned something other than a 0-dim tensor from ewc_penalty")
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not value.requires_grad:
        raise RuleBroken(
            "returned an ewc_penalty with no autograd graph (detached, or built from .item() "
            "or .data); it must be differentiable in the parameters"
        )
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return {
        "value": float(value.detach()),
        "grad": {
            n: (torch.zeros_like(p) if g is None else g).detach().cpu().numpy()
            for n, p, g in zip(names, params, grads)
        },
    }


def accuracy(ns, net, X, y):
    """The notebook's ``accuracy(model, X, y)`` on ``net``, checked to be a Python float and
    computed with gradients off (a forward hook notes the grad mode of every forward call)."""
    model = _model(net)
    X, y = torch.as_tensor(np.asarray(X)), torch.as_tensor(np.asarray(y))
    modes = []
    model.register_forward_hook(lambda m, i, o: modes.append(torch.is_grad_enabled()))
    before = _values(model)
    value = ns["accuracy"](model, X, y)
    _check_unchanged(model, before, "accuracy")
    if not isinstance(value, float):
        raise RuleBroken(f"returned a {type(value).__name__} from accuracy, not a Python float")
    if any(modes):
        raise RuleBroken("ran the model with gradients on in accuracy; use torch.no_grad()")
    return float(value)
