"""The one set of numba settings, the decorator every kernel is compiled with (:func:`njit`), and
the form in which a kernel takes its options (:func:`record`).

``cache=True`` keeps compiled kernels between runs (important for short CLI runs and for workers);
``nogil=True`` lets dask's threads run kernels concurrently. No ``fastmath``: kernels test for NaN.

LLVM optimisation level: 1 unless ``NUMBA_OPT`` is set. Numba optimises each kernel's whole
linked call tree again at every level of it, and the flagging kernels' trees are deep: at the
default level 3 a first ``radiocal flag`` of the demo spent 115 CPU-s, at level 1 71 CPU-s
(spectral_block alone 57 -> 41 s), while the kernels ran as fast (spectral_block on
2 x 2000 x 192 x 4 samples 5.07 / 4.96 s; ``flag`` of a 7 M-visibility store 6.0-6.2 CPU-s at
both levels; level 0 ran 30x slower). Set before any kernel compiles: every kernel module imports
this one first, and numba's code generator reads the level when it first compiles.

One specialization per kernel and argument types: numba compiles a jitted callee again for every
constant a jitted caller passes it (``_loess(..., False, ...)`` and ``_loess(..., True, ...)``
were two compilations, each with its own copy of the call tree below), while a call from Python
never passes constants. :func:`njit` types a jitted caller's constants as their plain types,
so a kernel compiles once for a caller with a constant as for one with a variable: the two
flagging detectors compiled in 43 + 68 instead of 56 + 85 CPU-s (at load ~7) with the same flags.

Large callees linked after their caller is optimized (:func:`_finalize`): numba links each
jitted callee's optimized module into its caller's and then optimizes the whole again, at every
level of the call tree, so the flagging kernels' shared LOESS (~80 functions) was optimized
again in each of the four levels above it. Here a linked library of more than
:data:`_INLINABLE_FUNCTIONS` functions, optimized when it compiled, is linked in after its
caller's own code is optimized; small ones are linked before, as numba does, so LLVM still
inlines them (a per-sample helper called, not inlined, ran 2.5x slower). The demo's three flag
kernels compiled in 57 instead of 69 CPU-s (load 5-7), with the same flags, solutions and
spectra.

Large kernel callees not linked at all: linked after optimization, a callee's code was still
turned into machine code again at every level above it (the LOESS four times, ~1.2 CPU-s each).
A kernel's large callee that is itself a kernel is left out of its caller's module: the call
is resolved in numba's execution engine, which already holds the callee's machine code, and a
cached caller records the kernels it calls (:class:`_DependentCacheImpl`), which are loaded
before it. The time-only flagging detector and its LOESS compiled in 26 instead of 33 CPU-s
(one process, load 5-6), its flags bit for bit the same and as fast.

Long kernels called, not linked, however few functions they define: a kernel calling others
through kernels defines few functions itself, but its code can be thousands of instructions
(the time-only background, ~5000, in the detector calling it). LLVM does not inline such a
callee: in the flagging kernels' optimized code every linked kernel callee of more than ~150
instructions was still called, not inlined. Linked, its code was only optimized and turned into
machine code again in each caller; a kernel of more than :data:`_INLINABLE_INSTRUCTIONS` is
now called as a large one is.
"""

import dataclasses
import fcntl
import functools
import hashlib
import importlib
import os
import re
import sys
from pathlib import Path

import numba
import numba.core.config
import numpy as np
from numba.core import codegen, event, types
from numba.core.caching import CompileResultCacheImpl, FunctionCache, IndexDataCacheFile
from numba.core.compiler_lock import require_global_compiler_lock
from numba.core.registry import CPUDispatcher

JIT = dict(nogil=True, cache=True)

if "NUMBA_OPT" not in os.environ:
    os.environ["NUMBA_OPT"] = "1"
    numba.core.config.reload_config()


