"""Reference implementations for chapter 8: physics-informed networks and neural ODEs."""

import numpy as np
import torch


def fisher_kpp_fd(u0, D, r, length, t_eval):
    """Fisher-KPP ``u_t = D u_xx + r u (1 - u)`` on [0, length] with ``u_x = 0`` at both ends,
    by the method of lines: the rows of the result are the grid values at the times ``t_eval``.

    The grid is ``x_j = j * length / (M - 1)``, ``j = 0 .. M - 1``, with ``M = len(u0) >= 3`` and
    ``h = length / (M - 1)``. Each value follows ``du_j/dt = D (u_{j+1} - 2 u_j + u_{j-1}) / h^2 +
    r u_j (1 - u_j)``, with the ghost values ``u_{-1} = u_1`` and ``u_M = u_{M-2}`` (a zero slope
    at the walls), from ``u(0) = u0``. ``t_eval`` is strictly increasing and >= 0. Returns a
    float64 array ``(len(t_eval), M)`` within 1e-6 of the exact solution of these M ODEs.

    Diffusion makes the system stiff (eigenvalues down to -4 D / h^2), so an implicit solver
    (Radau, with the exact tridiagonal Jacobian) at tight tolerances does the work.

    Exercise 8.1 in book/ch08_scientific/exercises.ipynb.
    """
    from scipy import sparse
    from scipy.integrate import solve_ivp

    u0 = np.array(u0, dtype=np.float64)
    t_eval = np.array(t_eval, dtype=np.float64)
    if u0.ndim != 1 or u0.size < 3:
        raise ValueError(f"u0 must be 1-D with at least 3 values, got shape {u0.shape}")
    if t_eval.ndim != 1 or t_eval.size == 0:
        raise ValueError("t_eval must be a non-empty 1-D array of times")
    if t_eval[0] < 0 or np.any(np.diff(t_eval) <= 0):
        raise ValueError("t_eval must be strictly increasing and >= 0")
    M = u0.size
    h = length / (M - 1)
    c = D / h**2
    main = np.full(M, -2.0)
    upper = np.ones(M - 1)
    lower = np.ones(M - 1)
    upper[0] = 2.0  # ghost u_{-1} = u_1
    lower[-1] = 2.0  # ghost u_M = u_{M-2}
    lap = sparse.diags([lower, main, upper], [-1, 0, 1], format="csc")

    def rhs(_, u):
        return c * (lap @ u) + r * u * (1.0 - u)

    def jac(_, u):
        return c * lap + sparse.diags(r * (1.0 - 2.0 * u), format="csc")

    out = np.empty((t_eval.size, M))
    zero = t_eval == 0.0
    out[zero] = u0
    later = t_eval[~zero]
    if later.size:
        sol = solve_ivp(
            rhs,
            (0.0, later[-1]),
            u0,
            method="Radau",
            t_eval=later,
            jac=jac,
            rtol=1e-10,
            atol=1e-12,
        )
        if not sol.success:
            raise RuntimeError(f"the Radau solve failed: {sol.message}")
        out[~zero] = sol.y.T
    return out


def pinn_residual(model, x, t, D, r):
    """The Fisher-KPP residual ``u_t - D u_xx - r u (1 - u)`` of a network ``u = model([x, t])``.

    ``model`` maps a tensor ``(n, 2)`` with columns ``[x, t]`` to ``(n, 1)``; ``x`` and ``t`` are
    tensors ``(n, 1)`` (they need not require grad, and are not modified: the derivatives are
    taken with respect to leaf copies). Returns ``(n, 1)``, differentiable in the model's
    parameters (``create_graph=True``), so that a loss built on it can be trained.

    Exercise 8.2 in book/ch08_scientific/exercises.ipynb.
    """
    x = x.detach().clone().requires_grad_(True)
    t = t.detach().clone().requires_grad_(True)
    u = model(torch.cat([x, t], dim=1))
    u_x, u_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True, allow_unused=True)
    u_x = torch.zeros_like(x) if u_x is None else u_x
    u_t = torch.zeros_like(t) if u_t is None else u_t
    (u_xx,) = torch.autograd.grad(u_x.sum(), x, create_graph=True, allow_unused=True)
    u_xx = torch.zeros_like(x) if u_xx is None else u_xx
    return u_t - D * u_xx - r * u * (1 - u)


