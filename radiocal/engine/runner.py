"""Run a validated pipeline into an output directory, resuming where a previous run stopped.

Each step is checkpointed to ``OUTDIR/store.zarr`` before its completion record is written:

* a *source* step (``convert``) writes its datasets as a new store;
* a *transform* writes the variables it changed (compared by dask key with its input) through
  ``radiocal.store.zarr_store.update_store`` (which stages the new values before moving them in, so a
  kill mid-step leaves the store as it was). Variables it overwrites are first copied into the
  step's record group, so that when an earlier step's config changes, later steps can be undone
  exactly;
* a *sink* (``export``) writes its product itself.

On a re-run the records whose chain hash still matches are skipped; the first that does not (config
or inputs changed, or never completed) and all later ones are undone in reverse order (backed-up
variables restored) and redone.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import xarray as xr

from radiocal import __version__
from radiocal.engine import checkpoint as ckpt
from radiocal.engine import numba as jit
from radiocal.engine.context import StepContext
from radiocal.engine.pipeline import PipelineStep
from radiocal.engine.progress import MemoryMonitor, progress
from radiocal.engine.provenance import write_provenance
from radiocal.errors import ConfigError, InputError

log = logging.getLogger("radiocal.engine")

STORE_NAME = "store.zarr"
LOG_NAME = "log.txt"
PROVENANCE_NAME = "provenance.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _zarr_store():
    from radiocal.store import zarr_store

    return zarr_store


def changed_variables(before: list[xr.Dataset], after: list[xr.Dataset], label: str) -> tuple[list, list]:
    """Variables a transform rewrote (``overwrites``) or added (``creates``), over all partitions.

    A variable is unchanged when it is the very dask array the step was given (same key).
    """
    if not isinstance(after, list) or not all(isinstance(ds, xr.Dataset) for ds in after):
        raise TypeError(f"step {label} must return a list of xarray Datasets")
    names_before = [ckpt.partition_of(ds) for ds in before]
    names_after = [ds.attrs.get("partition") for ds in after]
    if names_before != names_after:
        raise TypeError(f"step {label} changed the partitions ({names_before} -> {names_after}); "
                        "a transform must keep them and write other products itself")
    overwrites, creates = set(), set()
    for old, new in zip(before, after):
        rewritten, made = _changed_in(old, new, label)
        overwrites |= rewritten
        creates |= made
    return sorted(overwrites), sorted(creates)


def _changed_in(old: xr.Dataset, new: xr.Dataset, label: str) -> tuple[set, set]:
    """The variables one partition's transform rewrote and added."""
    overwrites, creates = set(), set()
    for name, var in new.data_vars.items():
        if name not in old.data_vars:
            creates.add(name)
        elif not _same_array(old[name].data, var.data):
            if old[name].shape != var.shape:
                raise TypeError(f"step {label} changed the shape of {name}")
            overwrites.add(name)
    return overwrites, creates


def _same_array(a, b) -> bool:
    if a is b:
        return True
    name_a, name_b = getattr(a, "name", None), getattr(b, "name", None)
    return name_a is not None and name_a == name_b



