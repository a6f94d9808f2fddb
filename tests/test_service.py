"""The HTTP service end to end: a real `automix serve` on loopback, short synthetic songs."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator

import numpy as np
import pytest
import soundfile as sf

from automix import loudness
from automix.plugins.chain import installed
from automix.service.client import LocalServer
from automix.service.worker import CHAIN_SECONDS_ENV, mix_available
from automix.settings import MasterSettings
from conftest import wav_bytes

SR = 44100
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    os.environ[CHAIN_SECONDS_ENV] = "1"  # a chain job's search: short (the server inherits it)
    try:
        with LocalServer(tmp_path_factory.mktemp("service"), "--workers", "1",
                         "--max-duration", "6") as srv:
            yield srv
    finally:
        del os.environ[CHAIN_SECONDS_ENV]


@pytest.fixture(scope="module")
def mastered(server: LocalServer) -> dict:
    """One master job toward the rock preset, finished."""
    resp = server.submit({"reference": "rock"}, [("file", "song.wav", wav_bytes(3.0))])
    assert resp.status == 202, resp.body
    assert resp.headers["location"] == f"/v1/jobs/{resp.json()['id']}"
    assert resp.json()["status"] == "queued"
    job = server.wait(resp.headers["location"])
    assert job["status"] == "done", job["error"]
    return job


def _audio(server: LocalServer, path: str) -> tuple[np.ndarray, int]:
    resp = server.request("GET", path)
    assert resp.status == 200, path
    x, sr = sf.read(io.BytesIO(resp.body), dtype="float32", always_2d=True)
    return x.T, sr


def test_presets_params_and_docs(server: LocalServer) -> None:
    presets = server.request("GET", "/v1/presets").json()
    assert "rock" in [g["name"] for g in presets["genres"]]
    assert {"name": "spotify", "integrated_lufs": -14.0}.items() <= next(
        t for t in presets["targets"] if t["name"] == "spotify").items()
    params = server.request("GET", "/v1/params").json()
    assert params["eq.low_shelf_gain_db"] == {"min": -12.0, "max": 12.0, "default": 0.0,
                                              "scale": "lin", "unit": "dB"}
    for page, needs in (("/docs", {b"swagger-ui-bundle.js", b"swagger-ui.css"}),
                        ("/redoc", {b"redoc.standalone.js"})):
        docs = server.request("GET", page)
        assert docs.status == 200
        assert not re.search(rb"https?://", docs.body)  # no CDN: the page works offline
        assets = re.findall(rb'(?:src|href)="([^"]+)"', docs.body)
        assert {a.rsplit(b"/", 1)[-1] for a in assets} >= needs
        for asset in assets:
            assert asset.startswith(b"/") and server.request("GET", asset.decode()).status == 200
    schema = server.request("GET", "/openapi.json").json()
    assert {"/v1/jobs", "/v1/suggest", "/v1/presets", "/v1/jobs/{job_id}"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    page = server.request("GET", "/")
    assert page.status == 200 and b'id="job-form"' in page.body


def test_master_job_files(server: LocalServer, mastered: dict) -> None:
    assert mastered["progress"] == 1.0 and mastered["attempts"] == 1
    result = mastered["result"]
    assert result["reference"]["name"] == "rock" and result["target"]["name"] == "spotify"
    assert "input" not in result and "sidecar" not in result  # no server paths leak
    master, sr = _audio(server, mastered["links"]["master"])
    assert sr == SR and master.shape == (2, 3 * SR)
    assert loudness.integrated_lufs(master, sr) == pytest.approx(-14.0, abs=0.3)
    assert loudness.true_peak_dbtp(master, sr) <= -1.0 + 0.05
    settings = server.request("GET", mastered["links"]["settings"])
    assert settings.headers["content-disposition"].endswith('filename="settings.json"')
    assert MasterSettings.from_dict(settings.json()["settings"]).to_dict() == result["settings"]
    report = server.request("GET", mastered["links"]["report"])
    assert report.headers["content-type"].startswith("text/html")
    assert b'id="tonal-balance"' in report.body
    assert set(mastered["links"]["previews"]) == {"input", "result", "reference",
                                                   "result_delivered"}
    levels = [loudness.integrated_lufs(*_audio(server, mastered["links"]["previews"][n]))
              for n in ("input", "result")]
    assert levels[0] == pytest.approx(levels[1], abs=0.2)  # a fair A/B


def test_rerender_with_edited_settings_amounts_and_target(server: LocalServer,
                                                          mastered: dict) -> None:
    settings = json.loads(json.dumps(mastered["result"]["settings"]))
    settings["chain"]["eq"]["low_shelf_gain_db"] = 3.0
    resp = server.submit({"input_job": mastered["id"], "reference": "rock",
                          "settings": json.dumps(settings), "amounts": "dynamics=0.5",
                          "target_lufs": "-11"})
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"])
    assert job["status"] == "done", job["error"]
    got = job["result"]["settings"]
    assert job["input_name"] == "song.wav"
    assert got["chain"]["eq"]["low_shelf_gain_db"] == 3.0  # eq amount 1 keeps the edit
    assert got["target_lufs"] == -11.0
    assert job["result"]["measurements"]["output"]["integrated_lufs"] == pytest.approx(
        -11.0, abs=0.3)
    master, sr = _audio(server, job["links"]["master"])
    assert loudness.integrated_lufs(master, sr) == pytest.approx(-11.0, abs=0.3)


def test_suggest_job(server: LocalServer) -> None:
    resp = server.submit({"reference": "pop", "target": "apple"},
                         [("file", "s.flac", wav_bytes(2.0, seed=5))], path="/v1/suggest")
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"])
    assert job["kind"] == "suggest" and job["status"] == "done", job["error"]
    assert set(job["links"]) == {"self", "settings"}
    doc = server.request("GET", job["links"]["settings"]).json()
    assert doc["target"]["integrated_lufs"] == -16.0  # apple
    assert "motivation" in doc and MasterSettings.from_dict(doc["settings"])
    missing = server.request("GET", f"/v1/jobs/{job['id']}/master")
    assert missing.status == 404 and missing.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("target", ["-12", "keep"])
def test_a_target_by_loudness_or_keep(server: LocalServer, target: str) -> None:
    song = wav_bytes(3.0, seed=8)
    resp = server.submit({"target": target}, [("file", "song.wav", song)])
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"])
    assert job["status"] == "done", job["error"]
    x, sr = sf.read(io.BytesIO(song), dtype="float32", always_2d=True)
    expected = loudness.integrated_lufs(x.T, sr) if target == "keep" else -12.0
    assert job["result"]["target"]["integrated_lufs"] == pytest.approx(expected, abs=0.01)
    master, sr = _audio(server, job["links"]["master"])
    assert loudness.integrated_lufs(master, sr) == pytest.approx(expected, abs=0.5)
    assert loudness.true_peak_dbtp(master, sr) <= -1.0 + 0.01


def test_character_moves_the_target_and_shows(server: LocalServer) -> None:
    resp = server.submit({"reference": "pop", "character": "warm,wide:0.5"},
                         [("file", "s.flac", wav_bytes(2.0, seed=6))])
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"])
    assert job["status"] == "done", job["error"]
    ref = job["result"]["reference"]
    assert ref["name"] == "pop +warm,wide"
    assert [c["name"] for c in ref["character"]] == ["warm", "wide"]
    assert ref["character"][1]["width"] == pytest.approx(0.05)


BAD_REQUESTS = [
    ({"reference": "polka"}, 422, "unknown preset 'polka'"),
    ({"reference": "/etc/passwd"}, 422, "unknown preset"),
    ({"target": "radio"}, 422, "target: unknown 'radio'"),
    ({"target": "aple"}, 422, "did you mean 'apple'?"),
    ({"target": "+5"}, 422, "a loudness must be in [-40, 0] LUFS"),
    ({"target": "presets/targets/cd.json"}, 422, "unknown"),  # never a path on the server
    ({"target_lufs": "-80"}, 422, "target_lufs=-80 is out of range"),
    ({"target_lufs": "nan"}, 422, "out of range"),
    ({"ceiling_dbtp": "loud"}, 422, "ceiling_dbtp: expected a number"),
    ({"settings": "{not json"}, 422, "settings: not valid JSON"),
    ({"settings": '{"gain_db": 99}'}, 422, "settings.gain_db: expected a number in [-70, 40]"),
    ({"settings": '{"chain": {"eq": {"low_shelf_gain_db": 40}}}'}, 422, "low_shelf_gain_db"),
    ({"amounts": "eq=2"}, 422, "out of range [0, 1]"),
    ({"amounts": "delay=0.5"}, 422, "unknown module 'delay'"),
    ({"format": "mp3"}, 422, "format: expected wav or flac"),
    ({"format": "flac", "bit_depth": "32"}, 422, "bit_depth"),
    ({"kind": "karaoke"}, 422, "kind: expected master or mix"),
    ({"colour": "red"}, 422, "unknown form field 'colour'"),
    ({"character": "warmer"}, 422, "character: unknown character 'warmer'; choose from"),
]


@pytest.mark.parametrize("fields,status,detail", BAD_REQUESTS)
def test_bad_fields_are_problems(server: LocalServer, fields: dict, status: int,
                                 detail: str) -> None:
    jobs_before = set((server.data_dir / "jobs").iterdir())
    resp = server.submit(fields, [("file", "song.wav", wav_bytes(2.0))])
    assert resp.status == status, resp.body
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == status
    assert detail in body["detail"]
    assert set((server.data_dir / "jobs").iterdir()) == jobs_before  # nothing left behind


def test_bad_uploads_are_problems(server: LocalServer) -> None:
    cases = [
        (server.submit({}, [("file", "notes.wav", b"RIFF? no, just text")]), 422, "bad-audio"),
        (server.submit({}, [("file", "long.wav", wav_bytes(7.0))]), 422, "too-long"),
        (server.submit({"reference": "rock"}), 422, "missing-input"),
        (server.submit({"input_job": "A" * 22}), 422, "bad-field"),
        (server.submit({}, [("file", "a.wav", wav_bytes(2.0)), ("file", "b.wav", b"x")]), 422,
         "bad-form"),
        (server.request("POST", "/v1/jobs", b'{"file": 1}', {"Content-Type": "application/json"}),
         422, "bad-form"),
        (server.request("POST", "/v1/jobs", b"--x\r\nbroken", {
            "Content-Type": "multipart/form-data; boundary=x"}), 422, "bad-form"),
        (server.request("GET", "/v1/jobs/nope"), 404, "no-such-job"),
        (server.request("GET", "/v1/jobs/" + "B" * 22 + "/report"), 404, "no-such-job"),
        (server.request("GET", "/v1/jobs/x/previews/secret"), 422, "bad-request"),
        (server.request("DELETE", "/v1/presets"), 405, "http"),
        (server.request("GET", "/v2/anything"), 404, "http"),
    ]
    for resp, status, code in cases:
        assert (resp.status, resp.headers["content-type"]) == (status, PROBLEM), resp.body
        assert resp.json()["type"] == f"urn:automix:problem:{code}"


def test_mix_is_refused_until_available(tmp_path, monkeypatch) -> None:
    # a build without automix.mixing (this one has it: the check is forced, in process, on
    # the request's validation, which the route runs before any upload is laid out)
    from automix.service import app
    from automix.service.problems import Problem
    from automix.service.uploads import Form

    monkeypatch.setattr(app, "mix_available", lambda: False)
    with pytest.raises(Problem) as refused:
        app._prepare("mix", Form(fields={"kind": "mix"}), tmp_path, None, None)
    assert (refused.value.status, refused.value.code, refused.value.detail) == (
        422, "mix-unavailable", "mix is not available in this build")


@pytest.mark.skipif(not mix_available(), reason="automix.mixing is not in this build")
def test_mix_job(server: LocalServer) -> None:
    stems = [("stems", f"{name}.wav", wav_bytes(3.0, seed=i))
             for i, name in enumerate(("drums", "bass", "vocals"))]
    resp = server.submit({"kind": "mix", "reference": "rock"}, stems)
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"], timeout_s=120)
    assert job["status"] == "done", job["error"]
    master, sr = _audio(server, job["links"]["master"])
    assert loudness.integrated_lufs(master, sr) == pytest.approx(-14.0, abs=0.5)
    settings = job["result"]["settings"]
    assert set(settings["stems"]) == {"drums.wav", "bass.wav", "vocals.wav"}
    table = job["result"]["stem_table"]  # the page's stem by stem table, as rendered
    assert [r[0] for r in table] == ["bass.wav", "drums.wav", "vocals.wav"]
    assert [float(r[2]) for r in table] == pytest.approx(
        [settings["stems"][r[0]]["gain"]["gain_db"] for r in table], abs=0.01)
    settings["reverb"]["wet_db"] = -12.0  # the page's reverb slider
    resp = server.submit({"kind": "mix", "input_job": job["id"], "reference": "rock",
                          "settings": json.dumps(settings), "amounts": "dynamics=0.5",
                          "target_lufs": "-12"})
    assert resp.status == 202, resp.body
    again = server.wait(resp.headers["location"], timeout_s=120)
    assert again["status"] == "done", again["error"]
    assert again["result"]["settings"]["reverb"]["wet_db"] == -12.0
    assert again["result"]["settings"]["master"]["target_lufs"] == -12.0
    master, sr = _audio(server, again["links"]["master"])
    assert loudness.integrated_lufs(master, sr) == pytest.approx(-12.0, abs=0.5)


def test_a_chain_of_installed_plugins(server: LocalServer) -> None:
    """``chain`` names plug-ins installed on the server (GET /v1/presets lists them): the
    master goes through them, optimised, and the result lists what was found."""
    plugins = server.request("GET", "/v1/presets").json()["plugins"]
    assert plugins == installed()
    bad = server.submit({"chain": "NoSuchPlugin"}, [("file", "s.wav", wav_bytes(2.0))])
    assert bad.status == 422 and "not installed" in bad.json()["detail"]
    path = server.submit({"chain": "/usr/lib/vst3/ZamEQ2.vst3"},
                         [("file", "s.wav", wav_bytes(2.0))])
    assert path.status == 422  # a name, never a path
    if "ZamEQ2" not in plugins:
        pytest.skip("zam-plugins not installed (tests/setup.sh installs them)")
    resp = server.submit({"reference": "rock", "chain": "ZamEQ2"},
                         [("file", "s.wav", wav_bytes(3.0, seed=7))])
    assert resp.status == 202, resp.body
    job = server.wait(resp.headers["location"])
    assert job["status"] == "done", job["error"]
    result = job["result"]
    assert result["method"] == "chain"
    assert [p["plugin"] for p in result["chain"]["plugins"]] == ["ZamEQ2"]
    assert "file" not in result["chain"]["plugins"][0]  # no server paths
    master, sr = _audio(server, job["links"]["master"])
    assert loudness.integrated_lufs(master, sr) == pytest.approx(-14.0, abs=0.5)
    assert loudness.true_peak_dbtp(master, sr) <= -1.0 + 0.05
