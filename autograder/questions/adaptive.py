"""Chapter 3's graded questions: AdaGrad, EMA weights, RMSprop, Adam/AMSGrad, AdamW, and CUDA."""

import numpy as np

from autograder import spec
from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("adaptive", number=3, notebook="book/ch03_adaptive/exercises.ipynb")

TRAJECTORY = "driver:optimizer_trajectory"
# float32 runs: a few ulps per step of legitimately different operation order, over 20 steps
FLOAT32 = dict(rtol=1e-4, atol=1e-5)
# float64 runs, the tolerance the notebook states: a textbook Adam (m / (1 - beta1^t) and
# v / (1 - beta2^t) formed separately, no lerp/addcdiv) differs from torch.optim.Adam by at most
# 9e-16 absolute over these 40-step runs, three orders below atol. State kept in float32 (about
# 1e-7 relative per step) or a step count kept as a float32 tensor (1 - 0.999^t is then wrong in
# the fifth digit) misses it in every measured run, as does any wrong update rule.
FLOAT64 = dict(rtol=1e-9, atol=1e-12)
# CUDA against CPU, both float64: the model's reductions may sum in another order on the GPU
# (~1e-16 per operation), so the comparison keeps a margin of a few orders over FLOAT64.
CUDA = dict(rtol=1e-7, atol=1e-10)

# The returned paths, named as the notebook names the parameters.
PATHS = {
    "W1": "W1 after each step",
    "b1": "b1 after each step",
    "W2": "W2 after each step",
    "b2": "b2 after each step",
    "frozen": "the parameter without a gradient",
    "late": "the parameter that starts training late",
    "loss": "the loss step(closure) returned",
}

# The constructor arguments and defaults of torch.optim's classes, as the issue fixes them.
DEFAULTS = {
    "AdaGrad": dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10),
    "RMSprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0),
    "Adam": dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0, amsgrad=False),
    "AdamW": dict(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=1e-2, amsgrad=False),
}


def mlp_problem(rng, n=12, d=3, h=4, k=2):
    """Weights, inputs and targets for the driver's tanh network ``W2 tanh(W1 x + b1) + b2``."""
    weights = {
        "W1": rng.normal(size=(h, d)) / np.sqrt(d),
        "b1": 0.1 * rng.normal(size=h),
        "W2": rng.normal(size=(k, h)) / np.sqrt(h),
        "b2": 0.1 * rng.normal(size=k),
    }
    return weights, rng.normal(size=(n, d)), rng.normal(size=(n, k))


def fixed_problem():
    """The small problem of the public cases (the same in every run)."""
    return mlp_problem(np.random.default_rng(2018), n=8, d=2, h=3, k=1)


def random_problem(rng):
    n, d, h, k = (int(v) for v in rng.integers([6, 1, 1, 1], [20, 6, 7, 4]))
    return mlp_problem(rng, n, d, h, k), int(rng.integers(1, n + 1))


def compare_run(t, name, problem, kwargs, num_steps, **options):
    weights, X, y = problem
    tol = FLOAT32 if options.get("dtype") == "float32" else FLOAT64
    args = (name, weights, X, y, kwargs, num_steps)
    want = t.reference(TRAJECTORY, *args, **options)
    got = t.student(TRAJECTORY, *args, **options)
    assert_close(got, want, **tol, what=name, names=PATHS)


def late_parameter(t, name, rng, kwargs, num_steps=20):
    """A parameter idle (grad None) for the first few steps, then trained: its step count and
    state start at its own first step, not the optimizer's (issue 13, per-parameter state)."""
    problem, batch_size = random_problem(rng)
    late = rng.normal(size=int(rng.integers(1, 5)))
    start = int(rng.integers(3, 8))
    compare_run(
        t, name, problem, kwargs, num_steps, batch_size=batch_size, late=late, late_start=start
    )


def compare_defaults(t, name):
    """param_groups[0] of an optimizer built from parameters only holds torch's defaults."""
    keys = list(DEFAULTS[name])
    got = t.student("driver:optimizer_defaults", name, keys)
    for key, want in DEFAULTS[name].items():
        value = got[key]
        if value == "missing":
            raise AssertionError(f"{name}(params).param_groups[0] has no {key!r} entry")
        if isinstance(want, bool):
            assert value is want or value == want, f"default {key} of {name} is wrong"
        else:
            assert_close(value, want, rtol=1e-12, atol=0, what=f"default {key} of {name}")


