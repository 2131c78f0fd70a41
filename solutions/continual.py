"""Reference implementations for chapter 7: catastrophic forgetting and elastic weight
consolidation (EWC)."""

import numpy as np
import torch


def permute_pixels(X, seed):
    """The columns (pixels) of ``X`` (n, d) in a fixed random order: a new array ``X[:, perm]``.

    ``perm = np.random.default_rng(seed).permutation(d)``: the same seed gives the same order
    for every array with d columns, so a "permuted" task applies one order to all its images.
    ``X`` is left unchanged.

    Exercise 7.1 in book/ch07_continual/exercises.ipynb.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n, d), got shape {X.shape}")
    perm = np.random.default_rng(seed).permutation(X.shape[1])
    return X[:, perm]  # fancy indexing: always a new array


def fisher_diagonal(model, X, y=None):
    """The diagonal of the Fisher information of a classifier, averaged over the rows of ``X``.

    ``model`` maps a batch (m, d) to logits (m, k); ``X`` is a float tensor (n, d) in the
    model's dtype and ``y`` an int64 tensor (n,) or None. With log p(c | x) the log-softmax of
    the logits of ``x`` alone (a batch of one), returns a dict from the name of every parameter
    that requires a gradient (``model.named_parameters()`` order; frozen ones left out) to a
    detached tensor of that parameter's shape and dtype:

    - ``y`` given (the *empirical* Fisher): mean over i of (d/d theta log p(y_i | x_i))^2;
    - ``y = None`` (the model's Fisher): mean over i of
      sum over c of p(c | x_i) (d/d theta log p(c | x_i))^2, summed exactly over the k classes.

    Squares are taken per sample, then averaged (not summed). Parameter values, ``X`` and ``y``
    are left unchanged.

    Exercise 7.2 in book/ch07_continual/exercises.ipynb.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    total = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in params]
    n = X.shape[0]
    for i in range(n):
        logp = torch.log_softmax(model(X[i : i + 1]), dim=1)[0]
        if y is not None:
            classes, weights = [int(y[i])], [1.0]
        else:
            classes = range(logp.shape[0])
            weights = logp.detach().exp()
        for j, c in enumerate(classes):
            last = j == len(classes) - 1
            grads = torch.autograd.grad(logp[c], params, retain_graph=not last)
            for acc, g in zip(total, grads):
                acc.add_(weights[j] * g.detach() ** 2)
    return {name: acc / n for name, acc in zip(names, total)}


def ewc_penalty(model, fisher, anchor, lam):
    """The EWC penalty (lam / 2) * sum_i F_i (theta_i - anchor_i)^2 as a 0-dim tensor.

    ``fisher`` and ``anchor`` map parameter names (as in ``model.named_parameters()``) to
    tensors of the parameters' shapes. The sum runs over the names in ``fisher`` only (other
    parameters contribute nothing); a name in ``fisher`` that the model lacks raises KeyError.
    The result is differentiable in the model's parameters: its gradient is
    lam * F * (theta - anchor). ``fisher`` and ``anchor`` are left unchanged.

    Exercise 7.3 in book/ch07_continual/exercises.ipynb.
    """
    params = dict(model.named_parameters())
    total = None
    for name, F in fisher.items():
        if name not in params:
            raise KeyError(f"the model has no parameter named {name!r}")
        theta = params[name]
        term = (F * (theta - anchor[name]) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        p = next(model.parameters(), None)
        return torch.zeros((), dtype=torch.get_default_dtype() if p is None else p.dtype)
    return 0.5 * lam * total


def accuracy(model, X, y):
    """Fraction of the rows of ``X`` whose largest logit is at the label in ``y``, a float.

    Computed under ``torch.no_grad()``; ties in the logits go to the first largest, as
    ``argmax`` does.

    Exercise 7.4 in book/ch07_continual/exercises.ipynb.
    """
    with torch.no_grad():
        pred = model(X).argmax(dim=1)
        return float((pred == y).double().mean())
