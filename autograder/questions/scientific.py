"""Chapter 8's graded questions: Fisher-KPP by the method of lines, the PINN residual, classic
RK4, and fitting linear dynamics through the solver."""

import numpy as np

from autograder.spec import Chapter

chapter = Chapter("scientific", number=8, notebook="book/ch08_scientific/exercises.ipynb")

# The method of lines is compared to 1e-6 absolute (the prompt's promise): any implicit or
# explicit solver at rtol 1e-8, atol 1e-10 lands within ~4e-8 of the exact semi-discrete
# solution, default tolerances (rtol 1e-3) do not. The reference solves with Radau at 1e-10.
FD = {"rtol": 0.0, "atol": 1e-6}
# Residuals and RK4 in float64: a few hundred operations on order-1 values, ~1e-14; 1e-10
# leaves room for any ordering and none for a wrong formula or float32.
F64 = {"rtol": 1e-10, "atol": 1e-10}
# The fit: two optimizers run to convergence agree to well under 1e-4 on these well-posed
# least-squares problems; an Euler step or a transposed A is off by 1e-2 or more.
FIT = {"rtol": 0.0, "atol": 1e-4}


def _grid_front(M, length, where, width):
    x = np.linspace(0, length, M)
    return 1 / (1 + np.exp((x - where * length) / (width * length)))


# ---------------------------------------------------------------------------------------------
# 8.1 Fisher-KPP by the method of lines

FD_Q = chapter.question(
    "fisher_kpp_fd",
    points=2,
    functions=["fisher_kpp_fd"],
    title="8.1 Fisher-KPP by the method of lines",
    hint="h = length / (M - 1); du_j/dt = D (u_{j+1} - 2 u_j + u_{j-1}) / h**2 + r u_j (1 - u_j) "
    "with the ghosts u_{-1} = u_1 and u_M = u_{M-2} (zero slope, not u = 0 at the walls); "
    "integrate from t = 0 with solve_ivp(method='Radau' or 'BDF', rtol=1e-8, atol=1e-10 or "
    "tighter) and return sol.y.T at t_eval, shape (len(t_eval), M).",
)


@FD_Q.case(public=True)
def fd_front_small(t, rng):
    u0 = _grid_front(21, 1.0, 0.3, 0.05)
    t.compare("fisher_kpp_fd", u0, 0.01, 1.0, 1.0, [0.0, 0.2, 1.0], **FD)


@FD_Q.case()
def fd_random_parameters(t, rng):
    for M in (3, 17, 41):
        u0 = rng.uniform(0, 1, size=M)
        D, r, length = rng.uniform(0.01, 0.2), rng.uniform(0.2, 2.0), rng.uniform(0.5, 3.0)
        times = np.sort(rng.uniform(0.05, 1.5, size=4))
        t.compare("fisher_kpp_fd", u0, D, r, length, times, **FD)


@FD_Q.case()
def fd_mass_at_the_walls(t, rng):
    # Mass piled against both walls: Dirichlet or one-sided walls lose it, zero slope keeps it.
    x = np.linspace(0, 1, 31)
    u0 = np.exp(-(x**2) / 0.01) + 0.8 * np.exp(-((x - 1) ** 2) / 0.02)
    t.compare("fisher_kpp_fd", u0, 0.05, 0.0, 1.0, [0.1, 0.5], **FD)  # r = 0: diffusion alone
    t.compare("fisher_kpp_fd", u0, 0.05, 1.5, 1.0, [0.3, 2.0], **FD)


@FD_Q.case()
def fd_bad_inputs(t, rng):
    t.expect_error(ValueError, "fisher_kpp_fd", np.ones(2), 1.0, 1.0, 1.0, [1.0])
    t.expect_error(ValueError, "fisher_kpp_fd", np.ones(5), 1.0, 1.0, 1.0, [0.5, 0.5])
    t.expect_error(ValueError, "fisher_kpp_fd", np.ones(5), 1.0, 1.0, 1.0, [-0.1, 0.5])


# ---------------------------------------------------------------------------------------------
# 8.2 The PINN residual


def random_mlp(rng, widths):
    state = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        state[f"{2 * i}.weight"] = rng.normal(size=(b, a)) / np.sqrt(a) * 1.5
        state[f"{2 * i}.bias"] = 0.5 * rng.normal(size=b)
    return {"widths": list(widths), "state": state}


def points(rng, n):
    return rng.uniform(-1, 1, size=(n, 1)), rng.uniform(0, 2, size=(n, 1))


RES = chapter.question(
    "pinn_residual",
    points=2,
    functions=["pinn_residual"],
    title="8.2 The PINN residual",
    hint="x = x.detach().clone().requires_grad_(True) (and t); u = model(torch.cat([x, t], 1)); "
    "u_x, u_t = torch.autograd.grad(u.sum(), (x, t), create_graph=True); u_xx from u_x.sum() "
    "the same way; return u_t - D * u_xx - r * u * (1 - u), shape (n, 1).",
)


@RES.case(public=True)
def residual_small_mlp(t, rng):
    net = random_mlp(rng, [2, 8, 1])
    t.compare("driver:pinn_residual", net, *points(rng, 6), 0.01, 1.0, **F64)


@RES.case()
def residual_random_mlps(t, rng):
    for widths in ([2, 16, 16, 1], [2, 5, 1], [2, 12, 12, 12, 1]):
        D, r = rng.uniform(0.001, 1.0), rng.uniform(0.1, 3.0)
        t.compare("driver:pinn_residual", random_mlp(rng, widths), *points(rng, 25), D, r, **F64)


