"""Kernel side of a call: read plain-data arguments, run a driver or function, write the result.

Injected as source into the student's kernel after ``wire.py`` (so ``dump``, ``load`` and
``describe_exception`` are in scope), and used in-process by ``check()`` and for the reference.
A *driver* is a trusted function from ``autograder/kernel/<chapter>.py`` called as
``driver(ns, *args, **kwargs)`` with ``ns`` the namespace holding the functions under test; it
builds what cannot cross as data (a gradient callable, a torch model) and returns plain data.
"""

import json  # noqa: F811 -- also imported by wire.py when both are injected together
import os  # noqa: F811
import sys
import time


class LibraryShortcut(Exception):
    """The function under test called into a module its exercise asks it to do without."""


class InputModified(Exception):
    """The call changed an argument the grader passed in: the course's rule is that every
    function leaves its caller's arrays, tensors, lists and dicts as it found them."""


def _snapshot(value):
    """A deep copy of the containers and arrays of an argument (other values as they are)."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_snapshot(v) for v in value)
    if hasattr(value, "detach") and hasattr(value, "clone"):  # a torch tensor
        return value.detach().clone()
    if hasattr(value, "copy") and hasattr(value, "dtype"):  # a NumPy array
        return value.copy()
    return value


def _unchanged(now, before):
    """Is ``now`` still equal to its snapshot ``before`` (same type, shape, dtype, values)?"""
    if type(now) is not type(before):
        return False
    if isinstance(before, dict):
        return list(now) == list(before) and all(_unchanged(now[k], before[k]) for k in before)
    if isinstance(before, list | tuple):
        return len(now) == len(before) and all(_unchanged(a, b) for a, b in zip(now, before))
    if hasattr(before, "detach") and hasattr(before, "clone"):
        now, before = now.detach().cpu().numpy(), before.detach().cpu().numpy()
    if hasattr(before, "dtype") and hasattr(before, "shape"):
        import numpy

        if now.shape != before.shape or now.dtype != before.dtype:
            return False
        return bool(numpy.array_equal(now, before, equal_nan=now.dtype.kind in "fc"))
    return True


def _argument_names(fn, target, count):
    """Names for the positional arguments of a call (the driver's or the function's own)."""
    import inspect

    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    if target.startswith("driver:"):
        names = names[1:]  # a driver's first parameter is the notebook namespace
    return [names[i] if i < len(names) else f"argument {i + 1}" for i in range(count)]


def call_checked(fn, target, args, kwargs, forbid):
    """``call_watched``, then InputModified if any argument differs from its state before.

    The grader's arguments travel as data, so a driver that passes them on (``np.asarray`` of
    a float64 array is the array itself) lets this see what the notebook's function did to them.
    """
    before_args, before_kwargs = _snapshot(list(args)), _snapshot(dict(kwargs))
    value = call_watched(fn, args, kwargs, forbid)
    names = _argument_names(getattr(fn, "driver", fn), target, len(args))
    changed = [n for n, a, b in zip(names, args, before_args) if not _unchanged(a, b)]
    changed += [k for k in before_kwargs if not _unchanged(kwargs.get(k), before_kwargs[k])]
    if changed:
        what = ", ".join(f"`{n}`" for n in changed)
        raise InputModified(
            f"{what} {'was' if len(changed) == 1 else 'were'} modified in place by the call; "
            "leave the caller's inputs unchanged (work on a copy)"
        )
    return value


class _Watch:
    """A profile hook that notes the first call into a module of ``forbid`` or a submodule."""

    def __init__(self, forbid):
        self.modules = frozenset(forbid)
        self.prefixes = tuple(f"{m}." for m in forbid)
        self.hit = None

    def __call__(self, frame, event, arg):
        if event == "call" and self.hit is None:
            name = frame.f_globals.get("__name__")
            if isinstance(name, str) and (name in self.modules or name.startswith(self.prefixes)):
                self.hit = (name, frame.f_code.co_qualname)


def call_watched(fn, args, kwargs, forbid):
    """``fn(*args, **kwargs)``, raising LibraryShortcut if it called into a module of ``forbid``.

    A profile hook is cheap to evade on purpose; it is there so that ``Adam = torch.optim.Adam``
    or a gradient taken with autograd is marked as what it is, not as a correct answer.
    """
    if not forbid:
        return fn(*args, **kwargs)
    watch = _Watch(forbid)
    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        value = fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    if watch.hit is not None:
        module, where = watch.hit
        top = next(m for m in sorted(watch.modules) if module == m or module.startswith(m + "."))
        raise LibraryShortcut(
            f"calls {module}.{where}: this exercise asks you to write it yourself, without {top}"
        )
    return value


class Harness:
    """Answers requests ``{target, args, kwargs}`` written under a request folder."""

    def __init__(self, drivers, namespace):
        self.drivers = (
            {k: v for k, v in vars(drivers).items() if callable(v) and not k.startswith("_")}
            if drivers is not None
            else {}
        )
        self.namespace = namespace

    def resolve(self, target):
        if target.startswith("driver:"):
            name = target[len("driver:") :]
            fn = self.drivers.get(name)
            if fn is None:
                raise LookupError(f"no driver named {name}")
            bound = lambda *a, **k: fn(self.namespace, *a, **k)  # noqa: E731
            bound.driver = fn  # for the argument names in call_checked's message
            return bound
        if target not in self.namespace:
            raise NameError(f"name '{target}' is not defined in the notebook")
        return self.namespace[target]

    def call(self, folder, out=None):
        """Run ``folder/request``; write ``result`` and ``status.json`` into ``out`` (default
        ``folder``; the sandboxed grader passes a writable ``out`` and a read-only ``folder``)."""
        start = time.perf_counter()
        out = folder if out is None else out
        os.makedirs(out, exist_ok=True)
        status = {"ok": False}
        try:
            request = load(os.path.join(folder, "request"), tensors=True)  # noqa: F821
            fn = self.resolve(request["target"])
            value = call_checked(
                fn, request["target"], request["args"], request["kwargs"], request.get("forbid")
            )
            dump(value, os.path.join(out, "result"))  # noqa: F821
            status = {"ok": True}
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 -- SystemExit from student code is an error too
            status = {"ok": False, "error": describe_exception(exc)}  # noqa: F821
        status["seconds"] = time.perf_counter() - start
        tmp = os.path.join(out, "status.json.tmp")
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.replace(tmp, os.path.join(out, "status.json"))
        return status["ok"]

    def environment(self):
        """What the grader records: versions and the GPU, as plain data."""
        import platform
        import sys

        info = {"python": platform.python_version(), "cuda": False, "gpu": None}
        np = sys.modules.get("numpy")
        info["numpy"] = getattr(np, "__version__", None)
        try:
            import torch

            info["torch"] = torch.__version__
            if torch.cuda.is_available():
                info["cuda"] = True
                info["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 -- a kernel without torch still grades NumPy questions
            info["torch"] = None
        return info
