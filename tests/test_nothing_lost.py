"""Issue 7.2: nothing lost. Inputs stay byte-identical, a failed run leaves no partial output
(atomic writes, and the outputs of one run are all or nothing), and a batch keeps every finished
song when a later one fails or the run is interrupted with Ctrl-C, then resumes where it
stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import corpus
from automix import batch, files
from automix.cli import app
from automix.mastering import pipeline as master_pipeline

runner = CliRunner()
ENV = {"COLUMNS": "2000", "AUTOMIX_DEBUG": None}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], env=ENV)


def _fail(exc: BaseException):
    def boom(*args: object, **kwargs: object) -> None:
        raise exc
    return boom


@pytest.fixture
def song(tmp_path: Path) -> Path:
    return corpus.good_song(tmp_path / "in" / "my song.wav")


def test_every_output_option_leaves_the_input_alone(song: Path, tmp_path: Path) -> None:
    """Master with previews, a report, a settings file and --force, twice: the input folder
    gains nothing and the song's bytes and modification time stay."""
    before, mtime = corpus.snapshot(song.parent), song.stat().st_mtime_ns
    out = tmp_path / "out"
    out.mkdir()
    args = ["master", song, "-o", out / "m.wav", "--preview", "--report", out / "r.html"]
    assert invoke(*args).exit_code == 0
    result = invoke(*args, "--settings", out / "m.json", "--force", "--bit-depth", "16")
    assert result.exit_code == 0, result.output
    assert corpus.snapshot(song.parent) == before and song.stat().st_mtime_ns == mtime
    assert not corpus.leftovers(tmp_path)


# Where a run can fail: before any write, while writing the audio (Ctrl-C included), and after
# the audio while writing the previews, the report or the sidecar.
FAILURES = {
    "render": ("automix.mastering.pipeline.finalise", RuntimeError("simulated crash"),
               "internal error"),
    "audio_write": ("automix.audio._packed24", KeyboardInterrupt(), "interrupted"),  # 24-bit WAV
    "previews": ("automix.previews.preview_excerpts", MemoryError(), "out of memory"),
    "report": ("automix.report.render_html", ValueError("bad chart"), "internal error"),
    # inside the sidecar's own write: its temporary file is written, the rename fails
    "sidecar": ("os.replace", OSError(28, "No space left on device"), "disk full"),
}


def _fail_for_the_sidecar(exc: BaseException):
    """`os.replace` that fails for the sidecar's temporary file (``.m.json.*.part``) only."""
    real_replace = os.replace

    def replace(src: object, dst: object, *args: object, **kwargs: object) -> None:
        if Path(os.fspath(src)).name.startswith(".m.json."):
            assert Path(os.fspath(src)).exists()  # written, not yet renamed
            raise exc
        real_replace(src, dst, *args, **kwargs)
    return replace


@pytest.mark.parametrize("where", FAILURES)
def test_a_failed_run_leaves_nothing(where: str, song: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target, exc, message = FAILURES[where]
    monkeypatch.setattr(target, _fail_for_the_sidecar(exc) if where == "sidecar" else _fail(exc))
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("master", song, "-o", out / "m.wav", "--preview", "--report", out / "r.html")
    assert result.exit_code in (1, 130) and message in result.output, result.output
    assert list(out.iterdir()) == []  # no master, sidecar, previews, report or temp file


def test_ctrl_c_while_writing_the_sidecar(song: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted between the sidecar's temporary file and its rename: neither that file
    nor the master written before it is left."""
    real_chmod = os.chmod

    def chmod(path: str, mode: int) -> None:
        if ".json." in os.fspath(path):
            raise KeyboardInterrupt
        real_chmod(path, mode)

    monkeypatch.setattr(os, "chmod", chmod)
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("master", song, "-o", out / "m.wav")
    assert result.exit_code == 130 and "interrupted" in result.output
    assert list(out.iterdir()) == []


def test_a_failure_before_writing_keeps_the_old_output(song: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--force replaces an output only with a finished one."""
    out = tmp_path / "m.wav"
    assert invoke("master", song, "-o", out).exit_code == 0
    before = corpus.snapshot(tmp_path)
    monkeypatch.setattr(master_pipeline, "finalise", _fail(RuntimeError("simulated crash")))
    assert invoke("master", song, "-o", out, "--force").exit_code == 1
    assert corpus.snapshot(tmp_path) == before


def test_a_song_that_fails_after_its_audio_is_redone(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch job whose sidecar cannot be written leaves no audio either, so the song is not
    mistaken for finished, and the rerun does it."""
    songs = tmp_path / "songs"
    corpus.good_song(songs / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    [job] = batch.plan(songs, out, mode="master")
    real = files.write_document
    monkeypatch.setattr(files, "write_document", _fail(OSError(28, "No space left")))
    result = batch.run_job(job.__dict__)
    assert result["status"] == "failed" and list(out.iterdir()) == [] and not job.is_done()
    monkeypatch.setattr(files, "write_document", real)
    assert batch.run_job(job.__dict__)["status"] == "done" and job.is_done()


def _as_from_a_shell() -> None:
    """In the child before exec: SIGINT at its default and unblocked, as an interactive shell
    starts a command. An ignored SIGINT survives exec, and a suite started in the background
    by a non-interactive shell (`cmd &`) has one: the batch then ran to its end (exit 1)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_ctrl_c_stops_a_batch_and_the_rerun_resumes(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) once the first song is
    out: the batch stops at once (exit 130, one line), finished songs stay, the song in
    progress leaves no partial file. The rerun skips the finished songs, does the rest, and
    keeps them all when the last song fails."""
    songs = tmp_path / "songs"
    names = [f"song{i}" for i in range(4)]
    for i, name in enumerate(names):
        corpus.good_song(songs / f"{name}.wav", seed=i, seconds=1.5)
    (songs / "zz_broken.flac").write_bytes(b"fLaC but not really")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "automix", "batch", str(songs), "-o", str(out),
                             "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_as_from_a_shell,
                            env={**os.environ, "COLUMNS": "200", "AUTOMIX_DEBUG": ""})
    try:
        first = _wait_for(lambda: out.is_dir() and any(out.glob("*.json")), 120)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert first and proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "error: interrupted" in stderr
    done = sorted(p.stem for p in out.glob("*.json"))
    assert 1 <= len(done) < len(names)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}{s}" for n in done
                                                           for s in (".json", ".wav"))
    finished = corpus.snapshot(out)
    result = invoke("batch", songs, "-o", out, "--jobs", "1")
    assert result.exit_code == 1, result.output
    assert f"{len(names) - len(done)} done, {len(done)} skipped, 1 failed" in result.output
    assert "failed zz_broken: " in result.stderr and "not a readable audio file" in result.stderr
    after = corpus.snapshot(out)
    assert {k: after[k] for k in finished} == finished  # the finished songs were not redone
    assert sorted(after) == sorted(f"{n}{s}" for n in names for s in (".json", ".wav"))
