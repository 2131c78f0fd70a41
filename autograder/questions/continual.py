"""Chapter 7's graded questions: permuted tasks, the diagonal Fisher, the EWC penalty, accuracy."""

import numpy as np

from autograder.compare import assert_close
from autograder.spec import Chapter

chapter = Chapter("continual", number=7, notebook="book/ch07_continual/exercises.ipynb")

# float64: the Fisher is a mean of n squared per-sample gradients; a loop, vmap or a batched
# formula sum the same terms in different orders and agree to ~1e-15 relative. The prompts
# promise 1e-9 (relative; 1e-12 absolute for entries that are 0, e.g. behind a dead ReLU).
F64 = {"rtol": 1e-9, "atol": 1e-12}
# float32: ~1e-7 per operation over a few hundred of them; the prompt promises 1e-4 / 1e-8.
F32 = {"rtol": 1e-4, "atol": 1e-8}


def random_net(rng, widths, activation="tanh", frozen=(), scale=1.0, dtype="float64"):
    """Plain data for a Sequential MLP (see autograder/kernel/continual.py)."""
    state = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        state[f"{2 * i}.weight"] = scale * rng.normal(size=(b, a)) / np.sqrt(a)
        state[f"{2 * i}.bias"] = 0.5 * rng.normal(size=b)
    return {
        "widths": list(widths),
        "activation": activation,
        "state": state,
        "frozen": list(frozen),
        "dtype": dtype,
    }


def inputs(rng, n, d, k, dtype="float64"):
    return rng.normal(size=(n, d)).astype(dtype), rng.integers(0, k, size=n).astype(np.int64)


def param_names(net):
    return [n for n in net["state"] if n not in net["frozen"]]


def check_fisher(t, net, X, y=None, tol=F64):
    args = (net, X) if y is None else (net, X, y)
    want = t.reference("driver:fisher_diagonal", *args)
    got = t.student("driver:fisher_diagonal", *args)
    if not isinstance(got, dict):
        raise AssertionError("fisher_diagonal: expected a dict from parameter name to tensor")
    if set(got) != set(want):
        frozen = [n for n in net["frozen"] if n in got]
        if frozen:
            raise AssertionError(
                f"fisher_diagonal: the frozen parameter {frozen[0]!r} (requires_grad=False) "
                "must be left out of the dict"
            )
    assert_close(got, want, what="fisher_diagonal", **tol)
    for name in want:
        if got[name].dtype != want[name].dtype:
            raise AssertionError(
                f"fisher_diagonal[{name!r}] has dtype {got[name].dtype}; expected the "
                f"parameter's dtype, {want[name].dtype}"
            )


# ---------------------------------------------------------------------------------------------
# 7.1 A permuted task.

PERMUTE = chapter.question(
    "permute_pixels",
    points=1,
    functions=["permute_pixels"],
    title="7.1 Permuted pixels",
    hint="perm = np.random.default_rng(seed).permutation(X.shape[1]); return X[:, perm], a new "
    "array (columns reordered, rows kept; X itself unchanged).",
)


@PERMUTE.case(public=True)
def permute_small(t, rng):
    X = np.arange(12.0).reshape(3, 4)
    t.compare("permute_pixels", X, 1)
    t.compare("permute_pixels", X, 7)


@PERMUTE.case()
def permute_random(t, rng):
    for n, d in [(5, 64), (1, 9), (30, 1), (4, 2)]:
        X = rng.uniform(size=(n, d))
        t.compare("permute_pixels", X, int(rng.integers(0, 2**31)))


@PERMUTE.case()
def permute_same_order_for_both_splits(t, rng):
    seed = int(rng.integers(0, 1000))
    for n in (7, 11):
        t.compare("permute_pixels", rng.integers(0, 17, size=(n, 16)).astype(float), seed)


# ---------------------------------------------------------------------------------------------
# 7.2 and 7.3 The diagonal Fisher: with labels (empirical) and with the model's own labels.

FISHER = chapter.question(
    "fisher_diagonal",
    points=3,
    functions=["fisher_diagonal"],
    title="7.2 The empirical Fisher",
    hint="For each sample alone, g = grad of log_softmax(model(x_i[None]))[0, y_i] with respect "
    "to every parameter that requires grad; the Fisher is the mean over i of g**2 (square per "
    "sample, then the mean, not the sum and not the square of the mean). Frozen parameters are "
    "left out; return detached tensors in the parameter's dtype.",
)


@FISHER.case(public=True)
def fisher_small(t, rng):
    net = random_net(rng, [3, 4, 2], "relu")
    check_fisher(t, net, *inputs(rng, 5, 3, 2))


