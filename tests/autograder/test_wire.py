"""Does only plain data cross between a student's kernel and the grader, whatever the kernel writes?

The kernel side writes with ``wire.dump`` and the grader reads with ``wire.load``; a hostile kernel
may instead write any files it likes into its out folder, so ``load`` is tried on forged ones.
"""

import json
import os
import pickle

import numpy as np
import pytest
import torch

from autograder import wire


def roundtrip(value, tmp_path, **kwargs):
    wire.dump(value, tmp_path)
    return wire.load(tmp_path, **kwargs)


def forge(folder, doc, arrays=None):
    """A value folder as a hostile kernel could write it, bypassing ``wire.dump``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "value.json").write_text(json.dumps(doc))
    for name, write in (arrays or {}).items():
        write(folder / name)
    return folder


def test_nested_plain_values_survive_the_trip(tmp_path):
    """Do numbers, strings, None, nested lists, tuples and dicts come back equal and typed?"""
    value = {
        "ints": [1, -2, 3],
        "pair": (1.5, "x"),
        "none": None,
        "flag": True,
        "z": 1 - 2j,
        "special": [float("nan"), float("inf"), -float("inf")],
        "np_scalar": np.float32(0.25),
        "nested": {"deeper": [(0, [1, {"k": 2}])]},
    }
    got = roundtrip(value, tmp_path)
    assert (
        got["ints"] == [1, -2, 3] and got["pair"] == (1.5, "x") and isinstance(got["pair"], tuple)
    )
    assert got["none"] is None and got["flag"] is True and got["z"] == 1 - 2j
    assert np.isnan(got["special"][0]) and got["special"][1:] == [float("inf"), -float("inf")]
    assert got["np_scalar"] == 0.25 and type(got["np_scalar"]) is float
    assert got["nested"] == {"deeper": [(0, [1, {"k": 2}])]}


def test_arrays_and_tensors_keep_dtype_and_shape(tmp_path):
    """Do arrays come back bit for bit, and tensors as arrays unless tensors are asked for?"""
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    got = roundtrip({"a": a, "t": t, "b": np.array([True, False])}, tmp_path)
    assert got["a"].dtype == np.float32 and np.array_equal(got["a"], a)
    assert isinstance(got["t"], np.ndarray) and got["t"].dtype == np.float64
    assert got["b"].dtype == bool
    again = wire.load(tmp_path, tensors=True)
    assert isinstance(again["t"], torch.Tensor) and torch.equal(again["t"], t)


class AlwaysEqual:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    "value",
    [
        AlwaysEqual(),
        [1, AlwaysEqual()],
        np.array([AlwaysEqual()], dtype=object),
        np.array(["a", "b"]),
        {1: "int key"},
        lambda x: x,
        {1, 2},
    ],
    ids=["object", "object-in-list", "object-array", "str-array", "int-key", "function", "set"],
)
def test_anything_but_plain_data_is_refused_on_the_way_out(tmp_path, value):
    """Is an object (say, one whose __eq__ is always True) refused instead of sent?"""
    with pytest.raises(wire.WireError):
        wire.dump(value, tmp_path)


def test_limits_on_size_and_depth(tmp_path):
    """Are values nested too deeply or with too many items refused?"""
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeper"):
        wire.dump(deep, tmp_path / "deep")
    with pytest.raises(wire.WireError, match="too large"):
        wire.dump(list(range(wire.MAX_ITEMS + 1)), tmp_path / "wide")


class Boom:
    """Unpickling this runs code: it would create the file ``marker``."""

    marker = None

    def __reduce__(self):
        return (open, (str(Boom.marker), "w"))


def test_a_pickled_array_is_never_unpickled(tmp_path):
    """A kernel writes an object array holding a pickle that runs code when loaded: does the
    grader refuse it without running it?"""
    Boom.marker = tmp_path / "marker"
    evil = np.array([Boom()], dtype=object)
    folder = forge(
        tmp_path / "v",
        {"__ndarray__": "a0.npy"},
        {"a0.npy": lambda p: np.save(p, evil, allow_pickle=True)},
    )
    with pytest.raises((wire.WireError, ValueError)):
        wire.load(folder)
    assert not Boom.marker.exists()


def test_a_raw_pickle_is_not_an_array(tmp_path):
    """Is a bare pickle file named like an array refused (np.load would need allow_pickle)?"""
    Boom.marker = tmp_path / "marker"
    folder = forge(
        tmp_path / "v",
        {"__ndarray__": "a0.npy"},
        {"a0.npy": lambda p: p.write_bytes(pickle.dumps(Boom()))},
    )
    with pytest.raises((wire.WireError, ValueError)):
        wire.load(folder)
    assert not Boom.marker.exists()


@pytest.mark.parametrize(
    "doc",
    [
        {"__ndarray__": "../outside.npy"},
        {"__ndarray__": "/etc/passwd"},
        {"__ndarray__": 7},
        {"__float__": "1e999"},
        {"__complex__": ["a", "b"]},
        {"__class__": "os.system"},
        {"__tuple__": "not a list"},
        {"a": 1, "b": 2},
    ],
    ids=[
        "traversal",
        "absolute",
        "not-a-name",
        "bad-float",
        "bad-complex",
        "unknown-tag",
        "tuple",
        "raw-dict",
    ],
)
def test_forged_documents_are_refused(tmp_path, doc):
    """Are references outside the folder, unknown tags and malformed bodies refused?"""
    (tmp_path / "outside.npy").write_bytes(b"")
    np.save(tmp_path / "outside.npy", np.ones(2))
    with pytest.raises(wire.WireError):
        wire.load(forge(tmp_path / "v", doc))


def test_symlinks_are_not_followed(tmp_path):
    """Can a kernel point the grader at a file elsewhere through a symbolic link? (No.)"""
    secret = tmp_path / "secret.npy"
    np.save(secret, np.arange(3))
    folder = forge(tmp_path / "v", {"__ndarray__": "a0.npy"})
    os.symlink(secret, folder / "a0.npy")
    with pytest.raises(wire.WireError):
        wire.load(folder)
    linked = tmp_path / "w"
    linked.mkdir()
    os.symlink(folder / "value.json", linked / "value.json")
    with pytest.raises(wire.WireError):
        wire.load(linked)


def test_json_nan_constants_and_missing_values_are_refused(tmp_path):
    """Are the non-standard JSON constants (NaN, Infinity) and a missing value.json refused?"""
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "value.json").write_text("[NaN]")
    with pytest.raises(wire.WireError):
        wire.load(folder)
    with pytest.raises(wire.WireError, match="no value"):
        wire.load(tmp_path / "empty")


def test_exception_description_survives_a_hostile_str():
    """Does describing an exception whose __str__ raises still give plain data?"""

    class Nasty(ValueError):
        def __str__(self):
            raise RuntimeError("no")

    info = wire.describe_exception(Nasty())
    assert info["type"] == "Nasty" and "ValueError" in info["mro"]
    assert info["message"] == "<message could not be read>"