def rk4_odeint(f, y0, t):
    """Solve ``dy/dt = f(t, y)`` from ``y(t[0]) = y0`` by the classic Runge-Kutta method, one
    step per interval of the increasing grid ``t`` (any spacing): stages at t, t + h/2, t + h/2,
    t + h, weights 1/6, 1/3, 1/3, 1/6.

    Returns the values at every time of ``t``, shape ``(len(t), *y0.shape)``, ``out[0] = y0``.
    NumPy in, float64 NumPy out; a tensor ``y0`` gives a ``torch.stack`` of tensors, differentiable
    in ``y0`` and in whatever ``f`` depends on (``t`` then becomes a tensor of y0's dtype).
    Neither ``y0`` nor ``t`` is modified.

    Exercise 8.3 in book/ch08_scientific/exercises.ipynb.
    """
    tensor = isinstance(y0, torch.Tensor)
    if tensor:
        t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
        steps = t[1:] - t[:-1]
    else:
        y0 = np.array(y0, dtype=np.float64)
        t = np.array(t, dtype=np.float64)
        steps = np.diff(t)
    if t.ndim != 1 or len(t) == 0:
        raise ValueError("t must be a non-empty 1-D grid of times")
    if bool((steps <= 0).any()):
        raise ValueError("t must be strictly increasing")
    ys = [y0]
    y = y0
    for i in range(len(t) - 1):
        ti, h = t[i], steps[i]
        k1 = f(ti, y)
        k2 = f(ti + h / 2, y + h / 2 * k1)
        k3 = f(ti + h / 2, y + h / 2 * k2)
        k4 = f(ti + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ys.append(y)
    if tensor:
        return torch.stack(ys)
    return np.stack([np.asarray(v, dtype=np.float64) for v in ys])


def fit_linear_dynamics(t, Y):
    """Fit ``A`` in ``dy/dt = y A`` (rows: ``y(t) = y0 expm(A t)``) to the observations ``Y``.

    ``t`` is an increasing grid ``(T,)``; ``Y`` is ``(T, d)`` (one trajectory) or ``(T, B, d)``
    (B trajectories on the same grid). Minimizes, from ``A = 0``, the mean squared error of one
    classic RK4 step of ``dy/dt = y A`` from ``Y[i]`` to ``t[i+1]`` against ``Y[i+1]`` (mean over
    i, trajectories and components). Returns the minimizer as a float64 NumPy array ``(d, d)``.
    L-BFGS in float64 (exact gradients by autograd); ``t`` and ``Y`` are not modified.

    Exercise 8.4 in book/ch08_scientific/exercises.ipynb.
    """
    t = torch.tensor(np.asarray(t, dtype=np.float64))
    Y = torch.tensor(np.asarray(Y, dtype=np.float64))
    if t.ndim != 1 or t.numel() < 2 or Y.shape[0] != t.numel() or Y.ndim not in (2, 3):
        raise ValueError("t must be (T,) with T >= 2 and Y (T, d) or (T, B, d)")
    if bool((t[1:] <= t[:-1]).any()):
        raise ValueError("t must be strictly increasing")
    d = Y.shape[-1]
    h = (t[1:] - t[:-1]).reshape(-1, *[1] * (Y.ndim - 1))
    y, target = Y[:-1], Y[1:]
    A = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [A],
        lr=1,
        max_iter=1000,
        tolerance_grad=1e-12,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def loss():
        k1 = y @ A
        k2 = (y + h / 2 * k1) @ A
        k3 = (y + h / 2 * k2) @ A
        k4 = (y + h * k3) @ A
        step = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return ((step - target) ** 2).mean()

    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)  # to a gradient of 1e-12 or until the loss stops changing
    return A.detach().numpy().copy()