# A linked library defining more functions than this is a call tree (the flagging LOESS: ~80)
# and is linked in after its caller is optimized; smaller ones (a per-sample helper, numba's
# np.empty: 2-9) before, as numba does, so that LLVM can inline them into their callers' loops
# (a per-sample helper left a call ran 2.5x slower).
_INLINABLE_FUNCTIONS = 8

# A kernel whose code for linking is longer than this many LLVM instructions is called by the
# kernels calling it, not linked into them (see the module docstring). Per-sample helpers that
# LLVM inlines are far shorter (its threshold at numba's level is a cost of ~225).
_INLINABLE_INSTRUCTIONS = 400


def _instructions(library) -> int:
    """The LLVM instructions of ``library``'s code for linking (its indented IR lines), counted
    once per library."""
    count = getattr(library, "_radiocal_instructions", None)
    if count is None:
        count = str(library._get_module_for_linking()).count("\n  ")
        library._radiocal_instructions = count
    return count


# The dispatchers compiling, innermost last: a library finalized while a Kernel is innermost is
# that kernel's code (numba finalizes a dispatcher's library inside its "numba:compile" event).
_COMPILING: list = []


class _Compiling(event.Listener):
    def on_start(self, ev):
        _COMPILING.append(ev.data["dispatcher"])

    def on_end(self, ev):
        _COMPILING.pop()


event.register("numba:compile", _Compiling())


def _finalize(self):
    """``CPUCodeLibrary.finalize`` with the large linked libraries joined after this library's
    own module is optimized, not before, and, in a kernel's library, large kernels' libraries
    not joined at all (see the module docstring): numba's steps otherwise.

    ``_radiocal_calls`` of a kernel's library: the ``(module, name, argument types)`` of the
    kernels its code calls without holding their code, its own and those of the libraries it
    holds."""
    require_global_compiler_lock()
    self._codegen._check_llvm_bugs()
    self._raise_if_finalized()
    kernel = bool(_COMPILING) and isinstance(_COMPILING[-1], Kernel)
    after, calls = [], {}
    for library in dict.fromkeys(self._linking_libraries):
        self._reload_init.update(library._reload_init)
        module = library._get_module_for_linking()
        defined = sum(1 for fn in module.functions if not fn.is_declaration)
        spec = getattr(library, "_radiocal_kernel", None)
        if kernel and spec is not None and (defined > _INLINABLE_FUNCTIONS or
                                            _instructions(library) > _INLINABLE_INSTRUCTIONS):
            calls[spec] = None
        elif defined > _INLINABLE_FUNCTIONS:
            after.append(module)
        else:
            self._final_module.link_in(module, preserve=True)
        if kernel:
            calls.update(dict.fromkeys(getattr(library, "_radiocal_calls", ())))
    if kernel:
        self._radiocal_calls = tuple(calls)
    elif any(getattr(library, "_radiocal_calls", ()) for library in self._linking_libraries):
        # Code calling kernels it does not hold, cached by a cache that would not load them
        raise RuntimeError(f"{self.name}: a radiocal kernel called from a function that is not "
                           "one (compile it with radiocal._numba.njit)")
    self._optimize_final_module()
    for module in after:
        self._final_module.link_in(module, preserve=True)
    self._final_module.verify()
    self._finalize_final_module()


# The numba internals _finalize reorders, as numba 0.68's finalize names them: another numba
# whose finalize names other ones (the steps changed) keeps its own, slower to compile only.
_FINALIZE_NAMES = {"DUMP_FUNC_OPT", "_check_llvm_bugs", "_codegen", "_final_module",
                   "_finalize_final_module", "_get_module_for_linking", "_linking_libraries",
                   "_optimize_final_module", "_raise_if_finalized", "_reload_init", "add", "config",
                   "dump", "get_llvm_str", "link_in", "name", "require_global_compiler_lock",
                   "set", "update", "verify"}
if set(codegen.CPUCodeLibrary.finalize.__code__.co_names) == _FINALIZE_NAMES:
    codegen.CPUCodeLibrary.finalize = _finalize


