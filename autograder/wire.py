"""Plain-data transport between the grader and a student's kernel: JSON plus ``.npy`` files.

Nothing that crosses can run code when it is read: arrays are loaded with ``allow_pickle=False``
and only numeric or boolean dtypes are accepted; every other value must be None, bool, int,
float, complex, str, or a list / tuple / str-keyed dict of those. This file is also injected,
as source, into the student's kernel (see ``autograder/kernel/harness.py``), so it imports
nothing beyond the standard library and NumPy, and torch only if it is already importable.
"""

import json
import math
import os

import numpy as np

MAX_DEPTH = 32
MAX_ITEMS = 100_000  # containers, strings and arrays counted together
MAX_STR = 1_000_000  # characters per string
MAX_ARRAY_BYTES = 512 * 2**20  # per array file
MAX_JSON_BYTES = 16 * 2**20
NUMERIC_KINDS = "biufc"  # bool, int, unsigned, float, complex


class WireError(ValueError):
    """A value cannot cross between the grader and a kernel as plain data."""


def _torch():
    import sys

    return sys.modules.get("torch")


class _Encoder:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    def _tick(self):
        self.count += 1
        if self.count > MAX_ITEMS:
            raise WireError(f"value too large: more than {MAX_ITEMS} items")

    def _array(self, arr, tag):
        arr = np.ascontiguousarray(arr)
        if arr.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"arrays of dtype {arr.dtype} cannot be sent; use a numeric dtype")
        if arr.nbytes > MAX_ARRAY_BYTES:
            raise WireError(f"array of {arr.nbytes} bytes is over the {MAX_ARRAY_BYTES} limit")
        name = f"a{self.count}.npy"
        np.save(os.path.join(self.folder, name), arr, allow_pickle=False)
        return {tag: name}

    def encode(self, value, depth=0):
        self._tick()
        if depth > MAX_DEPTH:
            raise WireError(f"value nested deeper than {MAX_DEPTH} levels")
        torch = _torch()
        if value is None or isinstance(value, bool | str):
            if isinstance(value, str) and len(value) > MAX_STR:
                raise WireError(f"string longer than {MAX_STR} characters")
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"__float__": repr(float(value))}
        if isinstance(value, complex):
            return {"__complex__": [self.encode(value.real), self.encode(value.imag)]}
        if isinstance(value, np.generic) and value.dtype.kind in NUMERIC_KINDS:
            return self.encode(value.item(), depth)
        if isinstance(value, np.ndarray):
            return self._array(value, "__ndarray__")
        if torch is not None and isinstance(value, torch.Tensor):
            t = value.detach()
            return self._array(t.cpu().resolve_conj().numpy(), "__tensor__")
        if isinstance(value, list | tuple):
            items = [self.encode(v, depth + 1) for v in value]
            return items if type(value) is list else {"__tuple__": items}
        if isinstance(value, dict):
            if not all(type(k) is str for k in value):
                raise WireError("only dicts with str keys can be sent")
            return {"__dict__": {k: self.encode(v, depth + 1) for k, v in value.items()}}
        raise WireError(
            f"a value of type {type(value).__module__}.{type(value).__qualname__} cannot be sent; "
            "return numbers, strings, lists, tuples, dicts, NumPy arrays or torch tensors"
        )


def dump(value, folder):
    """Write ``value`` as ``folder/value.json`` plus array files; return the JSON text."""
    os.makedirs(folder, exist_ok=True)
    doc = _Encoder(folder).encode(value)
    text = json.dumps(doc, allow_nan=False)
    tmp = os.path.join(folder, "value.json.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(folder, "value.json"))
    return text


class _Decoder:
    def __init__(self, folder, tensors):
        self.folder = folder
        self.tensors = tensors
        self.count = 0

    def _array(self, name):
        if not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(".npy"):
            raise WireError(f"bad array reference {name!r}")
        path = os.path.join(self.folder, name)
        if os.path.islink(path) or not os.path.isfile(path):
            raise WireError(f"array file {name} is missing")
        if os.path.getsize(path) > MAX_ARRAY_BYTES + 4096:
            raise WireError(f"array file {name} is over the size limit")
        arr = np.load(path, allow_pickle=False)
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"array file {name} does not hold a numeric array")
        return arr

    def decode(self, doc, depth=0):
        self.count += 1
        if self.count > MAX_ITEMS or depth > MAX_DEPTH:
            raise WireError("value too large or too deeply nested")
        if doc is None or isinstance(doc, bool | int | float | str):
            return doc
        if isinstance(doc, list):
            return [self.decode(v, depth + 1) for v in doc]
        if isinstance(doc, dict) and len(doc) == 1:
            ((tag, body),) = doc.items()
            if tag == "__float__" and body in ("nan", "inf", "-inf"):
                return float(body)
            if tag == "__complex__" and isinstance(body, list) and len(body) == 2:
                re, im = (self.decode(v, depth + 1) for v in body)
                if isinstance(re, float | int) and isinstance(im, float | int):
                    return complex(re, im)
            if tag == "__tuple__" and isinstance(body, list):
                return tuple(self.decode(v, depth + 1) for v in body)
            if tag == "__dict__" and isinstance(body, dict):
                return {str(k): self.decode(v, depth + 1) for k, v in body.items()}
            if tag == "__ndarray__":
                return self._array(body)
            if tag == "__tensor__":
                arr = self._array(body)
                torch = _torch() if self.tensors else None
                return torch.from_numpy(arr.copy()) if torch is not None else arr
        raise WireError(f"malformed value: {str(doc)[:80]}")


def load(folder, tensors=False):
    """Read a value written by :func:`dump`; tensors come back as arrays unless ``tensors``."""
    path = os.path.join(folder, "value.json")
    if os.path.islink(path) or not os.path.isfile(path):
        raise WireError("no value was written")
    if os.path.getsize(path) > MAX_JSON_BYTES:
        raise WireError("value too large")
    with open(path) as f:
        doc = json.loads(f.read(), parse_constant=lambda c: (_ for _ in ()).throw(WireError(c)))
    return _Decoder(folder, tensors).decode(doc)


def describe_exception(exc):
    """An exception as plain data: its type, the names of its classes, and its message."""
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 -- a hostile __str__ must not break the report
        message = "<message could not be read>"
    return {
        "type": type(exc).__name__,
        "mro": [c.__name__ for c in type(exc).__mro__ if isinstance(c.__name__, str)][:20],
        "message": message[:2000],
    }
