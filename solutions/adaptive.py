"""Reference implementations for chapter 3: adaptive methods (AdaGrad, RMSprop, Adam, AdamW)."""

import math

import numpy as np
import torch


class AdaGrad(torch.optim.Optimizer):
    """AdaGrad with the arguments, defaults and update rule of ``torch.optim.Adagrad``.

    Per parameter: ``g <- g + weight_decay * p``, ``clr = lr / (1 + (t - 1) * lr_decay)``,
    ``G <- G + g * g`` (``G`` starts at the ``initial_accumulator_value`` of the parameter's
    group; torch.optim.Adagrad uses the constructor's value for every group) and
    ``p <- p - clr * g / (sqrt(G) + eps)``, with ``t`` that parameter's own step count.
    Parameters whose ``grad`` is None are skipped.

    Exercise 3.1 in book/ch03_adaptive/exercises.ipynb.
    """

    def __init__(
        self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10
    ):
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or eps < 0:
            raise ValueError("lr, lr_decay, weight_decay and eps must be non-negative")
        if initial_accumulator_value < 0:
            raise ValueError("initial_accumulator_value must be non-negative")
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
                state["step"] += 1
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                # the learning rate decays as lr / (1 + (t - 1) * lr_decay)
                clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                # G_t = G_{t-1} + g_t * g_t
                state["sum"].addcmul_(g, g, value=1)
                std = state["sum"].sqrt().add_(group["eps"])
                p.addcdiv_(g, std, value=-clr)
        return loss


def ema_weights(rho, num_steps):
    """Weights of the last ``num_steps`` inputs in an EMA ``s <- rho * s + (1 - rho) * x``, s_0 = 0.

    Returns a float64 array of shape ``(num_steps,)``, oldest input first and newest last:
    ``w[i] = (1 - rho) * rho**(num_steps - 1 - i)``. They sum to ``1 - rho**num_steps``.

    Exercise 3.2 in book/ch03_adaptive/exercises.ipynb.
    """
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be non-negative, got {num_steps}")
    ages = np.arange(num_steps - 1, -1, -1, dtype=np.float64)  # newest input has age 0
    return (1 - rho) * rho**ages


class RMSprop(torch.optim.Optimizer):
    """RMSprop with the arguments, defaults and update rule of ``torch.optim.RMSprop``.

    Per parameter: ``g <- g + weight_decay * p``, ``v <- alpha * v + (1 - alpha) * g * g``
    (``v`` starts at 0) and ``p <- p - lr * g / (sqrt(v) + eps)``: eps is added after the root.

    Exercise 3.3 in book/ch03_adaptive/exercises.ipynb.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be non-negative")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            alpha = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(p)
                state["step"] += 1
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                # v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2
                state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
                avg = state["square_avg"].sqrt().add_(group["eps"])
                p.addcdiv_(g, avg, value=-group["lr"])
        return loss


class Adam(torch.optim.Optimizer):
    """Adam (and AMSGrad) with the arguments, defaults and update rule of ``torch.optim.Adam``.

    Per parameter at step t: ``g <- g + weight_decay * p`` (L2 in the gradient),
    ``m <- beta1 m + (1 - beta1) g``, ``v <- beta2 v + (1 - beta2) g^2``; with amsgrad
    ``vmax <- max(vmax, v)`` replaces ``v`` below; then
    ``p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Exercise 3.4 in book/ch03_adaptive/exercises.ipynb.
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False
    ):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be non-negative")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                # m_t = beta1 m_{t-1} + (1 - beta1) g_t ;  v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                # bias correction: E[m_t] = (1 - beta1^t) E[g], E[v_t] = (1 - beta2^t) E[g^2]
                step_size = group["lr"] / (1 - beta1**t)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                p.addcdiv_(m, denom, value=-step_size)
        return loss


class AdamW(torch.optim.Optimizer):
    """AdamW with the arguments, defaults and update rule of ``torch.optim.AdamW``.

    Decoupled weight decay: first ``p <- p * (1 - lr * weight_decay)``, then the Adam (or AMSGrad)
    step on the raw gradient, which never sees the decay term.

    Exercise 3.5 in book/ch03_adaptive/exercises.ipynb.
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False
    ):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be non-negative")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                # decoupled decay: theta <- theta (1 - lr * lambda), outside the adaptive scaling
                p.mul_(1 - group["lr"] * group["weight_decay"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                step_size = group["lr"] / (1 - beta1**t)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                p.addcdiv_(m, denom, value=-step_size)
        return loss
