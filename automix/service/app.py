"""The HTTP API and the audition page (FastAPI). Start it with ``automix serve``.

Jobs are rows in SQLite (`store`) with a folder each; worker processes (`worker`) run them, the
web process only stores uploads and answers. Every error is ``application/problem+json``
(RFC 9457: type, title, status, detail); bad input is always a 4xx.

Endpoints
---------
``GET /``
    The audition page (upload, suggestion, loudness-matched A/B player, sliders, downloads).
``GET /docs``, ``GET /redoc``, ``GET /openapi.json``
    Interactive API docs (Swagger UI and ReDoc, their files served from the fastapi-offline
    package: no CDN) and the OpenAPI schema.
``GET /v1/presets``
    Genre presets (``reference``) and delivery targets (``target``).
``GET /v1/params``
    Every mastering parameter with its unit and range, for building controls.
``POST /v1/jobs`` (multipart/form-data)
    Queue a job; answers 202 with ``Location: /v1/jobs/{id}`` and the job. Fields:
    ``kind`` (``master``, default, or ``mix``); ``file`` (the song) or ``stems`` (repeated,
    for mix) or ``input_job`` (reuse an earlier job's input and reference file);
    ``reference`` (a preset name, default ``pop``) or ``reference_file`` (audio);
    ``target`` (a target name, a loudness in LUFS such as ``-12``, or ``keep``: the input's
    own) or ``target_lufs`` (a custom loudness); ``ceiling_dbtp``;
    ``settings`` (JSON: a settings object, or a document holding one under ``"settings"``,
    rendered as with ``automix master --settings``); ``amounts`` (``0.5`` or
    ``eq=0.5,dynamics=1,width=0``, or a JSON object); ``format`` (wav, flac);
    ``bit_depth`` (16, 24, 32); ``chain`` (master only: comma-separated names of VST3
    plug-ins installed on the server, ``GET /v1/presets`` lists them, e.g. ``ZamEQ2,ZamCompX2``:
    their parameters are optimised toward the reference, as ``automix master --chain``).
    Uploads over the size limit answer 413 before they are
    stored; audio that cannot be read or is longer than the duration limit answers 422.
``POST /v1/suggest`` (multipart/form-data)
    As ``POST /v1/jobs`` for a job that only writes suggested settings (``kind`` is implied).
``GET /v1/jobs/{id}``
    Status (queued, running, done, failed), progress 0..1 (estimated from elapsed time),
    stage, attempts, the result (settings, measurements, target, warnings) when done, the
    error (a problem object) when failed, and links to the files below.
``GET /v1/jobs/{id}/master``, ``/settings``, ``/report``, ``/previews/{name}``
    The master, its settings (JSON, usable with ``--settings``), the HTML report and the
    loudness-matched previews (``input``, ``result``, ``reference``, ``result_delivered``).
    409 until the job is done.

Job ids are 128-bit random tokens: a job and its files are reachable only through its id.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from automix import __version__
from automix.service.problems import MEDIA_TYPE, Problem, problem
from automix.service.store import DEFAULT_MAX_ATTEMPTS, ID_PATTERN, Job, JobStore, new_id
from automix.service.uploads import Form, UploadedFile, read_form, safe_filename
from automix.service.worker import DEFAULT_LEASE_S, WorkerPool, mix_available

STATIC_DIR = Path(__file__).resolve().parent / "static"
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")
PREVIEWS = ("input", "result", "reference", "result_delivered")
KINDS = ("master", "mix", "suggest")
FIELDS = {"kind", "reference", "target", "target_lufs", "ceiling_dbtp", "settings", "amounts",
          "format", "bit_depth", "input_job", "character", "chain"}
FILE_FIELDS = {"file", "reference_file", "stems"}


@dataclass(frozen=True)
class ServiceConfig:
    """Where jobs live and what an upload may be.

    Attributes
    ----------
    data_dir : folder holding ``jobs/<id>/`` (and the database unless ``db_path`` is given)
    db_path : the SQLite file, default ``data_dir / "jobs.sqlite3"``
    max_upload_mb : largest request body accepted, in MB (1e6 bytes)
    max_duration_s : longest audio accepted, in seconds (per file)
    max_attempts : how often a job is tried when its worker dies
    """

    data_dir: Path
    db_path: Path | None = None
    max_upload_mb: float = 200.0
    max_duration_s: float = 900.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def database(self) -> Path:
        return self.db_path if self.db_path is not None else self.data_dir / "jobs.sqlite3"


def _problem_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


# --- validating a job request (runs in a thread: file checks and a lazy library import) ----


def _number(form: Form, key: str, low: float, high: float) -> float | None:
    text = form.fields.get(key)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise Problem(422, "bad-field", f"{key}: expected a number, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise Problem(422, "bad-field", f"{key}={text} is out of range [{low:g}, {high:g}]")
    return value


def _audio_duration_s(path: Path, label: str, max_duration_s: float) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - libsndfile's errors all mean "not audio it can read"
        raise Problem(422, "bad-audio", f"{label}: not an audio file that can be read "
                      "(WAV, FLAC, AIFF, OGG or MP3)") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise Problem(422, "bad-audio", f"{label}: holds no audio")
    duration = info.frames / info.samplerate
    if duration > max_duration_s:
        raise Problem(422, "too-long", f"{label}: {duration:.0f} s is longer than the limit of "
                      f"{max_duration_s:g} s")
    return duration


def _suffix(upload: UploadedFile) -> str:
    suffix = Path(safe_filename(upload.filename)).suffix.lower()
    return suffix if suffix in AUDIO_SUFFIXES else ".wav"


def _single(form: Form, key: str) -> UploadedFile | None:
    uploads = form.files.get(key, [])
    if len(uploads) > 1:
        raise Problem(422, "bad-form", f"{key}: send one file")
    return uploads[0] if uploads else None


def _place(upload: UploadedFile, dest: Path, config: ServiceConfig) -> float:
    """Check an uploaded file is audio within limits, move it to ``dest``; its duration."""
    duration = _audio_duration_s(upload.path, upload.field, config.max_duration_s)
    upload.path.replace(dest)
    return duration


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _reuse(source_id: str, kind: str, form: Form, job_dir: Path, config: ServiceConfig,
           store: JobStore) -> dict[str, Any]:
    """Link an earlier job's input (song or stems) and reference file into ``job_dir``."""
    source = store.get(source_id) if ID_PATTERN.match(source_id) else None
    if source is None or (source.kind == "mix") != (kind == "mix"):
        raise Problem(422, "bad-field", f"input_job: no such {kind} job")
    source_dir = config.jobs_dir / source.id
    params = {k: source.params[k] for k in ("input", "duration_s", "input_name")
              if k in source.params}
    names = ["input"] if "input" in params else []
    if kind == "mix":
        (job_dir / "stems").mkdir()
        names = [f"stems/{p.name}" for p in sorted((source_dir / "stems").iterdir())]
    if source.params.get("reference_file") and "reference" not in form.fields \
            and not form.files.get("reference_file"):
        params["reference_file"] = source.params["reference_file"]
        names.append("reference_file")
    for name in names:
        rel = params.get(name, name)
        _link(source_dir / rel, job_dir / rel)
    return params