@RES.case()
def residual_of_the_exact_wave(t, rng):
    # The travelling wave solves the equation: the residual is ~1e-15, the gradient is empty.
    D, r = rng.uniform(0.05, 1.0), rng.uniform(0.5, 2.0)
    x, s = points(rng, 30)
    t.compare("driver:pinn_residual", {"wave": [D, r, 0.8]}, 3 * x, s, D, r, **F64)


@RES.case()
def residual_one_point(t, rng):
    t.compare("driver:pinn_residual", random_mlp(rng, [2, 4, 1]), *points(rng, 1), 0.1, 2.0, **F64)


# ---------------------------------------------------------------------------------------------
# 8.3 Classic RK4


def field(rng, d, cubic=False, scale=1.0):
    A = scale * rng.normal(size=(d, d)) / np.sqrt(d)
    if cubic:  # skew part plus damping: y**3 @ A cannot blow up (sum y**4 does not grow)
        A = scale * (A - A.T) / 2 - 0.5 * np.eye(d)
    return {"A": A, "b": (0.3 if cubic else 1.0) * rng.normal(size=d), "cubic": cubic}


def uneven_grid(rng, n, start=0.0):
    return start + np.concatenate([[0.0], np.cumsum(rng.uniform(0.05, 0.4, size=n - 1))])


RK4 = chapter.question(
    "rk4_odeint",
    points=2,
    functions=["rk4_odeint"],
    title="8.3 Classic RK4",
    hint="For each interval, h = t[i+1] - t[i]: k1 = f(t_i, y), k2 = f(t_i + h/2, y + h/2 k1), "
    "k3 = f(t_i + h/2, y + h/2 k2), k4 = f(t_i + h, y + h k3), y += h (k1 + 2 k2 + 2 k3 + k4) / 6 "
    "(the classic weights, not the 3/8 rule of torchdiffeq's 'rk4'); stack y0 and every step; "
    "NumPy in, float64 NumPy out; tensors in, torch.stack out (no in-place updates).",
    forbidden=("torchdiffeq", "scipy.integrate"),
)


@RK4.case(public=True)
def rk4_linear_numpy(t, rng):
    t.compare("driver:rk4_odeint", field(rng, 2), [1.0, 0.0], np.linspace(0, 1, 5), **F64)


@RK4.case(public=True)
def rk4_cubic_tensor(t, rng):
    f = field(rng, 2, cubic=True)
    t.compare("driver:rk4_odeint", f, [0.5, -0.3], np.linspace(0, 1, 6), tensor=True, **F64)


@RK4.case()
def rk4_uneven_grids(t, rng):
    for d, cubic in ((1, False), (3, True), (4, False)):
        f = field(rng, d, cubic, scale=0.8)
        y0 = rng.uniform(-0.8, 0.8, size=d)
        grid = uneven_grid(rng, 9, start=rng.uniform(-1, 1))
        t.compare("driver:rk4_odeint", f, y0, grid, **F64)
        t.compare("driver:rk4_odeint", f, y0, grid, tensor=True, **F64)


@RK4.case()
def rk4_batched_and_single_time(t, rng):
    f = field(rng, 3, cubic=True, scale=0.5)
    y0 = rng.uniform(-0.5, 0.5, size=(4, 3))  # a batch of four initial values
    t.compare("driver:rk4_odeint", f, y0, uneven_grid(rng, 5), **F64)
    t.compare("driver:rk4_odeint", f, y0, uneven_grid(rng, 5), tensor=True, **F64)
    t.compare("driver:rk4_odeint", f, y0[0], [0.3], **F64)  # one time: y0 alone


# ---------------------------------------------------------------------------------------------
# 8.4 Fitting linear dynamics through the solver


def observations(rng, A, times, batch, noise):
    from scipy.linalg import expm

    y0 = rng.normal(size=(batch, A.shape[0]))
    Y = np.stack([y0 @ expm(A * s) for s in times]) + noise * rng.normal(
        size=(len(times), batch, A.shape[0])
    )
    return Y


FIT_Q = chapter.question(
    "fit_linear_dynamics",
    points=2,
    functions=["fit_linear_dynamics"],
    title="8.4 Fitting linear dynamics",
    hint="A = torch.zeros(d, d, float64, requires_grad=True); the loss is the mean over all "
    "entries of (one classic RK4 step of dy/dt = y @ A from Y[i] over h_i - Y[i+1])**2; run "
    "torch.optim.LBFGS(line_search_fn='strong_wolfe') to convergence and return A as a (d, d) "
    "NumPy array. y @ A, not A @ y.",
)

SPIRAL = np.array([[-0.1, 2.0], [-2.0, -0.1]])


@FIT_Q.case(public=True)
def fit_spiral(t, rng):
    times = np.linspace(0, 2, 11)
    t.compare("fit_linear_dynamics", times, observations(rng, SPIRAL, times, 3, 0.005)[:, 0], **FIT)


@FIT_Q.case()
def fit_noisy_batches(t, rng):
    for d in (2, 3):
        A = rng.normal(size=(d, d))
        times = np.linspace(0, 1.5, 11)
        t.compare("fit_linear_dynamics", times, observations(rng, A, times, 4, 0.01), **FIT)


@FIT_Q.case()
def fit_uneven_times(t, rng):
    times = uneven_grid(rng, 10)
    A = 0.7 * rng.normal(size=(2, 2))
    t.compare("fit_linear_dynamics", times, observations(rng, A, times, 3, 0.005), **FIT)