@FISHER.case(public=True)
def fisher_frozen_layer(t, rng):
    net = random_net(rng, [3, 5, 3], "tanh", frozen=["0.weight"])
    check_fisher(t, net, *inputs(rng, 6, 3, 3))


@FISHER.case()
def fisher_random_nets(t, rng):
    for widths, act in [([4, 6, 3], "tanh"), ([5, 8, 8, 4], "relu"), ([2, 10], "tanh")]:
        net = random_net(rng, widths, act)
        check_fisher(t, net, *inputs(rng, 17, widths[0], widths[-1]))


@FISHER.case()
def fisher_one_sample_and_repeats(t, rng):
    net = random_net(rng, [4, 5, 3], "tanh")
    X, y = inputs(rng, 1, 4, 3)
    check_fisher(t, net, X, y)  # n = 1: mean = sum = square of the mean
    check_fisher(t, net, np.repeat(X, 4, axis=0), np.repeat(y, 4))
    X2, y2 = inputs(rng, 2, 4, 3)
    check_fisher(t, net, X2, y2)  # two different samples: mean of squares != square of mean


@FISHER.case()
def fisher_frozen_per_parameter(t, rng):
    # Biases frozen, weights trained; then the last layer frozen, the first trained.
    net = random_net(rng, [4, 6, 5, 3], "relu", frozen=["0.bias", "2.bias", "4.bias"])
    check_fisher(t, net, *inputs(rng, 9, 4, 3))
    net = random_net(rng, [4, 6, 3], "tanh", frozen=["2.weight", "2.bias"])
    check_fisher(t, net, *inputs(rng, 9, 4, 3))


@FISHER.case()
def fisher_confident_model(t, rng):
    # Large weights: p(y|x) near 0 or 1, the squared gradients span many orders of magnitude.
    net = random_net(rng, [6, 8, 4], "tanh", scale=6.0)
    check_fisher(t, net, *inputs(rng, 12, 6, 4))


@FISHER.case()
def fisher_float32(t, rng):
    net = random_net(rng, [5, 7, 4], "relu", dtype="float32")
    check_fisher(t, net, *inputs(rng, 10, 5, 4, "float32"), tol=F32)


MODEL_FISHER = chapter.question(
    "model_fisher",
    points=2,
    functions=["fisher_diagonal"],
    title="7.3 The model's Fisher (y=None)",
    hint="With y=None the labels come from the model: for each sample, sum over every class c "
    "of p(c|x_i) * (grad log p(c|x_i))**2, exactly (no sampling, not the argmax class), then "
    "the mean over samples. p is the softmax of the logits, not differentiated.",
)


@MODEL_FISHER.case(public=True)
def model_fisher_small(t, rng):
    net = random_net(rng, [3, 4, 3], "tanh")
    check_fisher(t, net, inputs(rng, 4, 3, 3)[0])


@MODEL_FISHER.case()
def model_fisher_random_nets(t, rng):
    for widths, act in [([4, 6, 2], "relu"), ([5, 8, 8, 10], "tanh"), ([3, 5], "tanh")]:
        net = random_net(rng, widths, act)
        check_fisher(t, net, inputs(rng, 11, widths[0], widths[-1])[0])


@MODEL_FISHER.case()
def model_fisher_confident_and_uncertain(t, rng):
    for scale in (0.05, 5.0):  # p near uniform; p near one-hot (argmax alone is then close)
        net = random_net(rng, [4, 6, 5], "tanh", scale=scale)
        check_fisher(t, net, inputs(rng, 8, 4, 5)[0])


@MODEL_FISHER.case()
def model_fisher_frozen_and_float32(t, rng):
    net = random_net(rng, [4, 6, 3], "relu", frozen=["0.weight"])
    check_fisher(t, net, inputs(rng, 7, 4, 3)[0])
    net = random_net(rng, [4, 6, 3], "tanh", dtype="float32")
    check_fisher(t, net, inputs(rng, 7, 4, 3, "float32")[0], tol=F32)


# ---------------------------------------------------------------------------------------------
# 7.4 The EWC penalty.

PENALTY = chapter.question(
    "ewc_penalty",
    points=2,
    functions=["ewc_penalty"],
    title="7.4 The EWC penalty",
    hint="(lam / 2) * sum over the names in fisher of (F * (theta - anchor)**2).sum(), with theta "
    "the model's own parameter (not a copy or .data), so that autograd gives lam F (theta - "
    "anchor). Names missing from fisher add nothing; a fisher name the model lacks raises "
    "KeyError. Return a 0-dim tensor.",
)


def penalty_inputs(rng, net, names=None, spread=0.5):
    names = param_names(net) if names is None else names
    fisher = {n: rng.exponential(size=np.shape(net["state"][n])) for n in names}
    anchor = {
        n: np.asarray(v) + spread * rng.normal(size=np.shape(v)) for n, v in net["state"].items()
    }
    return fisher, anchor