def _inputs(kind: str, form: Form, job_dir: Path, config: ServiceConfig,
            store: JobStore) -> dict[str, Any]:
    """Place the song (or stems, or an earlier job's input) and any reference file."""
    params: dict[str, Any] = {}
    song, source_id = _single(form, "file"), form.fields.get("input_job")
    stems = form.files.get("stems", [])
    if kind == "mix" and stems:
        (job_dir / "stems").mkdir()
        names: set[str] = set()
        for upload in stems:
            stem, suffix = Path(safe_filename(upload.filename, "stem")).stem, _suffix(upload)
            name = next(f"{stem}{i or ''}{suffix}" for i in range(len(stems) + 1)
                        if f"{stem}{i or ''}{suffix}" not in names)
            names.add(name)
            params["duration_s"] = max(params.get("duration_s", 0.0),
                                       _place(upload, job_dir / "stems" / name, config))
        params["input_name"] = f"{len(stems)} stems"
    elif kind != "mix" and song is not None:
        params["input"] = f"input{_suffix(song)}"
        params["duration_s"] = _place(song, job_dir / params["input"], config)
        params["input_name"] = safe_filename(song.filename, "song")
    elif source_id is not None:
        params = _reuse(source_id, kind, form, job_dir, config, store)
    else:
        what = "the stems as repeated 'stems' files" if kind == "mix" else "the song as 'file'"
        raise Problem(422, "missing-input", f"{kind}: send {what} (or 'input_job')")
    ref_upload = _single(form, "reference_file")
    if ref_upload is not None:
        params["reference_file"] = f"reference{_suffix(ref_upload)}"
        _place(ref_upload, job_dir / params["reference_file"], config)
    return params


