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
engine resolves from Python, for the argument types recorded while it runs
a scenario (numba's ``pycc``), runs a check before the library is put in
place, and puts it in place only if the check passes. A call resolved with
:meth:`Kernel.resolve` goes to the library when the library was built from
the sources this process imported and has the call's exact argument types;
else to numba's compiler, which compiles at the first call and keeps its own
cache. ``pycc`` compiles the same code with the same LLVM, for this
machine's CPU as numba's compiler does (its instruction set, identified by
:func:`cpu_id`; the library loads only on the same CPU) and with numba's
default options (the library's functions take none of their own); without
fast-math the arithmetic is the same as numba's, which the build's check
and ``tests/test_compiled.py`` confirm bit for bit. (For the generic CPU of
the architecture, ``pycc``'s default, the map matching ran about 60 % slower
than numba's code: 10⁷ points at 1 and 100 junctions 233-237 ms against
145-165 ms, ``benchmarks/test_bench_control.py``.)

The library lives in the package's ``__pycache__`` (or the absolute folder
in ``GPSSIGNAL_KERNELS``) as ``_gpssignal_kernels.<key>.<suffix>``, with its
table of exports, SHA-256 and CPU in a JSON file of the same stem, written last. ``<key>``
hashes every source file of the package as this process found them when it
first imported this module, the interpreter, numpy's major version and
numba's and llvmlite's versions: an edit of the code or an upgrade makes it
stale (then it is ignored, never half-used). A library is also ignored when
its folder is writable by anyone, and while numba's debugging settings
(``NUMBA_DISABLE_JIT``, ``NUMBA_BOUNDSCHECK``, ``NUMBA_OPT``,
``NUMBA_FASTMATH``, ``NUMBA_DEBUG*``) ask numba to compile differently.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

__all__ = ["KERNELS_VARIABLE", "Kernel", "Resolved", "build_library", "call", "cpu_id",
           "current_library", "intrinsic", "kernels_in_use", "lean_numba_start", "library_folder",
           "njit", "recording"]

#: Name of the extension module (its ``PyInit_`` symbol); the file adds the key.
LIBRARY = "_gpssignal_kernels"
#: Folder of the package: its ``*.py`` files make the key, and the library
#: lives in its ``__pycache__`` (written where numba writes its own cache).
PACKAGE_DIR = Path(__file__).resolve().parent
#: Environment variable: ``jit`` never uses the library (numba compiles every
#: kernel); an absolute folder path keeps (and looks for) the library there
#: instead of in the package's ``__pycache__``.
KERNELS_VARIABLE = "GPSSIGNAL_KERNELS"
#: numba's settings under which its compiler makes other code than the library's.
_NUMBA_DEBUG_SETTINGS = ("NUMBA_DISABLE_JIT", "NUMBA_BOUNDSCHECK", "NUMBA_OPT",
                         "NUMBA_FASTMATH")
#: A build folder left by a killed build is removed by a later build after this [s].
_STALE_BUILD_S = 3600.0

# Process-wide state, like numba's own registry: one lock for handing modules
# to numba and for loading the library (the live supervisor runs threads),
# the library once looked for, which kernels ran from where, and the calls
# being recorded for a build.
_LOCK = threading.RLock()
_LIB: list[Any] = []                 # [_Library or None]
_RAN_AHEAD: set[str] = set()         # kernels resolved to the library
_KERNEL_OF: dict[Callable[..., Any], Kernel] = {}   # a kernel by its Python function
_RAN_NUMBA: set[str] = set()         # modules handed to numba's compiler
_RECORD: dict[Kernel, dict[str, tuple[Any, ...]]] | None = None


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
            with _LOCK:
                if self._made is None:
                    _materialise(sys.modules[self.py_func.__module__])
                if self._made is None:   # not a global of its module (nested, reloaded)
                    import numba
                    self._made = self.make(numba)
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
        _KERNEL_OF[py_func] = self

    @staticmethod
    def of(fn: Any) -> Kernel:
        """Return the ``Kernel`` of ``fn``: itself, or the one numba's dispatcher ``fn`` came from.

        Once a module's kernels are handed to numba, its globals name the
        dispatchers; code in that module reaches its kernels through this.
        """
        if isinstance(fn, Kernel):
            return fn
        return _KERNEL_OF[fn.py_func]

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
        else numba's compiled code for those types (compiled at this call if
        need be). A caller that calls many times with the same types (the
        engine's step loop) resolves once: the argument types are looked up
        here, not at each call. While :func:`recording`, the types are noted
        for :func:`build_library` and numba's code returned.

        Call what it returns only with arguments of the same types (resolve
        again when an array is replaced): neither kind of code checks them,
        and either reads an array of another type wrongly.
        """
        if _RECORD is not None:
            _RECORD.setdefault(self, {}).setdefault(_type_key(args), args)
            return self._compiled_for(args)
        lib = _library()
        if lib is not None:
            name = lib.exports.get(self.export_name, {}).get(_type_key(args))
            if name is not None:
                _RAN_AHEAD.add(self.__name__)
                return getattr(lib.module, name)  # type: ignore[no-any-return]
        return self._compiled_for(args)

    def _compiled_for(self, args: tuple[Any, ...]) -> Callable[..., Any]:
        """Return numba's code for arguments of the types of ``args``, compiled if need be.

        What ``Dispatcher.compile`` returns is called without numba looking
        up the type of every argument first, which a dispatcher does in Python
        at each call (about 18 us for a numpy ``Generator``). With numba's JIT
        disabled the kernel is a plain function, returned as it is.
        """
        made = self.made()
        compile_code = getattr(made, "compile", None)
        if compile_code is None:
            return made  # type: ignore[no-any-return]
        return compile_code(tuple(made.typeof_pyval(a) for a in args))  # type: ignore[no-any-return]


class Resolved:
    """One call site's code for a kernel: resolved at the first call, then called directly.

    For a caller that makes every argument of the kernel itself, with types
    that cannot change between calls (arrays of one dtype, rank and layout,
    made writeable and aligned; ints as ints, floats as floats), since the
    code is not told the types again (:meth:`Kernel.resolve`). Calling
    :meth:`forget` when an array is replaced makes the next call resolve
    again. Resolving costs about 1 us per argument; a call site that runs
    every decision or delivery saves that at each call.
    """

    __slots__ = ("_code", "kernel")

    def __init__(self, kernel: Any) -> None:
        self.kernel = Kernel.of(kernel)
        self._code: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        code = self._code
        if code is None:
            code = self._code = self.kernel.resolve(*args)
        return code(*args)

    def forget(self) -> None:
        """Resolve again at the next call (an argument was replaced)."""
        self._code = None


def call(kernel: Any, *args: Any) -> Any:
    """Call ``kernel`` (a ``Kernel`` or its dispatcher) through :meth:`Kernel.resolve`.

    For a call site that runs rarely, or with arrays it does not make: it
    looks the types up at each call (about 1 us per argument).
    """
    return Kernel.of(kernel).resolve(*args)(*args)


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
    Called with :data:`_LOCK` held.
    """
    lean_numba_start()
    import numba

    done = set() if done is None else done
    if module.__name__ in done:
        return
    done.add(module.__name__)
    _RAN_NUMBA.add(module.__name__)
    g = vars(module)
    for name, value in list(g.items()):
        if isinstance(value, _Deferred):
            home = value.py_func.__module__
            if value._made is None and home != module.__name__ and home not in done \
                    and home in sys.modules:
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
    """Return a key that differs whenever numba would type ``args`` differently.

    Only plain tuples, bools, ints, floats (Python's or numpy's), arrays
    of native-order booleans, integers or floats, and numpy ``Generator``s
    (one numba type, whatever their bit generator: compiled code draws
    through the bit generator's own functions) are keyed exactly; anything
    else (None, lists, named tuples, enums, structured or object arrays)
    puts a ``?`` in the key, and such keys are never exported.
    """
    parts: list[str] = []
    _key_into(args, parts)
    return "".join(parts)


def _key_into(x: Any, out: list[str]) -> None:
    t = type(x)
    if t is np.ndarray:
        d, f = x.dtype, x.flags
        if d.kind not in "biuf" or not d.isnative or d.fields is not None:
            out.append(f"?array{d.str},")
            return
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        out.append(f"a{d.str}{x.ndim}{layout}{int(f.writeable)}{int(f.aligned)},")
    elif t is tuple:
        out.append("(")
        for y in x:
            _key_into(y, out)
        out.append(")")
    elif t is bool or t is np.bool_:
        out.append("b,")
    elif t is int:
        out.append("i<i8," if -(2 ** 63) <= x < 2 ** 63 else "?bigint,")
    elif t is float:
        out.append("f<f8,")
    elif t.__module__ == "numpy" and isinstance(x, np.integer | np.floating):
        out.append(f"{'i' if isinstance(x, np.integer) else 'f'}{x.dtype.str},")
    elif t is np.random.Generator:
        out.append("g,")
    else:
        out.append(f"?{t.__module__}.{t.__qualname__},")


# ---------------------------------------------------------------------------
# The library: finding it, building it.
# ---------------------------------------------------------------------------

def _version_file(package: str) -> bytes:
    """Return the bytes of ``package``'s ``_version.py`` (found without importing it), or b''."""
    try:
        spec = importlib.util.find_spec(package)
        locations = spec.submodule_search_locations if spec is not None else None
        if not locations:
            return b""
        return (Path(next(iter(locations))) / "_version.py").read_bytes()
    except (OSError, ImportError, ValueError):
        return b""


def source_key() -> str | None:
    """Return the key of the package's sources as they are now (None if unreadable)."""
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} numpy{np.__version__.split('.')[0]}".encode())
    h.update(_version_file("numba") + b"\0" + _version_file("llvmlite"))
    try:
        for path in sorted(PACKAGE_DIR.rglob("*.py")):
            if path.name.startswith(".#"):   # an editor's lock file, not a source
                continue
            h.update(str(path.relative_to(PACKAGE_DIR)).encode())
            h.update(path.read_bytes())
    except OSError:
        return None
    return h.hexdigest()[:20]


