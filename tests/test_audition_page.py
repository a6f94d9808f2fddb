"""The audition page in a real headless Chromium (Debian's chromium + chromedriver, selenium):
upload, suggestion plots, a synced A/B player that toggles gains, slider re-render, downloads."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from automix.service.client import LocalServer
from conftest import music_like

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="Debian's chromium and chromium-driver are not installed "
                                        "(tests/setup.sh installs them)"), pytest.mark.slow]
SR = 44100


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,1900",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, script: str, timeout_s: float = 60.0) -> object:
    """Wait until ``script`` (a JS expression) is truthy; return its value."""
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {script};"))


def _region_stats(png: bytes, rect: dict) -> tuple[float, int]:
    """(pixel standard deviation, distinct colours) of a screenshot region: blank is (0, 1)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    box = (int(rect["x"]), int(rect["y"]), int(rect["x"] + rect["width"]),
           int(rect["y"] + rect["height"]))
    region = np.asarray(image.crop(box), dtype=np.float32)
    return float(region.std()), len(np.unique(region.reshape(-1, 3), axis=0))


def test_audition_page_end_to_end(browser: webdriver.Chrome, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    sf.write(song, music_like(np.random.default_rng(21), SR, 3.0).T, SR, subtype="PCM_16")
    with LocalServer(tmp_path / "data", "--workers", "1") as srv:
        browser.get(srv.url + "/")
        _wait(browser, "document.body.dataset.ready === 'true'", 20)
        browser.find_element(By.ID, "song").send_keys(str(song))
        browser.execute_script("document.getElementById('reference').value = 'rock';")
        browser.find_element(By.ID, "submit").click()
        _wait(browser, "window.automix.state.job && window.automix.player.buffers.result")
        state = browser.execute_script("return window.automix.state.job;")
        assert state["status"] == "done" and state["result"]["reference"]["name"] == "rock"
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert not browser.find_element(By.ID, "stem-table").is_displayed()  # a master's page
        out = state["result"]["measurements"]["output"]
        assert browser.find_element(By.ID, "status-text").text == (
            f"done: song.wav at {out['integrated_lufs']:.1f} LUFS, "
            f"{out['true_peak_dbtp']:.1f} dBTP (target: spotify, -14 LUFS)")

        # The player: both loudness-matched previews decoded, started together, looping.
        urls = browser.execute_script("return window.automix.player.urls;")
        assert urls["input"].endswith("/previews/input")
        assert urls["result"].endswith("/previews/result")
        browser.find_element(By.ID, "play").click()
        _wait(browser, "window.automix.player.ctx.currentTime > 0.3", 10)
        before = browser.execute_script("""
            const p = window.automix.player;
            return {starts: p.starts, active: p.active, state: p.ctx.state,
                    sources: Object.keys(p.sources).sort(), t: p.ctx.currentTime};""")
        assert before["state"] == "running" and before["active"] == "result"
        assert before["sources"] == ["input", "reference", "result"]
        browser.find_element(By.ID, "ab").click()  # the A/B toggle
        time.sleep(0.2)
        after = browser.execute_script("""
            const p = window.automix.player;
            return {starts: p.starts, active: p.active, t: p.ctx.currentTime,
                    gains: Object.fromEntries(Object.entries(p.gains).map(
                        ([k, g]) => [k, g.gain.value]))};""")
        assert after["active"] == "input" and after["starts"] == before["starts"]  # no restart
        assert after["t"] > before["t"]  # time kept running through the switch
        assert after["gains"]["input"] > 0.99 and after["gains"]["result"] < 0.01
        assert browser.find_element(By.ID, "ab-state").text == "input"

        # The plots and the player render: elements with size and non-blank pixels.
        png = browser.get_screenshot_as_png()
        (tmp_path / "audition.png").write_bytes(png)
        for element_id in ("tonal-plot", "metrics-plot", "eq-plot", "waveform", "player",
                           "settings-table"):
            element = browser.find_element(By.ID, element_id)
            assert element.size["width"] > 100 and element.size["height"] > 20, element_id
            std, colours = _region_stats(png, element.rect)
            assert std > 5 and colours > 3, element_id  # drawn on, not blank
        # settings by module with units, and the EQ curve the worker computed from the biquads
        eq_rows = browser.execute_script("""return [...document.querySelectorAll(
            '#settings-table table[data-module="eq"] tr')].map(r => r.innerText);""")
        assert any(r.startswith("peak2 gain") and r.endswith("dB") for r in eq_rows), eq_rows
        assert len(state["result"]["eq_curve"]["gain_db"]) >= 100

        # Sliders: a re-render with the edits, shown when done; downloads follow the new job.
        first_id = state["id"]
        browser.execute_script("""
            const set = (id, v) => { const e = document.getElementById(id); e.value = v;
                                     e.dispatchEvent(new Event('input')); };
            set('slider-eq-low_shelf_gain_db', 3);
            set('slider-dynamics', 0.5);
            set('slider-target_lufs', -12);
            document.getElementById('render').click();""")
        _wait(browser, f"window.automix.state.job.id !== '{first_id}'")
        job = browser.execute_script("return window.automix.state.job;")
        settings = job["result"]["settings"]
        assert settings["chain"]["eq"]["low_shelf_gain_db"] == 3.0
        assert settings["target_lufs"] == -12.0
        out = job["result"]["measurements"]["output"]  # a loudness is not said twice
        assert browser.find_element(By.ID, "status-text").text == (
            f"done: song.wav at {out['integrated_lufs']:.1f} LUFS, "
            f"{out['true_peak_dbtp']:.1f} dBTP (target: -12 LUFS)")
        assert job["result"]["measurements"]["output"]["integrated_lufs"] == pytest.approx(
            -12.0, abs=0.3)
        assert browser.execute_script("return window.automix.player.active;") == "input"
        master = browser.find_element(By.ID, "download-master").get_attribute("href")
        assert master == f"{srv.url}/v1/jobs/{job['id']}/master"
        assert srv.request("GET", master.removeprefix(srv.url)).status == 200
        settings_link = browser.find_element(By.ID, "download-settings").get_attribute("href")
        downloaded = srv.request("GET", settings_link.removeprefix(srv.url)).json()
        assert downloaded["settings"] == settings
        assert not browser.find_element(By.ID, "slider-reverb-wet_db").is_displayed()


def test_audition_page_shows_a_mix_stem_by_stem(browser: webdriver.Chrome,
                                                tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    names = ("bass.wav", "drums.wav", "lead_vocal.wav")
    for name in names:
        sf.write(tmp_path / name, music_like(rng, SR, 3.0).T, SR, subtype="PCM_16")
    with LocalServer(tmp_path / "data", "--workers", "1") as srv:
        browser.get(srv.url + "/")
        _wait(browser, "document.body.dataset.ready === 'true'", 20)
        browser.find_element(By.ID, "stems").send_keys(
            "\n".join(str(tmp_path / n) for n in names))
        browser.find_element(By.ID, "submit").click()
        _wait(browser, "window.automix.state.job && window.automix.player.buffers.result", 120)
        job = browser.execute_script("return window.automix.state.job;")
        assert job["status"] == "done" and job["kind"] == "mix"
        rows = browser.execute_script("""return [...document.querySelectorAll(
            '#stem-table tr')].map(r => [...r.cells].map(c => c.innerText));""")
        assert rows[0] == ["stem", "role", "gain dB", "pan", "EQ", "compressor", "send"]
        assert [r[0] for r in rows[1:]] == list(names)
        stems = job["result"]["settings"]["stems"]
        for row in rows[1:]:  # what the page shows is what was rendered
            assert float(row[2]) == pytest.approx(stems[row[0]]["gain"]["gain_db"], abs=0.01)
            assert float(row[3]) == pytest.approx(stems[row[0]]["pan"]["pan"], abs=0.01)
        assert rows[3][1] == "vocals (name)"


def test_api_docs_render_offline(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """/docs draws every endpoint from files the server itself serves (no CDN)."""
    with LocalServer(tmp_path / "data", "--workers", "0") as srv:
        browser.get(srv.url + "/docs")
        _wait(browser, "document.querySelectorAll('.opblock').length >= 4", 30)
        title = browser.find_element(By.CSS_SELECTOR, ".info .title").text
        assert title.startswith("automix")
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);")
        assert loaded and all(url.startswith(srv.url) for url in loaded), loaded