def groups_frozen_closure(t, name, rng, options_a, options_b, steps=25):
    """Two parameter groups with their own settings, an unused parameter, and step(closure)."""
    problem, batch_size = random_problem(rng)
    groups = [
        {"params": ["W1", "b1"], **options_a},
        {"params": ["W2", "b2", "frozen"], **options_b},
    ]
    compare_run(
        t,
        name,
        problem,
        {},
        steps,
        groups=groups,
        frozen=rng.normal(size=3),
        closure=True,
        batch_size=batch_size,
    )


def random_eps(rng):
    return float(rng.choice([1e-3, 1e-2, 1e-1]))


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "adagrad",
    points=2,
    functions=["AdaGrad"],
    forbidden=spec.TORCH_OPTIMIZERS,
    title="3.1 AdaGrad",
    hint="Follow torch.optim.Adagrad: add weight_decay * p to the gradient, decay the rate as "
    "lr / (1 + (t - 1) * lr_decay) with t counted per parameter from 1, start the sum at the "
    "initial_accumulator_value of the parameter's own group (torch.optim.Adagrad uses the "
    "constructor's value for every group; the notebook asks for the group's), add eps after the "
    "square root, and skip parameters whose grad is None.",
)


@Q.case(public=True)
def adagrad_defaults(t, rng):
    compare_defaults(t, "AdaGrad")
    compare_run(t, "AdaGrad", fixed_problem(), None, 20)


@Q.case(public=True)
def adagrad_all_options(t, rng):
    kwargs = dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=0.01)
    compare_run(t, "AdaGrad", fixed_problem(), kwargs, 20, batch_size=3)


@Q.case()
def adagrad_random(t, rng):
    problem, batch_size = random_problem(rng)
    kwargs = dict(
        lr=float(10 ** rng.uniform(-2, -0.5)),
        lr_decay=float(rng.choice([0.0, 0.01, 0.1])),
        weight_decay=float(rng.choice([0.0, 0.2])),
        initial_accumulator_value=float(rng.choice([0.0, 0.1, 1.0])),
        eps=random_eps(rng),
    )
    compare_run(t, "AdaGrad", problem, kwargs, 50, batch_size=batch_size)


@Q.case()
def adagrad_groups_frozen_closure(t, rng):
    groups_frozen_closure(
        t,
        "AdaGrad",
        rng,
        dict(lr=0.05, lr_decay=0.1, eps=1e-2),
        dict(lr=0.2, weight_decay=0.3, initial_accumulator_value=0.2),
    )


@Q.case()
def adagrad_late_parameter(t, rng):
    late_parameter(t, "AdaGrad", rng, dict(lr=0.05, lr_decay=0.2, eps=1e-3))


@Q.case()
def adagrad_float32(t, rng):
    problem, batch_size = random_problem(rng)
    compare_run(t, "AdaGrad", problem, dict(lr=0.05), 20, dtype="float32", batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "ema_weights",
    points=1,
    functions=["ema_weights"],
    title="3.2 EMA weights",
    hint="Unroll s_t = rho * s_{t-1} + (1 - rho) * x_t from s_0 = 0: the input seen k steps ago "
    "is multiplied by rho once per later step. Return them oldest first, newest last, and raise "
    "ValueError for rho outside [0, 1] or a negative num_steps.",
)


@Q.case(public=True)
def ema_half(t, rng):
    t.compare("driver:ema_of_impulse", 0.5, 4)


@Q.case(public=True)
def ema_ninety(t, rng):
    t.compare("driver:ema_of_impulse", 0.9, 30)


@Q.case()
def ema_random(t, rng):
    for _ in range(4):
        t.compare("driver:ema_of_impulse", float(rng.uniform(0, 1)), int(rng.integers(1, 400)))


@Q.case()
def ema_edges(t, rng):
    t.compare("driver:ema_of_impulse", 0.0, 5)  # no memory: all weight on the newest input
    t.compare("driver:ema_of_impulse", 0.99, 1)
    t.compare("driver:ema_of_impulse", float(rng.uniform(0, 1)), 0)  # no inputs: empty


@Q.case()
def ema_rejects_bad_input(t, rng):
    t.expect_error(ValueError, "ema_weights", float(rng.uniform(1.01, 2.0)), 3)
    t.expect_error(ValueError, "ema_weights", -0.5, 3)
    t.expect_error(ValueError, "ema_weights", 0.5, -1)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "rmsprop",
    points=2,
    functions=["RMSprop"],
    forbidden=spec.TORCH_OPTIMIZERS,
    title="3.3 RMSprop",
    hint="Follow torch.optim.RMSprop: v <- alpha v + (1 - alpha) g^2 from v = 0, with "
    "weight_decay * p added to g first; divide by sqrt(v) + eps (eps outside the root); skip "
    "parameters whose grad is None; keep v in the parameter's dtype.",
)


