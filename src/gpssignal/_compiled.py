"""Compiled kernels: numba functions compiled at their first call, or loaded ahead of time.

Every numba function of the package is declared with :func:`njit` (or
:func:`intrinsic`) from here instead of numba's own decorators. Declaring one
imports nothing: numba (about 0.2 s and 55 MB) is imported, and the
functions of a module are handed to numba together, only when one of them is
first called from Python. So a command that never runs a kernel never loads
numba.

A run also need not load numba when the kernels it calls were compiled ahead
of time into an extension module, the *kernel library*: ``gpssignal
build-kernels`` (:func:`build_library`) compiles the functions that the
engine calls from Python, for the argument types recorded while it runs a
small scenario (numba's ``pycc``). A Python call goes to the library when it
was built from the package's present sources and has the call's argument
types (:func:`Kernel.resolve`); else to numba's compiler, which compiles at
the first call and keeps its own cache. The code is the same, compiled by
the same LLVM with the same options, so both give the same results to the
last bit (``tests/test_compiled.py``).

The library lives in the package's ``__pycache__`` as
``_gpssignal_kernels.<key>.<suffix>`` with its table of exports in a JSON
file of the same stem. ``<key>`` is a hash of every source file of the
package, the numpy major version and the interpreter, so any edit of the
code makes the library stale (it is then ignored, never half-used).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, overload

import numpy as np

__all__ = ["KERNELS_VARIABLE", "Kernel", "build_library", "forget_library", "intrinsic",
           "kernels_in_use", "lean_numba_start", "library_paths", "njit", "recording"]

#: Name of the extension module (its ``PyInit_`` symbol); the file adds the key.
LIBRARY = "_gpssignal_kernels"
#: Folder of the package: its ``*.py`` files make the key, and the library
#: lives in its ``__pycache__`` (written where numba writes its own cache).
PACKAGE_DIR = Path(__file__).resolve().parent


class _Deferred:
    """A numba object to be made when its module is first compiled."""

    __slots__ = ("_made", "make", "py_func")

    def __init__(self, py_func: Callable[..., Any], make: Callable[[Any], Any]) -> None:
        self.py_func = py_func
        self.make = make
        self._made: Any = None

    def made(self) -> Any:
        """Return the numba object, compiling the whole module's functions first."""
        if self._made is None:
            _materialise(sys.modules[self.py_func.__module__])
        return self._made


class Kernel(_Deferred):
    """A function compiled by numba (``njit``) when first called.

    Calling it calls the compiled function (numba imported, the module's
    kernels handed to numba, on the first call). :meth:`resolve` returns the
    callable for calls shaped like the given arguments, ahead-of-time code
    when the library has them. Any other attribute is the numba dispatcher's
    (``py_func`` is the Python function).
    """

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        def make(numba: Any) -> Any:
            return numba.njit(**options)(py_func)

        super().__init__(py_func, make)
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__

    def __call__(self, *args: Any) -> Any:
        return self.made()(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)

    @property
    def export_name(self) -> str:
        """Name of this function in the kernel library (module path and name)."""
        return f"{self.py_func.__module__}.{self.__qualname__}".replace(".", "__")

    def resolve(self, *args: Any) -> Callable[..., Any]:
        """Return what runs calls with arguments of the types of ``args``.

        The ahead-of-time function when the library is current and has it;
        else the numba dispatcher. A caller that calls many times with the
        same types (the engine's step loop) resolves once: the argument types
        are looked up here, not at each call. While :func:`recording`, the
        types are noted for :func:`build_library` and the dispatcher returned.

        Call what it returns only with arguments of the same types (resolve
        again when an array is replaced): code compiled ahead of time does not
        check them, and reads an array of another type wrongly.
        """
        if _RECORD is not None:
            _RECORD.setdefault(self, {}).setdefault(_type_key(args), args)
            return self.made()
        lib = _library()
        if lib is not None:
            name = lib[1].get(self.export_name, {}).get(_type_key(args))
            if name is not None:
                return getattr(lib[0], name)  # type: ignore[no-any-return]
            _NOT_IN_LIBRARY.add(self.__qualname__)
        return self.made()  # type: ignore[no-any-return]


@overload
def njit(fn: Callable[..., Any], /) -> Kernel: ...
@overload
def njit(**options: Any) -> Callable[[Callable[..., Any]], Kernel]: ...
def njit(fn: Callable[..., Any] | None = None, /, **options: Any
         ) -> Kernel | Callable[[Callable[..., Any]], Kernel]:
    """Declare a numba function: ``@njit`` or ``@njit(**options)`` (``numba.njit``, cached)."""
    options = {"cache": True, **options}
    if fn is not None:
        return Kernel(fn, options)

    def wrap(f: Callable[..., Any]) -> Kernel:
        return Kernel(f, options)

    return wrap


