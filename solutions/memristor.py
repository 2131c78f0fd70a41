"""Reference implementations for chapter 10: analog (memristor) SGD with soft-bounds devices."""

import numpy as np


def soft_bounds_update(w, delta, w_min, w_max, noise_std, rng, up_down=0.0):
    """One pulse update of soft-bounds devices: the new weights, a new float64 array.

    ``w`` and ``delta`` (the requested change, ``-lr * g``) broadcast together; the result has
    their broadcast shape. Exactly one ``xi = rng.standard_normal(shape)`` is drawn per call,
    even when ``noise_std`` is 0, so that every caller consumes the generator alike. Entrywise:

    - ``delta > 0``: ``w + (1 + up_down) delta (1 - w / w_max) (1 + noise_std xi)``;
    - ``delta < 0``: ``w + (1 - up_down) delta (1 - w / w_min) (1 + noise_std xi)``;
    - ``delta == 0``: ``w``;

    then clipped to ``[w_min, w_max]``. Requires ``w_min < 0 < w_max``; the inputs are left
    unchanged.

    Exercise 10.1 in book/ch10_memristor/exercises.ipynb.
    """
    if not (w_min < 0 < w_max):
        raise ValueError(f"need w_min < 0 < w_max, got w_min={w_min}, w_max={w_max}")
    w = np.asarray(w, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    shape = np.broadcast_shapes(w.shape, delta.shape)
    xi = rng.standard_normal(shape)
    up = (1.0 + up_down) * delta * (1.0 - w / w_max)
    down = (1.0 - up_down) * delta * (1.0 - w / w_min)
    step = np.where(delta > 0, up, np.where(delta < 0, down, 0.0))
    return np.clip(w + step * (1.0 + noise_std * xi), w_min, w_max)


def expected_update(w, delta, w_min, w_max, up_down=0.0):
    """The noise-free change ``E[w_new - w]`` of :func:`soft_bounds_update` before clipping.

    ``(1 + up_down) delta (1 - w / w_max)`` where ``delta > 0``, ``(1 - up_down) delta
    (1 - w / w_min)`` where ``delta < 0``, 0 where ``delta == 0``; float64, broadcast shape.
    With ``w_max = -w_min = tau`` and ``up_down = a`` this is
    ``delta (1 - a w / tau) - (|delta| / tau)(w - a tau)``.

    Exercise 10.2 in book/ch10_memristor/exercises.ipynb.
    """
    w = np.asarray(w, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    up = (1.0 + up_down) * delta * (1.0 - w / w_max)
    down = (1.0 - up_down) * delta * (1.0 - w / w_min)
    return np.where(delta > 0, up, np.where(delta < 0, down, 0.0))


def implied_l2(mean_abs_grad, tau):
    """The L2 strength the soft bounds imply, ``lambda = E|g| / tau``, elementwise (float64).

    Exercise 10.3 in book/ch10_memristor/exercises.ipynb.
    """
    return np.asarray(mean_abs_grad, dtype=np.float64) / tau


def analog_sgd(X, y, lr, num_steps, w_min, w_max, noise_std, seed, record_every=1):
    """SGD on the squared loss ``0.5 (x_i . w - y_i)^2`` through soft-bounds devices.

    ``X`` is (n, d); ``y`` is (n,) (weights (d,)) or (n, k) (weights (d, k)). With
    ``rng = np.random.default_rng(seed)`` and ``w = 0``, each step draws ``i =
    rng.integers(n)``, forms ``g = x_i (x_i . w - y_i)`` (an outer product when y is 2-D) and
    sets ``w = soft_bounds_update(w, -lr g, w_min, w_max, noise_std, rng)``. Returns a float64
    array of shape ``(num_steps // record_every + 1, *w.shape)``: w at steps 0, r, 2r, ...

    Exercise 10.4 in book/ch10_memristor/exercises.ipynb.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    w = np.zeros((X.shape[1],) + y.shape[1:])
    out = [w]
    for step in range(1, num_steps + 1):
        i = rng.integers(n)
        x = X[i]
        g = np.multiply.outer(x, x @ w - y[i])
        w = soft_bounds_update(w, -lr * g, w_min, w_max, noise_std, rng)
        if step % record_every == 0:
            out.append(w)
    return np.array(out)