@Q.case(public=True)
def rmsprop_defaults(t, rng):
    compare_defaults(t, "RMSprop")
    compare_run(t, "RMSprop", fixed_problem(), None, 20)


@Q.case(public=True)
def rmsprop_large_eps(t, rng):
    kwargs = dict(lr=0.01, alpha=0.9, eps=0.01, weight_decay=0.1)
    compare_run(t, "RMSprop", fixed_problem(), kwargs, 20, batch_size=3)


@Q.case()
def rmsprop_random(t, rng):
    problem, batch_size = random_problem(rng)
    kwargs = dict(
        lr=float(10 ** rng.uniform(-3, -1.5)),
        alpha=float(rng.choice([0.5, 0.9, 0.99])),
        eps=random_eps(rng),
        weight_decay=float(rng.choice([0.0, 0.2])),
    )
    compare_run(t, "RMSprop", problem, kwargs, 50, batch_size=batch_size)


@Q.case()
def rmsprop_groups_frozen_closure(t, rng):
    groups_frozen_closure(
        t, "RMSprop", rng, dict(lr=0.01, alpha=0.8, eps=1e-2), dict(lr=0.003, weight_decay=0.3)
    )


@Q.case()
def rmsprop_late_parameter(t, rng):
    late_parameter(t, "RMSprop", rng, dict(lr=0.01, alpha=0.9, eps=1e-3))


@Q.case()
def rmsprop_float32(t, rng):
    problem, batch_size = random_problem(rng)
    compare_run(t, "RMSprop", problem, dict(lr=0.003), 20, dtype="float32", batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "adam",
    points=3,
    functions=["Adam"],
    forbidden=spec.TORCH_OPTIMIZERS,
    title="3.4 Adam and AMSGrad",
    hint="Follow torch.optim.Adam: L2 weight decay goes into the gradient; update both moments "
    "from zero; divide m by 1 - beta1^t and sqrt(v) by sqrt(1 - beta2^t), with t counted per "
    "parameter from 1 (a Python int, not a float32 tensor); add eps after the root; with "
    "amsgrad keep the running maximum of the raw v and use it in place of v. Keep m and v in "
    "the parameter's dtype: float64 runs are compared at rtol 1e-9.",
)


@Q.case(public=True)
def adam_defaults(t, rng):
    compare_defaults(t, "Adam")
    compare_run(t, "Adam", fixed_problem(), None, 20)


@Q.case(public=True)
def adam_large_eps_and_decay(t, rng):
    kwargs = dict(lr=0.01, betas=(0.8, 0.9), eps=0.01, weight_decay=0.1)
    compare_run(t, "Adam", fixed_problem(), kwargs, 20, batch_size=3)


@Q.case(public=True)
def amsgrad(t, rng):
    kwargs = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, amsgrad=True)
    compare_run(t, "Adam", fixed_problem(), kwargs, 30, batch_size=2)


@Q.case()
def adam_random(t, rng):
    for amsgrad_on in (False, True):
        problem, batch_size = random_problem(rng)
        kwargs = dict(
            lr=float(10 ** rng.uniform(-3, -1.5)),
            betas=(float(rng.choice([0.0, 0.5, 0.9])), float(rng.choice([0.9, 0.99, 0.999]))),
            eps=random_eps(rng),
            weight_decay=float(rng.choice([0.0, 0.2])),
            amsgrad=amsgrad_on,
        )
        compare_run(t, "Adam", problem, kwargs, 40, batch_size=batch_size)


@Q.case()
def adam_groups_frozen_closure(t, rng):
    groups_frozen_closure(
        t,
        "Adam",
        rng,
        dict(lr=0.01, betas=(0.5, 0.9), eps=1e-2),
        dict(lr=0.003, weight_decay=0.3, amsgrad=True),
    )


@Q.case()
def adam_late_parameter(t, rng):
    for amsgrad_on in (False, True):
        kwargs = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-3, amsgrad=amsgrad_on)
        late_parameter(t, "Adam", rng, kwargs)


@Q.case()
def adam_float32(t, rng):
    problem, batch_size = random_problem(rng)
    compare_run(t, "Adam", problem, dict(lr=0.003), 20, dtype="float32", batch_size=batch_size)