def _character(spec: str | None) -> str | None:
    """``warm:0.5,wide``, checked (see `automix.character`)."""
    from automix import character
    from automix.errors import SettingsError

    try:
        character.parse(spec)
    except SettingsError as exc:
        raise Problem(422, "bad-field", f"character: {exc}") from None
    return spec


def _choices(kind: str, form: Form, job_dir: Path) -> dict[str, Any]:
    """Reference, target, ceiling, settings, amounts and format: checked, files written."""
    from automix import presets
    from automix.errors import SettingsError, did_you_mean

    params: dict[str, Any] = {}
    genres = [g.name for g in presets.list_genres()]
    targets = {t.name: t for t in presets.list_targets()}
    reference = form.fields.get("reference") or "pop"
    if reference not in genres:  # a client never names a path on the server
        raise Problem(422, "bad-field", f"reference: unknown preset {reference!r}"
                      f"{did_you_mean(reference, genres)}; known: "
                      f"{', '.join(genres)} (or upload a reference_file)")
    params["reference"] = reference
    params["character"] = _character(form.fields.get("character") or None)
    target = form.fields.get("target") or None
    named = None
    if target is not None:  # a name, a loudness or keep, as on the command line; never a path
        if target not in targets and target.lower() != presets.KEEP \
                and presets.lufs_of(target) is None:
            raise Problem(422, "bad-field", f"target: unknown {target!r}"
                          f"{did_you_mean(target, list(targets))}; known: "
                          f"{', '.join(targets)}, a loudness in LUFS (-12), or keep")
        try:
            named = presets.load_target(target)
        except SettingsError as exc:
            raise Problem(422, "bad-field", f"target: {exc}") from None
    params["target"] = target
    params["ceiling_dbtp"] = _number(form, "ceiling_dbtp", *presets.CEILING_RANGE_DBTP)
    lufs = _number(form, "target_lufs", *presets.LUFS_RANGE)
    if lufs is not None:
        ceiling = params["ceiling_dbtp"] if params["ceiling_dbtp"] is not None else (
            named.ceiling_dbtp if named else presets.DEFAULT_CEILING_DBTP)
        custom = {"name": f"{lufs:g} LUFS", "integrated_lufs": lufs,
                  "ceiling_dbtp": ceiling, "description": "set on the audition page or API"}
        (job_dir / "target.json").write_text(json.dumps(custom), encoding="utf-8")
        params["target_file"] = "target.json"
    params |= _rendering(kind, form, job_dir, lufs, params["ceiling_dbtp"])
    chain = _chain(kind, form.fields.get("chain") or None, "settings" in params)
    if chain:
        params["chain"] = chain
    return params