#: The key of the sources this process imported: taken once, when the first
#: kernel module imports this one, so that a file edited later (or during a
#: build) cannot make a library of other code look current.
IMPORTED_KEY = source_key()


def library_folder() -> Path | None:
    """Return the folder of the kernel library, or None when ``GPSSIGNAL_KERNELS=jit``.

    Raises ``ValueError`` for a relative path (it would mean another folder
    in each working directory).
    """
    chosen = os.environ.get(KERNELS_VARIABLE, "")
    if chosen.strip().lower() == "jit":
        return None
    if not chosen:
        return PACKAGE_DIR / "__pycache__"
    folder = Path(chosen)
    if not folder.is_absolute():
        raise ValueError(f"{KERNELS_VARIABLE} = {chosen!r}: must be 'jit' or an absolute "
                         "folder path")
    return folder


def _paths(folder: Path, key: str) -> tuple[Path, Path]:
    """Return the extension file and its table of exports for ``key`` in ``folder``."""
    stem = f"{LIBRARY}.{key}"
    return (folder / (stem + importlib.machinery.EXTENSION_SUFFIXES[0]),
            folder / (stem + ".json"))


def _numba_debugging() -> bool:
    """Whether numba's settings ask it to compile other code than the library's."""
    return any(os.environ.get(k, "") not in ("", "0") for k in _NUMBA_DEBUG_SETTINGS) or \
        any(k.startswith("NUMBA_DEBUG") and v not in ("", "0") for k, v in os.environ.items())


