"""Issue 7.1: the bad-input corpus (tests/corpus.py) through `automix master`, `mix`, `batch`
and the service. Each case is a one-line error with exit code 1 or is handled (with its warning
code): never a traceback, never a 500. Inputs stay byte-identical throughout."""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import corpus
from automix import mixing
from automix.cli import app
from automix.mastering import streaming
from automix.service.client import LocalServer

runner = CliRunner()
ENV = {"COLUMNS": "2000", "AUTOMIX_DEBUG": None}
PROBLEM = "application/problem+json"
# handled inputs that also go through the (slower) mix and service paths: every format trait
MIX_HANDLED = ("mono", "rate_8000", "rate_192000", "bits_u8", "bits_double", "truncated_data",
               "opus_named_wav", "unicode_and_spaces")
SERVICE_HANDLED = ("mono", "rate_192000", "bits_u8", "opus_named_wav", "unicode_and_spaces")
BATCH_HANDLED = ("mono", "rate_8000", "unicode_and_spaces")  # test_master did every one


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], env=ENV)


def assert_one_line_error(result, fragment: str) -> None:
    """Exit 1, a single non-empty output line ``error: ...`` holding ``fragment``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in result.output


def assert_master_report(report: dict, path: Path, out: Path) -> None:
    """The master is the input's format, finite, on its target and under its ceiling."""
    src, got = sf.info(path), sf.info(out)
    assert (got.samplerate, got.channels) == (src.samplerate, src.channels)
    y, _ = sf.read(out, dtype="float32")
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 0
    measured, target = report["measurements"]["output"], report["target"]
    assert measured["true_peak_dbtp"] <= target["ceiling_dbtp"] + 0.1
    assert measured["integrated_lufs"] == pytest.approx(target["integrated_lufs"], abs=1.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus.build_all(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def digests(inputs: dict[str, Path]) -> Iterator[dict[str, str]]:
    """The corpus's hashes; checked again after every module test and at the end."""
    folder = next(iter(inputs.values())).parent
    before = corpus.snapshot(folder)
    yield before
    assert corpus.snapshot(folder) == before


@pytest.fixture
def unchanged(inputs: dict[str, Path], digests: dict[str, str]) -> Iterator[None]:
    yield
    assert corpus.snapshot(next(iter(inputs.values())).parent) == digests


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return corpus.good_song(tmp_path / "in" / "song.wav")


@pytest.fixture
def quick_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mix with the role defaults only: the refinement (seconds a mix, tested in test_mixing
    and in `test_mix_of_every_format` here) is beside the point of an input or output case."""
    monkeypatch.setattr(mixing, "suggest_mix",
                        functools.partial(mixing.suggest_mix, refine_steps=0))


@pytest.fixture
def stems(tmp_path: Path, quick_mix: None) -> Path:
    return corpus.stems_with(corpus.good_song(tmp_path / "spare.wav", seed=41),
                             tmp_path / "stems")


def test_the_corpus_is_the_documented_table() -> None:
    """At least 40 cases, each named in the table at the top of corpus.py."""
    names = ([c.name for c in corpus.FILE_CASES] + [c.name for c in corpus.STEMS_CASES]
             + [c.name for c in corpus.OPTION_CASES] + list(OUTPUT_CASES))
    assert len(names) >= 40 and len(set(names)) == len(names)
    table = corpus.__doc__
    ranged = ("channels_", "rate_", "bits_")
    missing = [n for n in names if n not in table and not n.startswith(ranged)]
    assert not missing


# --- automix master ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", corpus.FILE_CASES, ids=lambda c: c.name)
def test_master(case: corpus.FileCase, inputs: dict[str, Path], unchanged: None,
                tmp_path: Path) -> None:
    out = tmp_path / "master.wav"
    result = invoke("master", inputs[case.name], "-o", out, "--json")
    if case.error is not None:
        assert_one_line_error(result, case.error)
        assert list(tmp_path.iterdir()) == []  # no partial output, no temp file
        return
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if case.warning:
        assert case.warning in [w["code"] for w in report["warnings"]]
    assert_master_report(report, inputs[case.name], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.json", "master.wav"]


@pytest.mark.parametrize("case", corpus.OPTION_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", ["master", "mix"])
def test_bad_options(case: corpus.OptionCase, mode: str, good: Path, stems: Path,
                     tmp_path: Path) -> None:
    source = good if mode == "master" else stems
    before = corpus.snapshot(_folder(source))
    out = tmp_path / "out"
    out.mkdir()
    args = corpus.option_args(case, tmp_path, mode)
    name = "x.flac" if "flac" in args else "x.wav"  # a name that agrees with --format
    result = invoke(mode, source, "-o", out / name, *args)
    assert_one_line_error(result, case.error)
    assert list(out.iterdir()) == []
    assert corpus.snapshot(_folder(source)) == before


def _folder(source: Path) -> Path:
    """The folder holding an input: a song's folder, or the stems folder itself."""
    return source if source.is_dir() else source.parent


def _output_case(name: str, mode: str, source: Path, tmp_path: Path) -> list[object]:
    """Arguments (after the input) for an output-path case."""
    a_file = tmp_path / "a file"
    a_file.write_text("not a folder")
    inside = source if mode == "master" else source / "bass.wav"
    return {"output_is_input": ["-o", inside, "--force"],
            "report_is_input": ["-o", tmp_path / "x.wav", "--report", source, "--force"],
            "stems_out_is_stems": ["-o", tmp_path / "x.wav", "--stems-out", source, "--force"],
            "output_parent_is_file": ["-o", a_file / "x.wav"],
            "output_under_proc": ["-o", "/proc/automix-test.wav"]}[name]


OUTPUT_CASES = {  # name: (modes, error fragment)
    "output_is_input": (("master", "mix"), "refusing to write over the input"),
    "report_is_input": (("master",), "refusing to write over the input"),
    "stems_out_is_stems": (("mix",), "refusing to write over the input"),
    "output_parent_is_file": (("master", "mix"), "not a folder"),
    "output_under_proc": (("master", "mix"), "cannot write here"),
    "disk_full_audio": (("master", "mix"), "disk full"),
    "disk_full_sidecar": (("master", "mix"), "disk full"),
}


@pytest.mark.parametrize("name,mode", [(n, m) for n, (modes, _) in OUTPUT_CASES.items()
                                       for m in modes if not n.startswith("disk_full")])
def test_bad_outputs(name: str, mode: str, good: Path, stems: Path, tmp_path: Path) -> None:
    source = good if mode == "master" else stems
    before = corpus.snapshot(_folder(source))
    work = tmp_path / "work"
    work.mkdir()
    result = invoke(mode, source, *_output_case(name, mode, source, work))
    assert_one_line_error(result, OUTPUT_CASES[name][1])
    assert corpus.snapshot(_folder(source)) == before
    assert sorted(p.name for p in work.iterdir()) == ["a file"]


def _spelling_case(name: str, good: Path, stems: Path, work: Path) -> tuple[Path, list]:
    """(the input, the arguments after it) for an output that reaches the input by another
    spelling: ``..``, a symbolic link, a preview's name."""
    def link(name: str, target: Path) -> Path:
        (work / name).symlink_to(target)
        return work / name

    if name == "master_dotdot":  # the spelling of issue 21, relative (run from tmp_path)
        (good.parent / "sub").mkdir()
        return good, ["-o", f"./{good.parent.name}/sub/../{good.name}", "--force"]
    if name == "master_link":
        return good, ["-o", link("l.wav", good), "--force"]
    if name == "master_report_link":
        return good, ["-o", work / "x.wav", "--report", link("r.html", good), "--force"]
    if name == "master_report_dotdot":
        return good, ["-o", work / "x.wav", "--report", work / ".." / "in" / good.name,
                      "--force"]
    if name == "master_preview":  # previews go to x_preview/: input.wav there is the input
        song = work / "x_preview" / "input.wav"
        song.parent.mkdir()
        song.write_bytes(good.read_bytes())
        return song, ["-o", work / "x.wav", "--preview", "--force"]
    if name == "mix_dotdot":
        return stems, ["-o", work / ".." / stems.name / "mix.wav"]
    if name == "mix_folder_link":
        return stems, ["-o", link("s", stems) / "mix.wav"]
    if name == "mix_link_to_a_stem":
        return stems, ["-o", link("l.wav", stems / "bass.wav"), "--force"]
    if name == "mix_report":
        return stems, ["-o", work / "x.wav", "--report", link("s", stems) / "r.html"]
    if name == "mix_preview":  # the stems folder is where the previews would go
        folder = work / "x_preview"
        stems.rename(folder)
        return folder, ["-o", work / "x.wav", "--preview"]
    raise ValueError(name)


@pytest.mark.parametrize("name", ["master_dotdot", "master_link", "master_report_link",
                                  "master_report_dotdot", "master_preview", "mix_dotdot",
                                  "mix_folder_link", "mix_link_to_a_stem", "mix_report",
                                  "mix_preview"])
def test_no_spelling_of_an_output_reaches_the_input(name: str, good: Path, stems: Path,
                                                    tmp_path: Path, monkeypatch) -> None:
    """Refused before any work, whatever the spelling, even with --force; nothing written."""
    work = tmp_path / "work"
    work.mkdir()
    source, args = _spelling_case(name, good, stems, work)
    before = corpus.snapshot(_folder(source))
    monkeypatch.chdir(tmp_path)
    result = invoke(name.split("_")[0], source, *args)
    assert_one_line_error(result, "refusing to write over the input")
    assert corpus.snapshot(_folder(source)) == before
    assert not [p for p in work.rglob("*") if p.is_file() and not p.is_symlink()
                and _folder(source) not in p.parents]


# --- automix mix ------------------------------------------------------------------------------


def _mix_fragment(case: corpus.FileCase) -> str:
    if case.name.startswith("channels_"):
        return "mono or stereo"  # a stem says "N channels; stems are mono or stereo"
    return "not a folder of stems" if case.name == "missing_file" else case.error


@pytest.mark.parametrize("case", [c for c in corpus.ERROR_CASES if c.stem_warning is None],
                         ids=lambda c: c.name)
def test_mix_with_a_bad_stem(case: corpus.FileCase, inputs: dict[str, Path], unchanged: None,
                             tmp_path: Path) -> None:
    folder = (tmp_path / "nope" if case.name == "missing_file"
              else corpus.stems_with(inputs[case.name], tmp_path / "stems"))
    result = invoke("mix", folder, "-o", tmp_path / "mix.wav")
    assert_one_line_error(result, _mix_fragment(case))
    assert not list(tmp_path.glob("mix*")) and not corpus.leftovers(tmp_path)


@pytest.mark.parametrize("case", [c for c in corpus.ERROR_CASES if c.stem_warning],
                         ids=lambda c: c.name)
def test_mix_with_a_silent_or_short_stem(case: corpus.FileCase, inputs: dict[str, Path],
                                         unchanged: None, tmp_path: Path,
                                         quick_mix: None) -> None:
    """Refused as a song, handled as a stem (issue 16): passed through at unit gain, with
    the stem's warning; the mix is as long as the stem that plays."""
    folder = corpus.stems_with(inputs[case.name], tmp_path / "stems")
    out = tmp_path / "mix.wav"
    result = invoke("mix", folder, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    bass = next(n for n in report["settings"]["stems"] if n.startswith("bass"))
    assert [w for w in report["warnings"] if w["code"] == case.stem_warning
            and w["message"].startswith(f"{bass}:")], report["warnings"]
    assert report["settings"]["stems"][bass]["gain"]["gain_db"] == 0.0
    assert sf.info(out).frames == sf.info(folder / "drums.wav").frames


def test_mix_of_every_format(inputs: dict[str, Path], unchanged: None, tmp_path: Path,
                             quick_mix: None) -> None:
    """Mono, 8 and 192 kHz, 8-bit and 64-bit float, a cut data chunk, Opus in .wav and a
    unicode name, as the stems of one mix: resampled and padded with warnings."""
    folder = tmp_path / "stems"
    folder.mkdir()
    for name in MIX_HANDLED:
        (folder / inputs[name].name).write_bytes(inputs[name].read_bytes())
    out = tmp_path / "mix.wav"
    result = invoke("mix", folder, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    codes = {w["code"] for w in report["warnings"]}
    assert {"S01-resampled", "S02-padded"} <= codes
    assert len(report["stems"]) == len(MIX_HANDLED)
    assert sf.info(out).samplerate == 44100 and sf.info(out).channels == 2


@pytest.mark.parametrize("case", corpus.STEMS_CASES, ids=lambda c: c.name)
def test_mix_stems_folders(case: corpus.StemsCase, tmp_path: Path, quick_mix: None) -> None:
    folder = corpus.build_stems(case, tmp_path / "in")
    before = corpus.snapshot(folder)
    out = tmp_path / "mix.wav"
    result = invoke("mix", folder, "-o", out, "--json")
    assert corpus.snapshot(folder) == before
    if case.error is not None:
        assert_one_line_error(result, case.error)
        assert not out.exists()
        return
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if case.warning:
        assert case.warning in [w["code"] for w in report["warnings"]]
    assert_master_report(report, out, out)


def test_mix_of_a_file_is_refused(good: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("mix", good, "-o", tmp_path / "m.wav"), "not a folder of stems")


# --- output failures simulated in-process -----------------------------------------------------


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("mode", ["master", "mix"])
def test_disk_full_on_the_audio(mode: str, good: Path, stems: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from automix import audio

    monkeypatch.setattr(audio.sf.SoundFile, "write", _disk_full)
    monkeypatch.setattr(audio, "_packed24", _disk_full)  # automix's own 24-bit WAV writing
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(mode, good if mode == "master" else stems, "-o", out / "x.wav")
    assert_one_line_error(result, "disk full")
    assert list(out.iterdir()) == []  # neither the output nor its temporary file


@pytest.mark.parametrize("extras", [False, True], ids=["sidecar", "report"])
@pytest.mark.parametrize("mode", ["master", "mix"])
def test_disk_full_after_the_audio(mode: str, extras: bool, good: Path, stems: Path,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audio (and previews) are written, then the sidecar or the report meets a full
    disk: everything this run wrote goes, so no output is left without its settings."""
    real_fdopen = os.fdopen

    def fdopen(fd: int, mode: str = "r", *args: object, **kwargs: object):
        if "w" in mode:
            os.close(fd)
            _disk_full()
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    out = tmp_path / "out"
    out.mkdir()
    flags = ["--preview", "--report", out / "x.html"] if extras else []
    result = invoke(mode, good if mode == "master" else stems, "-o", out / "x.wav", *flags)
    assert_one_line_error(result, "disk full")
    assert list(out.iterdir()) == []


# --- automix batch ----------------------------------------------------------------------------


def test_batch_of_the_corpus(inputs: dict[str, Path], unchanged: None, tmp_path: Path) -> None:
    """Every bad case and a few good ones in one folder: good songs finish, each bad one is
    listed with its one-line reason, the exit code is 1, and no failed song leaves a file."""
    songs = tmp_path / "songs"
    songs.mkdir()
    handled = [c for c in corpus.HANDLED_CASES if c.name in BATCH_HANDLED]
    for case in [*corpus.ERROR_CASES, *handled]:
        if inputs[case.name].exists():
            os.link(inputs[case.name], songs / inputs[case.name].name)
    out = tmp_path / "out"
    result = invoke("batch", songs, "-o", out, "--jobs", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [c for c in corpus.ERROR_CASES if inputs[c.name].exists()]
    assert f"{len(handled)} done, 0 skipped, {len(failed)} failed" in result.output
    reasons = {line.split(": ", 1)[0].removeprefix("failed "): line
               for line in result.stderr.splitlines() if line.startswith("failed ")}
    for case in failed:
        assert case.error in reasons[case.name], reasons.get(case.name)
    names = {corpus.file_name(c) for c in handled}
    assert {p.name for p in out.iterdir()} == {f"{n}{s}" for n in names for s in (".wav", ".json")}


@pytest.mark.parametrize("case", [c for c in corpus.OPTION_CASES if c.batch],
                         ids=lambda c: c.name)
def test_batch_refuses_bad_options_before_any_song(case: corpus.OptionCase, good: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("batch", good.parent, "-o", out, *corpus.option_args(case, tmp_path, "batch"))
    assert_one_line_error(result, case.error)
    assert not out.exists()


def test_batch_output_is_a_file(good: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "results"
    a_file.write_text("precious")
    assert_one_line_error(invoke("batch", good.parent, "-o", a_file), "not a folder")
    assert a_file.read_text() == "precious"


def test_batch_of_a_missing_or_empty_folder(tmp_path: Path) -> None:
    assert_one_line_error(invoke("batch", tmp_path / "nope", "-o", tmp_path / "o"),
                          "not a folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("batch", tmp_path / "empty", "-o", tmp_path / "o"),
                          "no audio files to master")


# --- an hour of audio -------------------------------------------------------------------------


def test_an_hour_is_streamed(tmp_path: Path) -> None:
    """The dispatch decision on a sparse hour of 48 kHz stereo (header only), and the cheap
    hour of 8 kHz silence is in the corpus above (refused as silence in about a second)."""
    hour = corpus.sparse_wav(tmp_path / "hour.wav", corpus.HOUR_S, 48000, 2)
    assert streaming.is_long(hour)
    assert not streaming.is_long(corpus.good_song(tmp_path / "short.wav"))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("AUTOMIX_LONG_TESTS"),
                    reason="set AUTOMIX_LONG_TESTS=1 to master a real hour (minutes)")
def test_master_an_hour_of_music(tmp_path: Path) -> None:
    song = tmp_path / "hour.wav"
    rng = np.random.default_rng(60)
    with sf.SoundFile(song, "w", 48000, 2, subtype="PCM_16") as fh:
        for _ in range(corpus.HOUR_S // 10):
            fh.write(corpus.music_like(rng, 48000, 10.0).T)
    out = tmp_path / "hour_master.wav"
    result = invoke("master", song, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert_master_report(json.loads(result.stdout), song, out)


# --- the service ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("service"), "--workers", "2",
                     "--max-duration", "600") as srv:
        yield srv


def _assert_refused(server: LocalServer, resp, fragment: str) -> None:
    """A 4xx problem naming ``fragment`` in its detail: at once, or as the error of a job
    that fails."""
    assert resp.headers["content-type"] in (PROBLEM, "application/json"), resp.body
    if resp.status != 202:
        assert 400 <= resp.status < 500 and resp.headers["content-type"] == PROBLEM, resp.body
        problem = resp.json()
        assert problem["status"] == resp.status
        assert fragment in problem["detail"], problem
        return
    job = server.wait(resp.headers["location"], timeout_s=120)
    assert job["status"] == "failed", job
    assert 400 <= job["error"]["status"] < 500, job["error"]
    assert fragment in job["error"]["detail"], job["error"]


def test_service_corpus(server: LocalServer, inputs: dict[str, Path], unchanged: None) -> None:
    """Every bad file, and a sample of the handled ones, uploaded as a song (all submitted
    first, then awaited)."""
    cases = [c for c in corpus.FILE_CASES if c.service
             and (c.error is not None or c.name in SERVICE_HANDLED)]
    submitted = {c.name: server.submit({}, [("file", inputs[c.name].name,
                                             inputs[c.name].read_bytes())]) for c in cases}
    for case in cases:
        resp = submitted[case.name]
        if case.error is not None:
            _assert_refused(server, resp, case.service_error or case.error)
            continue
        assert resp.status == 202, resp.body
        job = server.wait(resp.headers["location"], timeout_s=120)
        assert job["status"] == "done", (case.name, job["error"])
        if case.warning:
            assert case.warning in [w["code"] for w in job["result"]["warnings"]]


def test_service_bad_options(server: LocalServer, good: Path) -> None:
    song = good.read_bytes()
    for case in (c for c in corpus.OPTION_CASES if c.fields is not None):
        resp = server.submit(case.fields, [("file", "song.wav", song)])
        assert resp.status == 422 and resp.headers["content-type"] == PROBLEM, resp.body
        assert (case.service_error or case.error) in resp.json()["detail"]


def test_service_mix_stems(server: LocalServer, inputs: dict[str, Path], tmp_path: Path) -> None:
    """A stem that is silence is passed through with S03 (issue 16), two of them fail the
    job with one reason; stems at different rates and lengths are mixed with warnings."""
    good = corpus.good_song(tmp_path / "drums.wav").read_bytes()
    silent = inputs["digital_silence"].read_bytes()
    resp = server.submit({"kind": "mix"}, [("stems", "drums.wav", good),
                                           ("stems", "bass.wav", silent)])
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"], timeout_s=180)
    assert job["status"] == "done", job["error"]
    assert "S03-silent" in [w["code"] for w in job["result"]["warnings"]]
    resp = server.submit({"kind": "mix"}, [("stems", "drums.wav", silent),
                                           ("stems", "bass.wav", silent)])
    _assert_refused(server, resp, "every stem is silent")
    for bad, fragment in (("text_as_wav", corpus.UNREADABLE.removeprefix("file")),
                          ("zero_samples", corpus.NO_AUDIO.removeprefix("file"))):
        resp = server.submit({"kind": "mix"}, [("stems", "drums.wav", good),
                                               ("stems", "bass.wav", inputs[bad].read_bytes())])
        assert resp.status == 422, resp.body  # checked at once, before a job is queued
        _assert_refused(server, resp, fragment)
    folder = corpus.build_stems(corpus.STEMS_CASES[0], tmp_path)
    files = [("stems", p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    resp = server.submit({"kind": "mix"}, files)
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"], timeout_s=180)
    assert job["status"] == "done", job["error"]
    assert "S01-resampled" in [w["code"] for w in job["result"]["warnings"]]