def _chain(kind: str, text: str | None, with_settings: bool) -> list[str]:
    """A chain of plug-ins installed on the server, by name (never a path)."""
    from automix.errors import did_you_mean
    from automix.plugins.chain import installed, parse

    if text is None:
        return []
    if kind != "master" or with_settings:
        raise Problem(422, "bad-field", "chain: only for a master job without settings")
    names, known = parse(text), installed()
    for name in names:
        if name not in known:
            raise Problem(422, "bad-field", f"chain: {name!r} is not installed here"
                          f"{did_you_mean(name, known)}; installed: {', '.join(known) or 'none'}")
    if not names:
        raise Problem(422, "bad-field", "chain: no plug-in named")
    return names


def _settings(kind: str, text: str, target_lufs: float | None,
              ceiling_dbtp: float | None) -> dict[str, Any]:
    """Posted settings (master or mix, or a document holding them under "settings"),
    validated by the library's own rules. A ``target_lufs`` or ``ceiling_dbtp`` sent with them
    replaces their own: those decide the loudness whenever the gain is found again."""
    from automix.errors import SettingsError
    from automix.settings import MasterSettings, MixSettings

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"settings: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("settings"), dict):
        data = data["settings"]

    def retarget(master: MasterSettings) -> MasterSettings:
        if target_lufs is not None:
            master = replace(master, target_lufs=target_lufs)
        if ceiling_dbtp is not None:
            master = replace(master, limiter=replace(master.limiter, ceiling_dbtp=ceiling_dbtp))
        return master

    if kind == "mix":
        mix = MixSettings.from_dict(data, where="settings")
        return replace(mix, master=retarget(mix.master)).to_dict()
    return retarget(MasterSettings.from_dict(data, where="settings")).to_dict()


def _rendering(kind: str, form: Form, job_dir: Path, target_lufs: float | None,
               ceiling_dbtp: float | None) -> dict[str, Any]:
    """Settings, amounts, format and bit depth (see `_settings`)."""
    from automix.audio import check_format
    from automix.errors import SettingsError

    file_format = form.fields.get("format") or "wav"
    depth = form.fields.get("bit_depth") or "24"
    bit_depth = int(depth) if depth.isdecimal() else depth
    try:
        check_format(file_format, bit_depth, names=("format", "bit_depth"))
    except SettingsError as exc:
        raise Problem(422, "bad-field", str(exc)) from None
    params: dict[str, Any] = {"format": file_format, "bit_depth": bit_depth}
    text = form.fields.get("settings")
    try:
        if text:
            settings = _settings(kind, text, target_lufs, ceiling_dbtp)
            (job_dir / "settings_in.json").write_text(json.dumps(settings), encoding="utf-8")
            params["settings_file"] = "settings_in.json"
        amounts = form.fields.get("amounts")
        if amounts:
            from automix.settings import Amounts

            if amounts.lstrip().startswith("{"):
                try:
                    obj = json.loads(amounts)
                except json.JSONDecodeError as exc:
                    raise SettingsError(f"amounts: not valid JSON ({exc})") from None
                if not isinstance(obj, dict):
                    raise SettingsError("amounts: expected a JSON object")
                amounts = ",".join(f"{k}={v}" for k, v in obj.items())
            Amounts.parse(amounts)
            params["amounts"] = amounts
    except SettingsError as exc:
        raise Problem(422, "bad-settings", str(exc)) from None
    return params


def _prepare(kind: str, form: Form, job_dir: Path, config: ServiceConfig,
             store: JobStore) -> dict[str, Any]:
    """Validate a job request and lay out its folder; the params stored with the job."""
    unknown = sorted((set(form.fields) - FIELDS) | (set(form.files) - FILE_FIELDS))
    if unknown:
        raise Problem(422, "bad-form", f"unknown form field {unknown[0]!r}; allowed: "
                      f"{', '.join(sorted(FIELDS | FILE_FIELDS))}")
    if kind not in KINDS:
        raise Problem(422, "bad-field", f"kind: expected master or mix, got {kind!r}")
    if kind == "mix" and not mix_available():
        raise Problem(422, "mix-unavailable", "mix is not available in this build")
    params = _inputs(kind, form, job_dir, config, store)
    params |= _choices(kind, form, job_dir)
    for leftover in job_dir.glob("upload-*.part"):
        leftover.unlink()
    return params