def _trusted(folder: Path) -> bool:
    """Return whether no other user can write to ``folder`` (its library runs as our code)."""
    st = folder.stat()
    if st.st_mode & stat.S_IWOTH:
        return False
    return not hasattr(os, "getuid") or st.st_uid in (os.getuid(), 0)


@dataclass(frozen=True)
class _Library:
    """A loaded kernel library: the extension and its exports (kernel -> type key -> name)."""

    module: Any
    exports: dict[str, dict[str, str]]
    path: Path


def _library() -> _Library | None:
    """Return the current library, or None (not built, stale, or turned off)."""
    if not _LIB:
        with _LOCK:
            if not _LIB:
                _LIB.append(_find_library())
    return _LIB[0]  # type: ignore[no-any-return]


def _find_library() -> _Library | None:
    try:
        folder = library_folder()
    except ValueError:
        return None
    if folder is None or IMPORTED_KEY is None or _numba_debugging():
        return None
    so, table = _paths(folder, IMPORTED_KEY)
    try:
        if not (so.is_file() and table.is_file() and _trusted(folder)):
            return None
        return _load(so, json.loads(table.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def cpu_id() -> str:
    """Return a key of this machine's CPU model and instruction-set flags, or '' if unknown.

    From the first processor of ``/proc/cpuinfo`` (Linux: ``model name`` and
    ``flags``, or ``Features`` on ARM), without importing numba. A library
    built for the host CPU records it, and loads only where it is the same:
    elsewhere its instructions may not exist. Where the CPU cannot be told
    (no ``/proc/cpuinfo``), the library is built for the architecture's
    generic CPU instead and loads anywhere.
    """
    model = flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
                elif not key and flags:
                    break   # the end of the first processor's entry
    except OSError:
        return ""
    if not flags:
        return ""
    return hashlib.sha256(f"{platform.machine()}\0{model}\0{flags}".encode()).hexdigest()[:16]


def _load(so: Path, table: Any) -> _Library | None:
    """Load the extension ``so`` described by ``table``; None if either is not sound.

    ``table`` holds the extension's SHA-256 and its exports; an extension
    whose bytes do not match is never handed to the dynamic loader (a
    truncated one would crash the process, not raise).
    """
    exports = table.get("exports") if isinstance(table, dict) else None
    if isinstance(table, dict) and table.get("cpu", "") not in ("", cpu_id()):
        return None   # built for another CPU's instruction set
    ok = isinstance(exports, dict) and bool(exports) and all(
        isinstance(k, str) and isinstance(v, dict) and v
        and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())
        for k, v in exports.items())
    if not ok or table.get("sha256") != hashlib.sha256(so.read_bytes()).hexdigest():
        return None
    assert isinstance(exports, dict)   # checked above, for the type checker
    try:
        loader = importlib.machinery.ExtensionFileLoader(LIBRARY, str(so))
        spec = importlib.util.spec_from_file_location(LIBRARY, so, loader=loader)
        if spec is None:
            return None
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except (OSError, ImportError):
        return None   # unreadable, or built for another machine
    if not all(hasattr(module, name) for v in exports.values() for name in v.values()):
        return None
    return _Library(module=module, exports=exports, path=so)


def current_library() -> Path | None:
    """Return the path of the current library when it loads and is sound, else None."""
    lib = _library()
    return None if lib is None else lib.path


def kernels_in_use() -> str:
    """Return what ran this process's kernels.

    ``ahead-of-time`` (the library only), ``just-in-time`` (numba only),
    ``ahead-of-time (NAMES) and just-in-time (MODULES)`` (both), or ``none``
    (no kernel ran in this process; an evaluation's workers run theirs).
    """
    ahead, numba = sorted(_RAN_AHEAD), sorted(m.rsplit(".", 1)[-1] for m in _RAN_NUMBA)
    if ahead and numba:
        return f"ahead-of-time ({', '.join(ahead)}) and just-in-time ({', '.join(numba)})"
    return "ahead-of-time" if ahead else "just-in-time" if numba else "none"


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
                  check: Callable[[], None]) -> tuple[Path, int]:
    """Compile ``calls`` (from :func:`recording`) into the kernel library; return (path, exports).

    Each kernel is exported once per recorded argument-type key that names
    only exact types. The extension is compiled in a build folder beside
    its place and loaded from there; ``check()`` then runs (it raises if
    the results differ) and must resolve every exported kernel to the
    library. Only then is the extension moved into place, and its table
    after it, so that a reader never finds a library that was not checked.
    ``RuntimeError`` when it cannot be compiled (numba's ``pycc`` needs
    setuptools and a C compiler), when the check did not use it, or when
    the sources changed during the build; ``OSError`` when the folder
    cannot be written; ``ValueError`` for a relative ``GPSSIGNAL_KERNELS``.
    """
    import tempfile

    import numba
    try:
        from numba.pycc import CC
    except ImportError as exc:   # pycc builds with setuptools, absent from new venvs
        raise RuntimeError(f"numba's ahead-of-time compiler cannot start ({exc})") from None

    folder = library_folder() or PACKAGE_DIR / "__pycache__"
    if IMPORTED_KEY is None:
        raise RuntimeError(f"cannot read the package's sources in {PACKAGE_DIR}")
    so, table = _paths(folder, IMPORTED_KEY)
    folder.mkdir(parents=True, exist_ok=True)
    if not _trusted(folder):
        raise RuntimeError(f"{folder}: other users may write to it; a library there is "
                           "never loaded")
    _remove_stale(folder, so)
    exports: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(dir=folder, prefix=f"{LIBRARY}.build-") as tmp, \
            _temporary_files_in(tmp):
        try:
            cc = CC(LIBRARY)   # looks for the C compiler
        except Exception as exc:
            raise RuntimeError(f"numba's ahead-of-time compiler cannot start: "
                               f"{_first_line(exc)}") from None
        cc.output_dir = tmp
        cc.verbose = False
        cpu = cpu_id()
        if cpu:   # this machine's instruction set; loaded only where the CPU is the same
            cc.target_cpu = "host"
        for kernel, by_key in sorted(calls.items(), key=lambda kv: kv[0].export_name):
            for i, (key, args) in enumerate(sorted(by_key.items())):
                if "?" in key:
                    continue   # an argument typed inexactly by the key: never exported
                types = tuple(numba.typeof(a) for a in args)
                ret = next((s.return_type for s in kernel.made().nopython_signatures
                            if tuple(s.args) == types), None)
                if ret is None:
                    continue   # not compiled by the recording run with these types
                name = f"{kernel.export_name}__{i}"
                cc.export(name, ret(*types))(kernel.py_func)
                exports.setdefault(kernel.export_name, {})[key] = name
        if not exports:
            raise RuntimeError("no kernel was recorded with exact argument types")
        try:
            with _plain_reference_counts(), _host_features(bool(cpu)):
                cc.compile()
        except Exception as exc:   # no C compiler, a failed link: distutils' own errors
            raise RuntimeError(f"numba's ahead-of-time compiler failed: "
                               f"{_first_line(exc)}") from None
        built = next(Path(tmp).glob(LIBRARY + "*" + importlib.machinery.EXTENSION_SUFFIXES[0]))
        described = {"sha256": hashlib.sha256(built.read_bytes()).hexdigest(),
                     "exports": exports, "cpu": cpu}
        lib = _load(built, described)
        if lib is None:
            raise RuntimeError(f"the compiled library {built.name} does not load")
        names = {k.__name__ for k in calls if k.export_name in exports}
        with _LOCK:
            saved = (list(_LIB), set(_RAN_AHEAD))
            _LIB[:] = [lib]
            _RAN_AHEAD.clear()
            try:
                check()
                unused = names - _RAN_AHEAD
            finally:
                _LIB[:], ran = saved
                _RAN_AHEAD.clear()
                _RAN_AHEAD.update(ran)
        if unused:
            raise RuntimeError(f"the check did not run {', '.join(sorted(unused))} from the "
                               "library")
        if source_key() != IMPORTED_KEY:
            raise RuntimeError(f"the package's sources changed during the build ({PACKAGE_DIR}); "
                               "build again")
        part = Path(tmp) / "table.json"
        part.write_text(json.dumps(described, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(built, so)
        os.replace(part, table)
    _LIB.clear()
    return so, sum(len(v) for v in exports.values())


@contextmanager
def _host_features(host: bool) -> Iterator[None]:
    """Give ``pycc``'s code for the host CPU the host's instruction-set features too.

    For ``target_cpu = "host"`` ``pycc`` names the CPU model only
    (``AOTCPUCodegen`` in ``numba/core/codegen.py``), so LLVM would assume
    every feature of that model, even one a virtual machine hides. numba's
    own compiler passes the features the CPU reports
    (``get_host_cpu_features``); so does the library's build meanwhile.
    """
    from numba.core import codegen
    aot = getattr(codegen, "AOTCPUCodegen", None)
    features = getattr(codegen, "get_host_cpu_features", None)
    if not host or aot is None or features is None:
        yield
        return
    before = aot._customize_tm_features
    aot._customize_tm_features = lambda self: features()
    try:
        yield
    finally:
        aot._customize_tm_features = before


@contextmanager
def _plain_reference_counts() -> Iterator[None]:
    """Let ``pycc`` give the library reference counts without atomic instructions.

    Compiled code counts references to the arrays it holds in numba's
    runtime (``NRT_incref``/``NRT_decref``), with an atomic instruction each
    (``lock inc``), because numba's functions may run in threads without the
    GIL. The library's functions never do: ``pycc``'s entry points hold the
    GIL from call to return, and the package never hands one array to two
    threads at once. So while ``pycc`` generates the runtime's functions for
    the library (``create_nrt_module`` in ``numba/core/runtime/nrtdynmod.py``),
    the counter functions it asks for (``_define_atomic_inc_dec``) are plain
    load, add and store, returning the new count as the atomic ones do.
    (numba's own switch for this, ``_disable_atomicity``, returns the old
    count, so a release never frees: every array the library let go of
    leaked.) On the default day the atomic counts took about 12 % of the
    step loop's time; without them a day costs 7-10 % less CPU (README,
    Performance). numba's compiler for just-in-time code keeps its atomic
    counts. With another numba that lacks these names, the counts stay atomic.
    """
    from numba.core.runtime import nrtdynmod
    define = getattr(nrtdynmod, "_define_atomic_inc_dec", None)
    word = getattr(nrtdynmod, "_word_type", None)
    if define is None or word is None:
        yield
        return

    def plain(module: Any, op: str, ordering: str) -> Any:
        from llvmlite import ir
        fn = ir.Function(module, ir.FunctionType(word, [word.as_pointer()]),
                         name=f"nrt_atomic_{op}")
        builder = ir.IRBuilder(fn.append_basic_block())
        [ptr] = fn.args
        new = getattr(builder, op)(builder.load(ptr), ir.Constant(word, 1))
        builder.store(new, ptr)
        builder.ret(new)
        return fn

    nrtdynmod._define_atomic_inc_dec = plain
    try:
        yield
    finally:
        nrtdynmod._define_atomic_inc_dec = define


@contextmanager
def _temporary_files_in(folder: str) -> Iterator[None]:
    """Make ``tempfile`` put its files in ``folder`` meanwhile.

    numba's ``pycc`` probes the C compiler in temporary folders it does not
    remove; inside the build folder they go when the build folder goes.
    """
    import tempfile

    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before


def _first_line(exc: BaseException) -> str:
    """Return the first line of an error's message (its type when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _remove_stale(folder: Path, keep: Path) -> None:
    """Remove this interpreter's libraries of other sources, and builds killed long ago.

    Only files this module names (``_gpssignal_kernels.*``) with this
    interpreter's extension suffix, and their tables: libraries of other
    interpreters sharing the folder stay.
    """
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for old in folder.glob(f"{LIBRARY}.*{suffix}"):
        if old != keep and len(old.name) == len(keep.name):
            old.unlink(missing_ok=True)
            old.with_name(old.name[: -len(suffix)] + ".json").unlink(missing_ok=True)
    for build in folder.glob(f"{LIBRARY}.build-*"):
        try:
            if build.is_dir() and time.time() - build.stat().st_mtime > _STALE_BUILD_S:
                for f in build.iterdir():
                    f.unlink(missing_ok=True)
                build.rmdir()
        except OSError:
            pass   # another build's, or not ours to clean: leave it