def intrinsic(fn: Callable[..., Any]) -> _Deferred:
    """Declare a numba intrinsic (``numba.extending.intrinsic``), made with its module."""
    def make(numba: Any) -> Any:
        from numba.extending import intrinsic as numba_intrinsic
        return numba_intrinsic(fn)

    return _Deferred(fn, make)


def _materialise(module: Any, done: set[str] | None = None) -> None:
    """Hand every deferred function of ``module`` (and of modules it took them from) to numba.

    numba compiles a function with the objects its module's globals name, so
    each deferred global is replaced by its numba object before the first
    compilation; a ``Kernel`` held elsewhere forwards to the same object.
    """
    lean_numba_start()
    import numba

    done = set() if done is None else done
    if module.__name__ in done:
        return
    done.add(module.__name__)
    g = vars(module)
    for name, value in list(g.items()):
        if isinstance(value, _Deferred):
            home = value.py_func.__module__
            if value._made is None and home != module.__name__ and home not in done:
                _materialise(sys.modules[home], done)
            if value._made is None:
                value._made = value.make(numba)
            g[name] = value._made


#: The module numba imports only to ask whether BLAS is there (see :func:`lean_numba_start`).
_BLAS_PROBE = "scipy.linalg.cython_blas"


def lean_numba_start() -> None:
    """Let numba load its compiled-code registry without importing ``scipy.linalg``.

    The first compilation or cache load in a process imports
    ``numba.np.arraymath``, which imports ``scipy.linalg`` (0.1-0.2 s and
    13 MB, measured) only to learn whether BLAS is available for its
    inner-product helper. gpssignal's kernels use no BLAS, so the probe's
    module is hidden while ``numba.np.arraymath`` is imported (the probe
    answers "no", and that helper uses its plain loop) and shown again at
    once: ``np.dot`` and ``np.linalg`` in a compiled function still find
    BLAS, since numba looks for it again when it types them. Does nothing
    once numba's registry or ``scipy.linalg`` is loaded. See
    docs/references.md#library-start-up.
    """
    if "numba.np.arraymath" in sys.modules or _BLAS_PROBE in sys.modules:
        return
    sys.modules[_BLAS_PROBE] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if sys.modules.get(_BLAS_PROBE, False) is None:
            del sys.modules[_BLAS_PROBE]


# ---------------------------------------------------------------------------
# Argument types without numba: the key under which the library files an export.
# ---------------------------------------------------------------------------

def _type_key(args: tuple[Any, ...]) -> str:
    """Return a key that differs whenever numba would type ``args`` differently."""
    parts: list[str] = []
    _key_into(args, parts)
    return "".join(parts)


def _key_into(x: Any, out: list[str]) -> None:
    if isinstance(x, np.ndarray):
        f = x.flags
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        out.append(f"a{x.dtype.str}{x.ndim}{layout}{int(f.writeable)}{int(f.aligned)},")
    elif isinstance(x, tuple):
        out.append("(")
        for y in x:
            _key_into(y, out)
        out.append(")")
    elif isinstance(x, bool | np.bool_):
        out.append("b,")
    elif isinstance(x, int | np.integer):
        out.append(f"i{np.asarray(x).dtype.str},")
    elif isinstance(x, float | np.floating):
        out.append(f"f{np.asarray(x).dtype.str},")
    else:
        # Anything else (None, objects) is never exported: an impossible key.
        out.append(f"?{type(x).__qualname__},")


# ---------------------------------------------------------------------------
# The library: finding it, building it.
# ---------------------------------------------------------------------------

def source_key() -> str:
    """Return the key of the package's present sources (file name of the library)."""
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} numpy{np.__version__.split('.')[0]}".encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


#: Environment variable: ``jit`` never uses the library (numba compiles every
#: kernel); a folder path looks for (and builds) the library there instead of
#: in the package's ``__pycache__``.
KERNELS_VARIABLE = "GPSSIGNAL_KERNELS"


def library_folder() -> Path | None:
    """Return the folder of the kernel library, or None when ``GPSSIGNAL_KERNELS=jit``."""
    chosen = os.environ.get(KERNELS_VARIABLE, "")
    if chosen == "jit":
        return None
    return Path(chosen) if chosen else PACKAGE_DIR / "__pycache__"