# --- views -----------------------------------------------------------------------------------


def job_view(job: Job, jobs_dir: Path) -> dict[str, Any]:
    """The public JSON of a job: no local paths, links to its files when done."""
    base = f"/v1/jobs/{job.id}"
    links: dict[str, Any] = {"self": base}
    if job.status == "done":
        links["settings"] = f"{base}/settings"
        if job.kind != "suggest":
            folder = jobs_dir / job.id / "master_preview"
            links |= {"master": f"{base}/master", "report": f"{base}/report",
                      "previews": {n: f"{base}/previews/{n}" for n in PREVIEWS
                                   if (folder / f"{n}.wav").exists()}}
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
            "stage": job.stage, "attempts": job.attempts, "max_attempts": job.max_attempts,
            "input_name": job.params.get("input_name"), "created_at": job.created_at,
            "started_at": job.started_at, "finished_at": job.finished_at, "error": job.error,
            "result": job.result, "links": links}


MULTIPART_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "properties": {
        "kind": {"type": "string", "enum": ["master", "mix"], "default": "master"},
        "file": {"type": "string", "format": "binary", "description": "the song"},
        "stems": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "the stems (mix)"},
        "input_job": {"type": "string", "description": "reuse this job's input"},
        "reference": {"type": "string", "description": "a genre preset (GET /v1/presets)"},
        "reference_file": {"type": "string", "format": "binary"},
        "target": {"type": "string", "description": "a delivery target: a name (GET "
                   "/v1/presets), a loudness in LUFS (-12), or keep (the input's own)"},
        "target_lufs": {"type": "number", "description": "a custom loudness target"},
        "ceiling_dbtp": {"type": "number"},
        "settings": {"type": "string", "description": "settings JSON (from suggest)"},
        "amounts": {"type": "string", "description": "0..1 or eq=0.5,dynamics=1,width=0"},
        "format": {"type": "string", "enum": ["wav", "flac"]},
        "bit_depth": {"type": "integer", "enum": [16, 24, 32]}}}}}}}


