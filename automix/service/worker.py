"""Worker processes: claim a queued job, run the library on the job's folder, record the result.

Jobs never run in the web process. `WorkerPool` starts ``n`` processes
(``python -m automix.service.worker``) and restarts any that exit; each one loops over
`JobStore.claim`, runs the job while a heartbeat thread renews its lease and writes progress,
then stores the result or a problem+json error. A worker exits when its parent process is gone,
so none outlives the server.

Job folder layout (``<jobs_dir>/<id>/``): ``input.<ext>`` or ``stems/``, optional
``reference.<ext>``, ``target.json``, ``settings_in.json``; outputs ``master.<fmt>``,
``master.json`` (sidecar), ``master_preview/*.wav``, ``report.html``, ``settings.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automix import memory
from automix.service.problems import problem
from automix.service.store import Job, JobStore

if TYPE_CHECKING:
    from automix.references import ReferenceCache

# Library thread pools read these when first imported: one thread per worker process.
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")}
DEFAULT_LEASE_S = 30.0
POLL_S = 0.2
# Progress is estimated from elapsed time: about this many seconds plus this many per second
# of audio on one core (master with previews and report, measured on 3-30 s songs).
EXPECTED_BASE_S = 2.0
EXPECTED_PER_AUDIO_S = 0.15
CHAIN_SECONDS = 20.0  # the search of a job with a chain of plug-ins ...
CHAIN_SECONDS_ENV = "AUTOMIX_CHAIN_SECONDS"  # ... unless the server's environment says
PRIVATE_KEYS = ("input", "output", "previews", "report", "sidecar", "request")  # local paths


def mix_available() -> bool:
    """Whether this build has `automix.mixing` (mix jobs); found without importing it, so
    that the web process stays light."""
    return importlib.util.find_spec("automix.mixing") is not None


def chain_seconds() -> float:
    return float(os.environ.get(CHAIN_SECONDS_ENV, CHAIN_SECONDS))


def _options(job_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Reference, target, ceiling and amounts: what master, suggest and mix options share."""
    from automix.settings import Amounts

    reference = params.get("reference_file")
    target = params.get("target_file")
    return {"reference": str(job_dir / reference) if reference else params["reference"],
            "target": str(job_dir / target) if target else params.get("target"),
            "ceiling_dbtp": params.get("ceiling_dbtp"), "character": params.get("character"),
            "amounts": Amounts.parse(params.get("amounts"))}


def run_job(job: Job, job_dir: Path, cache: ReferenceCache | None = None) -> dict[str, Any]:
    """Run ``job`` on its folder; return what the API shows as its result (no local paths).
    ``cache`` is the worker's: a reference file sent with many jobs is analysed once."""
    from automix import __version__
    from automix.files import chain_master_file, master_file, mix_file, suggest_file
    from automix.report import eq_curve, master_settings, settings_groups, stem_table
    from automix.settings import MasterOptions, MixOptions, OutputOptions, write_document

    params = job.params
    opts = _options(job_dir, params)
    if job.kind == "suggest":
        doc = suggest_file(job_dir / params["input"], job_dir / "settings.json",
                           MasterOptions(**opts), force=True, cache=cache)
        return {k: v for k, v in doc.items() if k not in PRIVATE_KEYS}
    fmt = params.get("format", "wav")
    settings = params.get("settings_file")
    settings_path = job_dir / settings if settings else None
    output = OutputOptions(output=job_dir / f"master.{fmt}", file_format=fmt,
                           bit_depth=params.get("bit_depth", 24), force=True, preview=True,
                           report=job_dir / "report.html")
    if job.kind == "mix":
        report = mix_file(job_dir / "stems", MixOptions(settings=settings_path, **opts), output,
                          stems_out=job_dir / "stems_out", cache=cache)
    elif params.get("chain"):  # the user's plug-ins, optimised for `chain_seconds`
        report = chain_master_file(job_dir / params["input"], params["chain"],
                                   MasterOptions(**opts), output, budget_s=chain_seconds())
        report["chain"] = {**report["chain"], "plugins": [  # no paths on the server
            {k: v for k, v in row.items() if k not in ("file", "preset")}
            for row in report["chain"]["plugins"]]}
    else:  # a page re-render edits settings: the loudness target must still hold
        report = master_file(job_dir / params["input"],
                             MasterOptions(settings=settings_path, refit_gain=settings is not None,
                                           **opts), output, cache=cache)
    write_document(job_dir / "settings.json",
                   {"automix": __version__, "settings": report["settings"],
                    "reference": {k: report["reference"][k] for k in ("name", "kind")},
                    "target": report["target"]})
    readable = {"eq_curve": eq_curve(report),  # for the page: the EQ applied, settings by module
                "settings_groups": settings_groups(master_settings(report)),
                "stem_table": stem_table(report)}  # a mix's stems; empty for a master
    return {k: v for k, v in report.items() if k not in PRIVATE_KEYS} | readable