@contextmanager
def run_log(outdir):
    """Send every ``radiocal`` logger's INFO messages to ``outdir/log.txt`` (appended) while
    the block runs; yields the handler. Also used before a run starts (e.g. the role choice of
    ``radiocal phaseref``), so the log holds what was decided before the steps."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(outdir / LOG_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("radiocal")
    previous_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)  # the log file always gets INFO; -q only quiets stderr
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()

class PipelineRunner:
    """Run ``steps`` into ``outdir`` on ``engine`` (an started :class:`Engine` or None).

    Parameters
    ----------
    steps : list of PipelineStep
        From :func:`radiocal.engine.pipeline.load_pipeline`.
    outdir : path
        Output directory; created if needed. Holds ``store.zarr``, ``log.txt``, ``provenance.json``.
    engine : Engine, optional
        Where work runs; None uses whatever dask scheduler is current.
    show_progress : bool
        Draw progress bars on stderr.
    """

    def __init__(self, steps: list[PipelineStep], outdir, engine=None, show_progress: bool = False):
        self.steps = steps
        self.outdir = Path(outdir).expanduser().resolve()
        self.store = self.outdir / STORE_NAME
        self.engine = engine
        self.show_progress = show_progress
        self._file_log = logging.getLogger("radiocal.runlog")
        self.inputs = sorted({p for s in steps for p in ckpt.input_paths(s.config)})
        # The store's partitions as last opened, while nothing has written them since: opening
        # a 28-partition store reads ~3000 metadata files (0.6 CPU-s), and the steps after the
        # last transform (dynspec, export, report) would each open it again unchanged.
        self._opened: list[xr.Dataset] | None = None
        for path in self.inputs:
            if self.outdir == path or path in self.outdir.parents or self.outdir in path.parents:
                raise ConfigError(f"output directory {self.outdir} overlaps input {path}; "
                                  "inputs are never written to")

    # -- hashes and resume -----------------------------------------------------------------

    def _chain(self) -> list[tuple[str, list]]:
        chain, previous = [], ""
        for step in self.steps:
            identities = [ckpt.path_identity(p) for p in ckpt.input_paths(step.config)]
            previous = ckpt.chain_hash(previous, step.spec.name, step.config, identities)
            chain.append((previous, identities))
        return chain

    def _resume_point(self, records: list[dict], chain) -> int:
        done = 0
        for step, record, (digest, _) in zip(self.steps, records, chain):
            if (record.get("key") != ckpt.record_key(step.index, step.spec.name)
                    or record.get("status") != "complete" or record.get("chain") != digest):
                break
            done += 1
        return done

    def _undo(self, records: list[dict]) -> None:
        """Undo records (latest first), restoring what they overwrote; source records need none."""
        store = _zarr_store()
        self._opened = None
        for record in reversed(records):
            # the partitions the step changed (None in records of older runs: all of them)
            partitions = record.get("partitions")
            overwrites = record.get("overwrites") or []
            if overwrites and record.get("backup_complete"):
                log.info("undoing step %s: restoring %s", record["key"], ", ".join(overwrites))
                current = [ds for ds in store.open_store(self.store)
                           if partitions is None or ckpt.partition_of(ds) in partitions]
                saved = ckpt.open_previous(self.store, record["key"], current, overwrites)
                store.update_store(saved, self.store, overwrites)
            creates = record.get("creates") or []
            if creates:
                store.drop_variables(self.store, creates, partitions)
            ckpt.delete_record(self.store, record["key"])

    # -- running ---------------------------------------------------------------------------

    def run(self) -> dict:
        """Run (or resume) the pipeline; return the provenance document also written to disk."""
        with run_log(self.outdir) as handler:
            # Failures reach the terminal once, as the CLI's one-line error; the log file gets
            # them here.
            self._file_log.propagate = False
            self._file_log.addHandler(handler)
            try:
                return self._run()
            finally:
                self._file_log.removeHandler(handler)

    def _run(self) -> dict:
        started = time.monotonic()
        chain = self._chain()
        records = ckpt.read_records(self.store) if self.store.exists() else []
        resume = self._resume_point(records, chain)
        if resume and resume < len(records):
            try:
                self._undo(records[resume:])
            except (OSError, ValueError, KeyError, InputError) as err:
                # e.g. a kill during update_store's final moves left the store marked incomplete
                log.warning("cannot undo steps after %s (%s): starting over",
                            records[resume - 1]["key"], err)
                resume = 0
        elif resume == 0 and records:
            log.info("no reusable steps in %s: starting over", self.store)
        by_key = {r["key"]: r for r in records}
        document = {
            "radiocal_version": __version__,
            "started": _now(),
            "outdir": str(self.outdir),
            "engine": self.engine.describe() if self.engine is not None else {"kind": "current"},
            "inputs": [ckpt.path_identity(p) for p in self.inputs],
            "pipeline": [{"step": s.spec.name, **ckpt.config_dict(s.config)} for s in self.steps],
            "steps": [],
            "status": "running",
        }
        if "chunk_bytes" in document["engine"]:   # the engine logged it to stderr, before log.txt
            self._file_log.info("engine: %s, chunk budget %.1f MiB", document["engine"]["kind"],
                                document["engine"]["chunk_bytes"] / 2**20)
        path = self.outdir / PROVENANCE_NAME
        try:
            self._steps(chain, resume, by_key, document, path)
        except BaseException as err:
            # Provenance tells a reader the run did not finish, and why; the records let it resume.
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            self._file_log.error("pipeline %s: %s", "interrupted" if interrupted else "failed",
                                 reason)
            document.update(status="interrupted" if interrupted else "failed", error=reason,
                            finished=_now(), wall_time_s=round(time.monotonic() - started, 3))
            write_provenance(path, document)
            raise
        document.update(status="complete", finished=_now(),
                        wall_time_s=round(time.monotonic() - started, 3))
        write_provenance(path, document)
        return document

    def _steps(self, chain, resume: int, by_key: dict, document: dict, path: Path) -> None:
        # The kernels the steps to run compile on first use: in the background from now on
        jit.prewarm([s.spec.name for s in self.steps if s.index >= resume])
        for step, (digest, identities) in zip(self.steps, chain):
            key = ckpt.record_key(step.index, step.spec.name)
            if step.index < resume:
                log.info("step %d/%d %s: already complete, skipped",
                         step.index + 1, len(self.steps), step.spec.name)
                record = by_key[key]
                document["steps"].append(self._summary(record, "skipped"))
                continue
            log.info("step %d/%d %s: running", step.index + 1, len(self.steps), step.spec.name)
            # What a step prepares in the background starts with the step before it (not with
            # the run: the flagging beforehand keeps every core busy), or with the step itself
            # when the run begins with it.
            if step.index == resume:
                self._prepare(step)
            if step.index + 1 < len(self.steps):
                self._prepare(self.steps[step.index + 1])
            record = {"key": key, "index": step.index, "name": step.spec.name, "kind": step.spec.kind,
                      "chain": digest, "config": ckpt.config_dict(step.config), "inputs": identities,
                      "radiocal_version": __version__, "status": "running", "started": _now()}
            t0, cpu0 = time.monotonic(), time.process_time()
            with MemoryMonitor(self.engine) as memory:
                self._execute(step, record)
            # CPU of this process (in-process workers included; worker processes are not): on a
            # shared machine the figure to compare between runs, where wall time is not.
            record.update(status="complete", finished=_now(),
                          wall_time_s=round(time.monotonic() - t0, 3),
                          cpu_time_s=round(time.process_time() - cpu0, 3),
                          peak_memory_bytes=memory.peak_rss,
                          peak_worker_memory_bytes=memory.peak_workers)
            # The record is written only after the step's output is in the store.
            ckpt.write_record(self.store, record)
            log.info("step %s: done in %.1f s, peak memory %.0f MB", step.spec.name,
                     record["wall_time_s"], memory.peak_rss / 1e6)
            document["steps"].append(self._summary(record, "ran"))
            write_provenance(path, document)

    @staticmethod
    def _summary(record: dict, status: str) -> dict:
        return {"step": record.get("name"), "index": record.get("index"), "status": status,
                "config": record.get("config"), "chain": record.get("chain"),
                "wall_time_s": record.get("wall_time_s"), "cpu_time_s": record.get("cpu_time_s"),
                "peak_memory_bytes": record.get("peak_memory_bytes"),
                "peak_worker_memory_bytes": record.get("peak_worker_memory_bytes"),
                "overwrites": record.get("overwrites", []), "creates": record.get("creates", [])}

    def _context(self, step: PipelineStep) -> StepContext:
        return StepContext(outdir=self.outdir, store=self.store,
                           logger=logging.getLogger(f"radiocal.step.{step.spec.name}"),
                           engine=self.engine, step_name=step.spec.name, index=step.index,
                           inputs=list(self.inputs), inputs_stored=True)

    def _prepare(self, step: PipelineStep) -> None:
        if step.spec.prepare is not None:
            step.spec.prepare(self._context(step))

    def _bar(self, step: PipelineStep, what: str = ""):
        label = f"[{step.index + 1}/{len(self.steps)}] {step.spec.name}{what}"
        return progress(label, self.engine, enabled=self.show_progress)

    def _execute(self, step: PipelineStep, record: dict) -> None:
        store = _zarr_store()
        context = self._context(step)
        label = step.label
        if step.spec.kind == "source":
            datasets = step.spec.run([], step.config, context)
            if not datasets:
                raise ConfigError(f"step {label}: produced no data (check the inputs and selection)")
            self._opened = None
            with self._bar(step):
                # overwrite: the store is this run's own output and nothing in it is reusable.
                store.write_store(datasets, self.store, overwrite=True)
            return
        inputs = self._open()
        ckpt.write_record(self.store, record)
        if step.spec.kind == "sink":
            with self._bar(step):
                step.spec.run(inputs, step.config, context)
            return
        outputs = step.spec.run(inputs, step.config, context)
        overwrites, creates = changed_variables(inputs, outputs, label)
        # Only the partitions the step changed are backed up, written and undone: a step limited
        # to some fields passes the others by, and they may lack the variables it makes.
        changed = [i for i, (old, new) in enumerate(zip(inputs, outputs))
                   if any(_changed_in(old, new, label))]
        record.update(overwrites=overwrites, creates=creates, backup_complete=False,
                      partitions=[ckpt.partition_of(inputs[i]) for i in changed])
        if not overwrites and not creates:
            return
        ckpt.write_record(self.store, record)
        if overwrites:
            with self._bar(step, " (saving previous values)"):
                ckpt.save_previous(self.store, record["key"], [inputs[i] for i in changed],
                                   overwrites)
            record["backup_complete"] = True
            ckpt.write_record(self.store, record)
        # update_store computes into a staging group before moving anything into place, so the
        # step may read the very variables it rewrites, and a kill leaves the store untouched.
        opened, self._opened = self._opened, None
        with self._bar(step):
            store.update_store([outputs[i] for i in changed], self.store, overwrites + creates)
        # only the partitions written are opened again
        reopened = iter(store.open_store(self.store, [ckpt.partition_of(inputs[i]) for i in changed]))
        written = set(changed)
        self._opened = [next(reopened) if i in written else ds for i, ds in enumerate(opened)]

    def _open(self) -> list[xr.Dataset]:
        """The store's partitions, opened again only when a step has written them; each step
        gets copies (a step that changed a dataset's attributes in place would change them for
        the next)."""
        if self._opened is None:
            self._opened = _zarr_store().open_store(self.store)
        return [ds.copy() for ds in self._opened]


def run_pipeline(steps: list[PipelineStep], outdir, engine=None, show_progress: bool = False) -> dict:
    """Run (or resume) ``steps`` into ``outdir``; see :class:`PipelineRunner`."""
    return PipelineRunner(steps, outdir, engine, show_progress).run()