def library_paths(folder: Path | None = None) -> tuple[Path, Path]:
    """Return the extension file and its table of exports for the present sources.

    In ``folder``, by default :func:`library_folder` (the package's
    ``__pycache__`` when ``GPSSIGNAL_KERNELS=jit`` too).
    """
    folder = folder or library_folder() or PACKAGE_DIR / "__pycache__"
    stem = f"{LIBRARY}.{source_key()}"
    return (folder / (stem + importlib.machinery.EXTENSION_SUFFIXES[0]),
            folder / (stem + ".json"))


# The library once looked for (like numba's own registry, one per process),
# and the calls being recorded for a build.
_LIB: list[Any] = []       # [(module, table) or None]
_NOT_IN_LIBRARY: set[str] = set()   # kernels resolved to numba although a library is loaded
_RECORD: dict[Kernel, dict[str, tuple[Any, ...]]] | None = None


def _library() -> tuple[Any, dict[str, dict[str, str]]] | None:
    """Return the loaded library and its table, or None (not built, stale, or turned off)."""
    if not _LIB:
        _LIB.append(_load_library())
    return _LIB[0]  # type: ignore[no-any-return]


def forget_library() -> None:
    """Look for the library again at the next call (after a build, or another folder)."""
    _LIB.clear()


def _load_library() -> tuple[Any, dict[str, dict[str, str]]] | None:
    if library_folder() is None:
        return None
    so, table = library_paths()
    if not (so.is_file() and table.is_file()):
        return None
    try:
        exports = json.loads(table.read_text(encoding="utf-8"))
        loader = importlib.machinery.ExtensionFileLoader(LIBRARY, str(so))
        spec = importlib.util.spec_from_file_location(LIBRARY, so, loader=loader)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except (OSError, ImportError, ValueError):
        return None   # unreadable or built for another machine: numba compiles instead
    return module, exports


def kernels_in_use() -> str:
    """Return where this process's resolved kernels come from.

    ``ahead-of-time`` (the library is loaded and had every call's types),
    ``just-in-time`` (no current library, or ``GPSSIGNAL_KERNELS=jit``), or
    ``ahead-of-time except NAMES`` for the kernels it lacked types for.
    """
    if _library() is None:
        return "just-in-time"
    if _NOT_IN_LIBRARY:
        return "ahead-of-time except " + ", ".join(sorted(_NOT_IN_LIBRARY))
    return "ahead-of-time"


@contextmanager
def recording() -> Iterator[dict[Kernel, dict[str, tuple[Any, ...]]]]:
    """Note the argument types of each :meth:`Kernel.resolve` (for :func:`build_library`)."""
    global _RECORD
    _RECORD = {}
    try:
        yield _RECORD
    finally:
        _RECORD = None


def build_library(calls: dict[Kernel, dict[str, tuple[Any, ...]]],
                  folder: Path | None = None) -> Path:
    """Compile ``calls`` (recorded by :func:`recording`) into the kernel library; return its path.

    Each kernel is exported once per recorded argument-type key. The
    extension is compiled in a temporary folder and moved into place with
    its table, so a reader never sees half a library.
    """
    import tempfile

    import numba
    from numba.pycc import CC

    so, table = library_paths(folder)
    so.parent.mkdir(parents=True, exist_ok=True)
    exports: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(dir=so.parent) as tmp:
        cc = CC(LIBRARY)
        cc.output_dir = tmp
        cc.verbose = False
        for kernel, by_key in sorted(calls.items(), key=lambda kv: kv[0].export_name):
            for i, (key, args) in enumerate(sorted(by_key.items())):
                sig = kernel.made().nopython_signatures
                name = f"{kernel.export_name}__{i}"
                types = tuple(numba.typeof(a) for a in args)
                ret = next((s.return_type for s in sig if tuple(s.args) == types), None)
                if ret is None:
                    continue   # not compiled by the recording run with these types
                cc.export(name, ret(*types))(kernel.py_func)
                exports.setdefault(kernel.export_name, {})[key] = name
        cc.compile()
        built = next(Path(tmp).glob(LIBRARY + "*" + importlib.machinery.EXTENSION_SUFFIXES[0]))
        part = Path(tmp) / "table.json"
        part.write_text(json.dumps(exports, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(built, so)
        os.replace(part, table)
    # Libraries of earlier sources (stale, never loaded again): this module's
    # own files, named by it, so removing them removes nothing of the user's.
    stem = so.name[: -len(importlib.machinery.EXTENSION_SUFFIXES[0])]
    for old in so.parent.glob(LIBRARY + ".*"):
        if not old.name.startswith(stem + ".") and old.suffix in (".so", ".pyd", ".json"):
            old.unlink(missing_ok=True)
    forget_library()
    return so