def check_penalty(t, net, fisher, anchor, lam):
    args = (net, fisher, anchor, lam)
    want = t.reference("driver:ewc_penalty", *args)
    got = t.student("driver:ewc_penalty", *args)
    if not (isinstance(got, dict) and set(got) == {"value", "grad"}):
        raise AssertionError("ewc_penalty: the call could not be checked")
    # float64 sums of a few hundred products: 1e-10 relative (the prompt's promise).
    assert_close(got["value"], want["value"], rtol=1e-10, atol=1e-12, what="the penalty")
    grad_names = {n: f"the penalty's gradient for {n!r}" for n in want["grad"]}
    assert_close(got["grad"], want["grad"], rtol=1e-10, atol=1e-12, names=grad_names)


@PENALTY.case(public=True)
def penalty_small(t, rng):
    net = random_net(rng, [2, 3, 2], "tanh")
    check_penalty(t, net, *penalty_inputs(rng, net), 1.0)


@PENALTY.case(public=True)
def penalty_rejects_unknown_name(t, rng):
    net = random_net(rng, [2, 3, 2], "tanh")
    fisher, anchor = penalty_inputs(rng, net)
    fisher["4.weight"] = np.ones((2, 2))
    anchor["4.weight"] = np.zeros((2, 2))
    t.expect_error(KeyError, "driver:ewc_penalty", net, fisher, anchor, 1.0)


@PENALTY.case()
def penalty_random(t, rng):
    for widths, lam in [([4, 6, 3], 100.0), ([5, 8, 8, 2], 0.3), ([3, 1], 7.0)]:
        net = random_net(rng, widths, "relu")
        check_penalty(t, net, *penalty_inputs(rng, net), lam)


@PENALTY.case()
def penalty_names_subset(t, rng):
    # Only some parameters carry a Fisher: the others add nothing and get a zero gradient.
    net = random_net(rng, [4, 5, 3], "tanh")
    check_penalty(t, net, *penalty_inputs(rng, net, names=["2.weight"]), 10.0)
    check_penalty(t, net, *penalty_inputs(rng, net, names=["0.bias", "2.bias"]), 2.0)


@PENALTY.case()
def penalty_at_and_near_the_anchor(t, rng):
    net = random_net(rng, [3, 4, 2], "relu")
    fisher, _ = penalty_inputs(rng, net)
    at = {n: np.array(v) for n, v in net["state"].items()}
    check_penalty(t, net, fisher, at, 50.0)  # 0, with gradient 0
    check_penalty(t, net, *penalty_inputs(rng, net, spread=1e-4), 50.0)


@PENALTY.case()
def penalty_unknown_name_hidden(t, rng):
    net = random_net(rng, [3, 4, 2], "tanh")
    fisher, anchor = penalty_inputs(rng, net, names=["0.weight"])
    fisher["1.weight"] = np.ones((4, 3))  # index 1 is the activation, which has no parameters
    anchor["1.weight"] = np.zeros((4, 3))
    t.expect_error(KeyError, "driver:ewc_penalty", net, fisher, anchor, 1.0)


# ---------------------------------------------------------------------------------------------
# 7.5 Accuracy.

ACCURACY = chapter.question(
    "accuracy",
    points=1,
    functions=["accuracy"],
    title="7.5 Accuracy",
    hint="Under torch.no_grad(): (model(X).argmax(dim=1) == y).float().mean(), returned as a "
    "Python float (float(...) or .item()).",
)


@ACCURACY.case(public=True)
def accuracy_small(t, rng):
    net = random_net(rng, [3, 4, 3], "relu")
    X, y = inputs(rng, 10, 3, 3)
    t.compare("driver:accuracy", net, X, y, rtol=0, atol=1e-15)


@ACCURACY.case()
def accuracy_random(t, rng):
    for n, widths in [(1, [2, 3]), (37, [5, 8, 4]), (200, [6, 10, 10])]:
        net = random_net(rng, widths, "tanh", scale=3.0)
        X, y = inputs(rng, n, widths[0], widths[-1])
        t.compare("driver:accuracy", net, X, y, rtol=0, atol=1e-15)


@ACCURACY.case()
def accuracy_ties_and_extremes(t, rng):
    net = random_net(rng, [3, 4, 5], "tanh")
    net["state"]["2.weight"] = np.zeros((5, 4))
    net["state"]["2.bias"] = np.zeros(5)  # every logit equal: argmax is class 0
    X, y = inputs(rng, 20, 3, 5)
    t.compare("driver:accuracy", net, X, y, rtol=0, atol=1e-15)
    t.compare("driver:accuracy", net, X, np.zeros(20, dtype=np.int64), rtol=0, atol=0)