def _error(exc: BaseException, job_dir: Path) -> dict[str, Any]:
    """The problem+json for a job that raised; local paths are cut from the message."""
    from automix.errors import AutomixError, first_line

    first = first_line(exc, "").replace(f"{job_dir}{os.sep}", "")
    if isinstance(exc, AutomixError):
        code = {"AudioInputError": "bad-audio", "OutputError": "output-error",
                "SettingsError": "bad-settings"}.get(type(exc).__name__, "automix-error")
        return problem(422, type(exc).__name__, first, code)
    return problem(500, "Internal error in the worker", f"{type(exc).__name__}: {first}",
                   "internal")


class _Heartbeat(threading.Thread):
    """Renews the lease every third of its length and writes an estimated progress."""

    def __init__(self, store: JobStore, job: Job, owner: str, lease_s: float) -> None:
        super().__init__(daemon=True)
        self.store, self.job, self.owner, self.lease_s = store, job, owner, lease_s
        self.stopped = threading.Event()
        duration = float(job.params.get("duration_s", 0.0))
        self.expected_s = EXPECTED_BASE_S + EXPECTED_PER_AUDIO_S * duration \
            + (chain_seconds() if job.params.get("chain") else 0.0)

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stopped.wait(self.lease_s / 3):
            progress = min(0.95, (time.monotonic() - t0) / self.expected_s)
            self.store.heartbeat(self.job.id, self.owner, self.lease_s,
                                 progress=round(progress, 3), stage="running")


def work(store: JobStore, jobs_dir: Path, *, lease_s: float = DEFAULT_LEASE_S,
         parent_pid: int | None = None, max_jobs: int | None = None) -> int:
    """Claim and run jobs until the parent exits or ``max_jobs`` are done; return the count."""
    from automix.references import ReferenceCache

    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    cache = ReferenceCache()  # this worker's: references analysed once across its jobs
    done = 0
    while max_jobs is None or done < max_jobs:
        if parent_pid is not None and os.getppid() != parent_pid:
            break
        job = store.claim(owner, lease_s)
        if job is None:
            time.sleep(POLL_S)
            continue
        job_dir = jobs_dir / job.id
        beat = _Heartbeat(store, job, owner, lease_s)
        beat.start()
        try:
            result = run_job(job, job_dir, cache)
        except (KeyboardInterrupt, SystemExit):
            store.release(job.id, owner)
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            store.fail(job.id, owner, _error(exc, job_dir))
        else:
            store.finish(job.id, owner, result)
        finally:
            beat.stopped.set()
            beat.join()
        done += 1
    return done


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """``python -m automix.service.worker --db FILE --jobs DIR``: one worker process."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--jobs", type=Path, required=True)
    parser.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE_S)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    memory.keep_freed_memory()  # a job process (see automix.memory)
    import automix.files  # noqa: F401 - warm up before the first claim, not inside a job
    import automix.mastering.pipeline  # noqa: F401

    work(JobStore(args.db), args.jobs, lease_s=args.lease_seconds, parent_pid=args.parent_pid)


class WorkerPool:
    """``n`` worker processes for one store, restarted when they exit (e.g. SIGKILL)."""

    def __init__(self, db_path: Path, jobs_dir: Path, n: int, *,
                 lease_s: float = DEFAULT_LEASE_S) -> None:
        self.db_path, self.jobs_dir, self.n, self.lease_s = db_path, jobs_dir, n, lease_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "automix.service.worker", "--db", str(self.db_path),
               "--jobs", str(self.jobs_dir), "--lease-seconds", str(self.lease_s),
               "--parent-pid", str(os.getpid())]
        return subprocess.Popen(cmd, env=os.environ | THREAD_ENV)

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.n)]
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self._stop.is_set():
                    self.procs[i] = self._spawn()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM each worker (a running job goes back to the queue), then SIGKILL."""
        self._stop.set()
        if self._supervisor.is_alive():
            self._supervisor.join()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