def _module_file(root: Path, name: str) -> Path | None:
    """The source file of module ``name`` of the package at ``root`` (None if not a module)."""
    parts = name.split(".")[1:]
    for path in ([root.joinpath(*parts).with_suffix(".py")] if parts else []) + \
            [root.joinpath(*parts, "__init__.py")]:
        if path.is_file():
            return path
    return None


# "from X import a, b" (or a parenthesized list over lines) and "import X, Y", at a line's start
_FROM = re.compile(rb"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.M)
_IMPORT = re.compile(rb"^[ \t]*import[ \t]+([^\n]*)", re.M)


def _names(listed: bytes) -> list:
    listed = re.sub(rb"#[^\n]*", b"", listed).strip(b"() \t\n\\")
    return [part.split()[0].decode() for part in listed.split(b",") if part.split()]


@functools.lru_cache(maxsize=None)
def _read(file: Path, module: str) -> tuple:
    """The source of ``module`` (at ``file``) and the modules, or names that may be modules,
    it imports (a regular expression, not a parse: ~100x faster, and a false match in a
    string only adds a file to the digest)."""
    source = file.read_bytes()
    names = [name for match in _IMPORT.finditer(source) for name in _names(match[1])]
    for match in _FROM.finditer(source):
        base = match[1].decode()
        if base.startswith("."):   # relative: from the package ``level`` dots up
            level = len(base) - len(base.lstrip("."))
            base = ".".join(module.split(".")[:-level] + [base.lstrip(".")]).rstrip(".")
        names += [base] + [f"{base}.{name}" for name in _names(match[2])]
    return source, names


@functools.lru_cache(maxsize=None)
def sources_digest(module: str) -> str:
    """sha256 of the sources of ``module`` and of every module of its top-level package it
    imports, directly or not: what a kernel of ``module`` and its jitted callees are compiled
    from. ("" when the package's files cannot be found.)"""
    top = module.partition(".")[0]
    path = getattr(sys.modules.get(top), "__file__", None)
    if not path:
        return ""
    root = Path(path).parent if Path(path).name == "__init__.py" else Path(path)
    sources, todo = {}, [module]
    while todo:
        name = todo.pop()
        file = _module_file(root, name) if root.is_dir() else (root if name == top else None)
        if file is None or file in sources:
            continue
        sources[file], imported = _read(file, name)
        todo += [n for n in imported if n == top or n.startswith(top + ".")]
    digest = hashlib.sha256()
    for file in sorted(sources):
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        digest.update(sources[file])
    return digest.hexdigest()


class _DependentCacheImpl(CompileResultCacheImpl):
    """A kernel's cached code with the kernels it calls without holding their code
    (``_radiocal_calls``, see :func:`_finalize`): they are loaded (or compiled) before it, so
    that the engine resolves its calls to them.

    Each call is kept with the symbol of the callee it was compiled against: numba's symbols
    carry a per-process counter, so a callee compiled again (its own cache entry lost or
    outdated by its file's new modification time, while the caller's still holds) defines
    another symbol, and the cached caller's call would jump to nothing (a segfault after a
    ``touch`` of the callee's file). Such an entry is a cache miss: the caller compiles again."""

    def reduce(self, cres):
        calls = getattr(cres.library, "_radiocal_calls", ())
        return super().reduce(cres), tuple((*call, _symbol(*call)) for call in calls)

    def rebuild(self, target_context, payload):
        data, calls = payload
        try:
            for module, name, argtypes, symbol in calls:
                getattr(importlib.import_module(module), name).compile(argtypes)
                if _symbol(module, name, argtypes) != symbol:
                    return None
        except Exception:  # noqa: BLE001 - a kernel it calls is gone (or an older entry): a miss
            return None
        cres = super().rebuild(target_context, data)
        cres.library._radiocal_calls = tuple(call[:3] for call in calls)
        return cres


def _symbol(module, name, argtypes) -> str:
    """The symbol of kernel ``module.name``'s code for ``argtypes`` in this process."""
    return getattr(importlib.import_module(module), name).overloads[tuple(argtypes)].fndesc.mangled_name


class _LockedCache(FunctionCache):
    """numba's on-disk cache, whose saves hold a lock on the cache directory, and whose entries
    hold for the sources of the kernel's jitted callees too.

    numba's own cache entry holds while the kernel's file is unchanged (its modification time
    and size), and a cached caller holds its callees' code: after an edit of a callee in
    another file (``flagging/background.py``) a caller (``spectral._spectral_flags``) was
    loaded with the old callee's code. Here the entry also holds the digest of the sources of
    the modules the kernel's module imports from its package (:func:`sources_digest`): an edit
    of any of them makes numba compile the kernel again.

    A save reads the function's index, picks the first free data-file name and rewrites index
    and data file. Processes compiling ahead (:mod:`radiocal.engine.numba`) may save different
    specializations of one function at once: unlocked, both could pick the same data file, and
    the index could then name one signature's file holding the other's code.
    """

    _impl_class = _DependentCacheImpl

    def __init__(self, py_func):
        super().__init__(py_func)
        # numba's "source stamp" is any picklable value compared when the index is read.
        self._cache_file = IndexDataCacheFile(
            cache_path=self._cache_path, filename_base=self._impl.filename_base,
            source_stamp=(self._impl.locator.get_source_stamp(),
                          sources_digest(py_func.__module__)))

    def save_overload(self, sig, data):
        try:
            self._impl.locator.ensure_cache_path()
            lock = open(os.path.join(self._cache_path, "radiocal-save.lock"), "a")
        except OSError:   # an unwritable cache: numba's own save reports it as it would
            return super().save_overload(sig, data)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                super().save_overload(sig, data)
            except OSError:
                # A full disk or a file-size limit while caching: the kernel is compiled and
                # runs; a cache left unwritten only costs a compile next time. (Raised, it would
                # fail the task and hide the write of the user's data that meets the same limit.)
                pass


class Kernel(CPUDispatcher):
    """A jitted kernel whose jitted callers' constant arguments are typed as plain values."""

    def enable_caching(self):
        self._cache = _LockedCache(self.py_func)

    def add_overload(self, cres):
        # Named in the library, for its callers to call without holding it (see _finalize),
        # when its callers' cache can load it by that name.
        module, name = self.py_func.__module__, self.py_func.__name__
        if getattr(sys.modules.get(module), name, None) is self:
            cres.library._radiocal_kernel = (module, name, tuple(cres.signature.args))
        super().add_overload(cres)

    def get_call_template(self, args, kws):
        return super().get_call_template(
            tuple(types.unliteral(a) for a in args),
            {name: types.unliteral(a) for name, a in kws.items()})


def njit(func=None, **options):
    """``numba.njit`` with :data:`JIT` (``options`` added, e.g. ``error_model``), compiled as a
    :class:`Kernel`: ``@njit`` or ``@njit(error_model="numpy")``."""
    jit_options = {**JIT, **options}
    cache = jit_options.pop("cache")

    def decorate(function):
        if numba.core.config.DISABLE_JIT:
            return function
        kernel = Kernel(py_func=function, locals={},
                        targetoptions={"nopython": True, "boundscheck": None, **jit_options})
        if cache:
            kernel.enable_caching()
        return kernel

    return decorate if func is None else decorate(func)


def record(params) -> np.void:
    """Options declared as a frozen dataclass (a flagger's of ``flagging/params.py``), as the one
    argument a jitted kernel takes: a numpy structured scalar of the numbers and switches, under
    their names.

    Each is typed as its default, whatever a strategy file wrote (``threshold: 6`` is a float),
    so one specialization serves every strategy; the rest (``scans``, tuples) are not the
    kernel's. The dataclass stays the options' one declaration: no list of fields is kept here.
    """
    fields = [f for f in dataclasses.fields(params) if type(f.default) in (bool, int, float)]
    dtype = np.dtype([(f.name, type(f.default)) for f in fields])
    return np.array(tuple(getattr(params, f.name) for f in fields), dtype)[()]