def create_app(config: ServiceConfig) -> FastAPI:
    """The FastAPI app for ``config`` (creates the data folder and database)."""
    store = JobStore(config.database)
    config.jobs_dir.mkdir(parents=True, exist_ok=True)
    # /docs and /redoc from files fastapi-offline ships, not from a CDN: they work offline
    app = FastAPIOffline(title="automix", version=__version__, static_url="/docs-assets",
                         description="Automatic mastering toward a reference: jobs, presets, "
                         "previews.")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(Problem)
    async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(exc.status, exc.to_dict())

    @app.exception_handler(HTTPException)
    async def _on_http(request: Request, exc: HTTPException) -> JSONResponse:
        from http import HTTPStatus

        title = HTTPStatus(exc.status_code).phrase
        return _problem_response(exc.status_code, problem(exc.status_code, title,
                                                          str(exc.detail), "http"))

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _problem_response(422, problem(422, "Invalid request",
                                              f"{where}: {first.get('msg', 'invalid')}",
                                              "bad-request"))

    @app.exception_handler(Exception)
    async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
        print(f"automix service: internal error: {exc!r}", file=sys.stderr)
        return _problem_response(500, problem(500, "Internal error",
                                              f"{type(exc).__name__}; see the server log",
                                              "internal"))

    async def create(request: Request, kind: str | None) -> JSONResponse:
        job_id = new_id()
        job_dir = config.jobs_dir / job_id
        job_dir.mkdir(parents=True)
        try:
            form = await read_form(dict(request.headers), request.stream(), job_dir,
                                   int(config.max_upload_mb * 1e6))
            job_kind = kind or form.fields.get("kind") or "master"
            params = await run_in_threadpool(_prepare, job_kind, form, job_dir, config, store)
            job = store.create(job_kind, params, job_id=job_id, max_attempts=config.max_attempts)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        return JSONResponse(job_view(job, config.jobs_dir), status_code=202,
                            headers={"Location": f"/v1/jobs/{job.id}"})

    @app.post("/v1/jobs", status_code=202, openapi_extra=MULTIPART_SCHEMA,
              summary="Queue a master (or mix) job")
    async def create_job(request: Request) -> JSONResponse:
        return await create(request, None)

    @app.post("/v1/suggest", status_code=202, openapi_extra=MULTIPART_SCHEMA,
              summary="Queue a job that suggests settings only")
    async def create_suggestion(request: Request) -> JSONResponse:
        return await create(request, "suggest")

    def find(job_id: str) -> Job:
        job = store.get(job_id) if ID_PATTERN.match(job_id) else None
        if job is None:
            raise Problem(404, "no-such-job", "no job with this id")
        return job

    def job_file(job_id: str, name: str, download_as: str | None = None) -> FileResponse:
        job = find(job_id)
        if job.status != "done":
            raise Problem(409, "not-done", f"the job is {job.status}; files appear when done")
        path = config.jobs_dir / job.id / name
        if not path.is_file():
            raise Problem(404, "no-such-file", f"this job has no {Path(name).stem}")
        return FileResponse(path, filename=download_as)

    @app.get("/v1/jobs/{job_id}", summary="A job's status, progress, result and links")
    def get_job(job_id: str) -> JSONResponse:
        return JSONResponse(job_view(find(job_id), config.jobs_dir))

    @app.get("/v1/jobs/{job_id}/master", summary="The master")
    def get_master(job_id: str) -> FileResponse:
        job = find(job_id)
        fmt = job.params.get("format", "wav")
        stem = Path(job.params.get("input_name") or "song").stem
        return job_file(job_id, f"master.{fmt}", f"{stem}_master.{fmt}")

    @app.get("/v1/jobs/{job_id}/settings", summary="Settings JSON (usable with --settings)")
    def get_settings(job_id: str) -> FileResponse:
        return job_file(job_id, "settings.json", "settings.json")

    @app.get("/v1/jobs/{job_id}/report", summary="The HTML report", response_class=HTMLResponse)
    def get_report(job_id: str) -> FileResponse:
        return job_file(job_id, "report.html")

    @app.get("/v1/jobs/{job_id}/previews/{name}", summary="A loudness-matched preview (WAV)")
    def get_preview(job_id: str,
                    name: Literal["input", "result", "reference", "result_delivered"]
                    ) -> FileResponse:
        return job_file(job_id, f"master_preview/{name}.wav")

    @app.get("/v1/presets", summary="Genre presets and delivery targets")
    def get_presets() -> dict[str, Any]:
        from automix import presets
        from automix.params import as_dict

        genres = [{"name": g.name, "description": g.description, "target": g.target,
                   **{k: g.features.get(k) for k in ("integrated_lufs", "crest_db", "width")}}
                  for g in presets.list_genres()]
        from automix.plugins.chain import installed

        return {"genres": genres, "targets": [as_dict(t) for t in presets.list_targets()],
                "mix_available": mix_available(), "plugins": installed()}

    @app.get("/v1/params", summary="Mastering parameters with units and ranges")
    def get_params() -> dict[str, Any]:
        from automix.params import LimiterParams, MasterChain, flat_ranges, unit_of

        table = flat_ranges(MasterChain) | flat_ranges(LimiterParams, "limiter.")
        return {name: {"min": r.min, "max": r.max, "default": r.default, "scale": r.scale,
                       "unit": unit_of(name)} for name, r in table.items()}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app


def serve(config: ServiceConfig, *, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, lease_s: float = DEFAULT_LEASE_S) -> None:
    """Run the web server with ``workers`` worker processes until interrupted."""
    import uvicorn

    app = create_app(config)
    pool = WorkerPool(config.database, config.jobs_dir, workers, lease_s=lease_s)
    pool.start()
    print(f"automix service on http://{host}:{port} ({workers} worker(s), jobs in "
          f"{config.data_dir})", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        pool.stop()
