"""A restricted unpickler for pickle-based dataset files (Occlusion-Person, 3DPW).

A pickle can name any importable callable and call it while loading, so a crafted annotation
file could run code. :func:`load_pickle` only resolves the globals needed to rebuild numpy arrays,
numpy scalars/dtypes and builtin containers; any other global (``os.system``, ``builtins.eval``,
``subprocess.Popen``, a class from some package …) is refused *before* it is called, with an
error naming the file and the global.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import copyreg
import importlib
import os
import pickle
from pathlib import Path
from typing import Any

# Builtin types a data pickle may construct. No functions: eval, exec, getattr, __import__ ... are
# deliberately absent.
_BUILTINS = frozenset({
    "list", "dict", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
    "int", "float", "complex", "bool", "slice", "range",
})

# (module, name) of the numpy reconstructors. Python 2 / numpy 1 pickles say ``numpy.core``,
# numpy 2 writes ``numpy._core``; both resolve to the same functions.
_NUMPY = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})

_OTHER = {
    # protocol-2 pickles store bytes as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): codecs.encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # protocol < 2 object reconstruction; its class arguments pass through find_class too
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if (module, name) in _NUMPY:
            return _numpy_global(module, name)
        if (module, name) in _OTHER:
            return _OTHER[(module, name)]
        raise pickle.UnpicklingError(
            f"{self._path}: refusing to load global '{module}.{name}': this file may only contain "
            "numpy arrays and builtin types (a pickle naming other callables could run code)"
        )


def _numpy_global(module: str, name: str) -> Any:
    modern = module.replace("numpy.core", "numpy._core", 1) if module.startswith("numpy.core") else module
    try:
        return getattr(importlib.import_module(modern), name)
    except ImportError:  # numpy 1.x has no numpy._core
        return getattr(importlib.import_module(module.replace("numpy._core", "numpy.core", 1)), name)


def load_pickle(path: str | os.PathLike, encoding: str = "ASCII") -> Any:
    """Load a data pickle, allowing only numpy arrays and builtin types.

    Args:
        path: The pickle file.
        encoding: How Python 2 ``str`` objects are decoded; use ``"latin1"`` for Python 2 pickles
            that hold numpy arrays (e.g. 3DPW ``sequenceFiles/*/*.pkl``).

    Returns:
        The unpickled object.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The pickle names a disallowed global or is corrupt; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, path, encoding).load()
        except pickle.UnpicklingError as err:
            if str(err).startswith(str(path)):
                raise ValueError(str(err)) from None
            raise ValueError(f"{path}: not a readable pickle ({err})") from err
        except (EOFError, UnicodeDecodeError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
