"""Input checks shared by the public wrappers around ``alarms.kernels``.

A kernel given the wrong dtype either fails deep inside numba with an unreadable typing
error or silently compiles another specialisation; these checks turn that into one line
that says which argument is wrong and how to fix it (STYLE.md "Kernel / wrapper split").
"""

from __future__ import annotations

import numpy as np

_FIX = {
    "i": "np.asarray({name}, dtype=np.int64)",
    "f": "np.asarray({name}, dtype=np.float64)",
    "b": "np.asarray({name}, dtype=bool)",
}


def check_1d(name: str, arr, allowed: tuple, kind: str) -> np.ndarray:
    """Return ``arr`` as a contiguous 1-D array if its dtype is one of ``allowed``.

    ``kind`` is "i", "f" or "b" and only picks the suggested fix. Raises TypeError for a
    non-array or a wrong dtype and ValueError for a wrong shape.
    """
    fix = _FIX[kind].format(name=name)
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}; use {fix}")
    if arr.dtype not in allowed:
        names = ", ".join(str(np.dtype(a)) for a in allowed)
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {names}; use {fix}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}; use {name}.ravel()")
    return np.ascontiguousarray(arr)


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise ValueError naming the lengths unless all arrays have one length; return it."""
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"arrays must have one length, got {desc}")
    return next(iter(lengths.values()), 0)


INT = (np.dtype(np.int64), np.dtype(np.int32))
FLOAT = (np.dtype(np.float64), np.dtype(np.float32))
F64 = (np.dtype(np.float64),)
BOOL = (np.dtype(np.bool_),)
