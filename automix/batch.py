"""Many songs at once: a local process pool by default, Ray tasks for a cluster.

A job is plain data (paths and options), never audio: it crosses processes and Ray as is,
and the worker loads the audio and builds the pedalboard plugins itself. A job whose output
and JSON sidecar both exist, the sidecar (written last) recording the same request (options,
format, bit depth: `settings.request_of`), is finished and skipped, so an interrupted batch
resumes where it stopped and a batch rerun with other settings redoes every song; ``force``
redoes all. One failing song never stops the others.
"""

from __future__ import annotations

import json
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automix.audio import READ_EXTENSIONS
from automix.errors import AutomixError, SettingsError, first_line

if TYPE_CHECKING:
    from automix.references import ReferenceCache
    from automix.settings import MasterOptions, MixOptions, OutputOptions

MODES = ("master", "mix")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One song: ``input`` is a file (master) or a folder of stems (mix)."""

    name: str
    mode: str
    input: str
    output: str
    # `MasterOptions` / `MixOptions` as keywords; "amounts" as `Amounts.parse` reads it
    options: dict[str, Any] = field(default_factory=dict)
    file_format: str = "wav"
    bit_depth: int = 24

    @property
    def sidecar(self) -> Path:
        return Path(self.output).with_suffix(".json")

    def library_options(self) -> tuple[MasterOptions | MixOptions, OutputOptions]:
        """The options `files.master_file` or `files.mix_file` runs this job with."""
        from automix.settings import Amounts, MasterOptions, MixOptions, OutputOptions

        options = dict(self.options)
        amounts = Amounts.parse(options.pop("amounts", None))
        kind = MasterOptions if self.mode == "master" else MixOptions
        return kind(amounts=amounts, **options), OutputOptions(
            output=Path(self.output), file_format=self.file_format, bit_depth=self.bit_depth,
            force=True)

    def is_done(self) -> bool:
        """Whether the output and its sidecar exist, the sidecar made with this request."""
        from automix.settings import request_of

        if not Path(self.output).exists():
            return False
        try:
            made = json.loads(self.sidecar.read_text(encoding="utf-8")).get("request")
        except (OSError, ValueError, AttributeError):  # absent, unreadable, not an object
            return False
        return made == request_of(*self.library_options())


@dataclass
class JobResult:
    name: str
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    audio_s: float = 0.0  # duration of the song produced
    output: str = ""
    error: str = ""


def plan(input_dir: Path, out_dir: Path, *, mode: str, file_format: str = "wav",
         bit_depth: int = 24, options: dict[str, Any] | None = None) -> list[Job]:
    """The jobs for ``input_dir``: each audio file (master) or each sub-folder (mix) is one
    song, written to ``out_dir/<name>.<fmt>``. A sub-folder with a ``stems/`` folder in it
    (``song/stems/*`` beside the song's own mix, the layout of the real-music data) is mixed
    from those stems."""
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r}; choose {' or '.join(MODES)}")
    if not input_dir.is_dir():
        raise SettingsError(f"{input_dir}: not a folder")
    if mode == "master":
        songs = [p for p in sorted(input_dir.iterdir()) if p.is_file()
                 and not p.name.startswith(".") and p.suffix.lower() in READ_EXTENSIONS]
        names = [p.stem for p in songs]
    else:
        folders = [p for p in sorted(input_dir.iterdir()) if p.is_dir()
                   and not p.name.startswith(".")]
        songs = [p / "stems" if (p / "stems").is_dir() else p for p in folders]
        names = [p.name for p in folders]
    if not songs:
        kind = "audio files" if mode == "master" else "folders of stems"
        raise SettingsError(f"{input_dir}: no {kind} to {mode}")
    return [Job(name, mode, str(song), str(out_dir / f"{name}.{file_format}"),
                dict(options or {}), file_format, bit_depth)
            for name, song in zip(names, songs, strict=True)]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (a `Job` as a dict) where it lands; return a `JobResult` as a dict.

    Never raises for a song's failure: the error is returned as one line.
    """
    import soundfile as sf

    from automix.files import master_file, mix_file

    j = Job(**job)
    t0 = time.perf_counter()
    try:
        options, output = j.library_options()
        if j.mode == "master":
            master_file(Path(j.input), options, output, cache=_cache)
        else:
            mix_file(Path(j.input), options, output, cache=_cache)
        audio_s = float(sf.info(j.output).duration)
        return asdict(JobResult(j.name, "done", time.perf_counter() - t0, audio_s, j.output))
    except AutomixError as exc:
        message = first_line(exc)
    except Exception as exc:  # noqa: BLE001 - one song's bug must not stop the batch
        if os.environ.get("AUTOMIX_DEBUG"):
            traceback.print_exc()
        message = f"internal error ({type(exc).__name__}: {first_line(exc, '')})"
    return asdict(JobResult(j.name, "failed", time.perf_counter() - t0, error=message))


_cache: ReferenceCache | None = None  # a worker's own, made by `_init_worker`


def _init_worker() -> None:
    """One thread per worker: the pool's processes share the cores; freed memory kept for
    the next song (see `automix.memory`); and a cache of the reference files' analyses, so
    that songs mastered against one file analyse it once per worker."""
    global _cache
    import torch

    from automix import memory
    from automix.references import ReferenceCache

    memory.keep_freed_memory()
    torch.set_num_threads(1)
    _cache = ReferenceCache()


def _init_pool_worker() -> None:
    """As `_init_worker`; and Ctrl-C is the parent's to handle: it stops the pool with SIGTERM,
    which ends the song in progress cleanly (its writers remove their partial files)."""
    _init_worker()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _pool_job(job: dict[str, Any]) -> dict[str, Any]:
    """`run_job` in a pool worker, which exits once a SIGTERM has unwound the song (the pool
    would otherwise catch the exit and take the next song)."""
    try:
        return run_job(job)
    except SystemExit as stop:
        os._exit(stop.code if isinstance(stop.code, int) else 1)


def default_jobs() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def run(jobs: list[Job], *, engine: str = "local", workers: int | None = None,
        address: str | None = None, force: bool = False,
        on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run ``jobs`` (finished ones are skipped, unless ``force``: see `Job.is_done`); return
    one result per job, in job order.

    ``on_result`` is called as each job ends (for progress). ``engine`` "local" runs a
    process pool of ``workers`` (default half the cores); "ray" runs Ray tasks on the cluster
    at ``address`` (default: a local Ray instance started here and shut down after).
    """
    if engine not in ENGINES:
        raise SettingsError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    workers = workers or default_jobs()
    if workers < 1:
        raise SettingsError(f"--jobs must be at least 1; got {workers}")
    results: dict[str, JobResult] = {}
    pending = []
    for job in jobs:
        if not force and job.is_done():
            results[job.name] = JobResult(job.name, "skipped", output=job.output)
            if on_result:
                on_result(results[job.name])
        else:
            pending.append(job)
    runner = _run_local if engine == "local" else _run_ray
    with closing(runner(pending, workers, address)) as finished:  # Ctrl-C stops the runner now
        for result in finished:
            results[result.name] = result
            if on_result:
                on_result(result)
    return [results[j.name] for j in jobs]


def _run_local(jobs: list[Job], workers: int, address: str | None) -> Iterator[JobResult]:
    if not jobs:
        return
    # "spawn": a fresh interpreter per worker, safe with torch's threads and pedalboard
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"),
                             initializer=_init_pool_worker) as pool:
        futures: dict[Future, Job] = {pool.submit(_pool_job, asdict(j)): j for j in jobs}
        try:
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    job = futures.pop(future)
                    try:
                        yield JobResult(**future.result())
                    except Exception as exc:  # noqa: BLE001 - a worker that died (e.g. killed)
                        yield JobResult(job.name, "failed",
                                        error=f"worker failed ({type(exc).__name__}: {exc})")
        except BaseException:  # Ctrl-C (or the caller stopped): stop every song now
            procs = list((getattr(pool, "_processes", None) or {}).values())  # no public
            pool.shutdown(wait=False, cancel_futures=True)  # way to reach them before 3.14
            for process in procs:
                process.terminate()
            raise


def _run_ray(jobs: list[Job], workers: int, address: str | None) -> Iterator[JobResult]:
    if not jobs:
        return
    try:
        import ray
    except ImportError:
        raise SettingsError("--engine ray needs Ray: pip install 'automix[cluster]'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_ray_job)
        refs = {task.remote(asdict(j)): j for j in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                job = refs.pop(ref)
                try:
                    yield JobResult(**ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - a task or its node that died
                    yield JobResult(job.name, "failed",
                                    error=f"ray task failed ({type(exc).__name__})")
    finally:
        if started:
            ray.shutdown()


def _ray_job(job: dict[str, Any]) -> dict[str, Any]:
    _init_worker()
    return run_job(job)