@Q.case()
def reddi_counterexample(t, rng):
    C = 3.0
    for amsgrad_on in (False, True):
        kwargs = dict(betas=(0.0, 1 / (1 + C**2)), amsgrad=amsgrad_on)
        x0 = float(rng.uniform(-1, 1))
        args = ("Adam", kwargs, 300, C, 0.5, x0)
        want = t.reference("driver:reddi_online", *args)
        got = t.student("driver:reddi_online", *args)
        assert_close(got, want, **FLOAT64, what="Adam's x_t on Reddi et al.'s problem")


# ---------------------------------------------------------------------------------------------
Q = chapter.question(
    "adamw",
    points=2,
    functions=["AdamW"],
    forbidden=spec.TORCH_OPTIMIZERS,
    title="3.5 AdamW",
    hint="Follow torch.optim.AdamW: multiply p by 1 - lr * weight_decay before the Adam step, and "
    "leave the gradient, and therefore both moments, untouched by the decay.",
)


@Q.case(public=True)
def adamw_defaults(t, rng):
    compare_defaults(t, "AdamW")
    compare_run(t, "AdamW", fixed_problem(), None, 20)


@Q.case(public=True)
def adamw_strong_decay(t, rng):
    kwargs = dict(lr=0.01, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.5)
    compare_run(t, "AdamW", fixed_problem(), kwargs, 20, batch_size=3)


@Q.case()
def adamw_random(t, rng):
    for amsgrad_on in (False, True):
        problem, batch_size = random_problem(rng)
        kwargs = dict(
            lr=float(10 ** rng.uniform(-2.5, -1.5)),
            betas=(float(rng.choice([0.0, 0.5, 0.9])), float(rng.choice([0.9, 0.99, 0.999]))),
            eps=random_eps(rng),
            weight_decay=float(rng.choice([0.1, 0.5, 1.0])),
            amsgrad=amsgrad_on,
        )
        compare_run(t, "AdamW", problem, kwargs, 40, batch_size=batch_size)


@Q.case()
def adamw_groups_frozen_closure(t, rng):
    groups_frozen_closure(
        t,
        "AdamW",
        rng,
        dict(lr=0.01, weight_decay=0.0, eps=1e-2),
        dict(lr=0.005, weight_decay=0.5, amsgrad=True),
    )


@Q.case()
def adamw_late_parameter(t, rng):
    late_parameter(t, "AdamW", rng, dict(lr=0.01, eps=1e-3, weight_decay=0.1, amsgrad=True))


@Q.case()
def adamw_float32(t, rng):
    problem, batch_size = random_problem(rng)
    kwargs = dict(lr=0.003, weight_decay=0.1)
    compare_run(t, "AdamW", problem, kwargs, 20, dtype="float32", batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
CUDA_SETTINGS = {
    "AdaGrad": dict(lr=0.05, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.1),
    "RMSprop": dict(lr=0.005, alpha=0.9, eps=1e-2, weight_decay=0.1),
    "Adam": dict(lr=0.005, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.1, amsgrad=True),
    "AdamW": dict(lr=0.005, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.5, amsgrad=True),
}

Q = chapter.question(
    "cuda_matches_cpu",
    points=1,
    functions=list(CUDA_SETTINGS),
    forbidden=spec.TORCH_OPTIMIZERS,
    gpu=True,
    title="3.6 On the GPU",
    hint="Create every state tensor with torch.zeros_like / torch.full_like (or pass "
    "device=p.device), so that it lives on the parameter's device; keep Python numbers such "
    "as the step count and bias corrections on the host.",
)


@Q.case(public=True)
def cuda_equals_cpu(t, rng):
    """Each class on CUDA tensors follows the reference's CPU trajectory (float64)."""
    weights, X, y = fixed_problem()
    for name, kwargs in CUDA_SETTINGS.items():
        frozen = np.array([1.0, -2.0])
        groups = [{"params": ["W1", "b1", "frozen"]}, {"params": ["W2", "b2"], "lr": 0.02}]
        args = (name, weights, X, y, kwargs, 30)
        opts = dict(groups=groups, frozen=frozen, batch_size=3)
        want = t.reference(TRAJECTORY, *args, **opts, device="cpu")
        got = t.student(TRAJECTORY, *args, **opts, device="cuda")
        on_cuda = {k: f"{v} ({name} on CUDA)" for k, v in PATHS.items()}
        assert_close(got, want, **CUDA, what=f"{name} on CUDA", names=on_cuda)
