"""Tracker-module multitracks: dry stems, wet stems and the author's mix of the MOD, S3M, XM
and IT modules in Debian's game packages, per channel, with the author's channel volume and
pan in real units.

Each module is rendered with libopenmpt (a small C++ helper, `HELPER_SOURCE`, compiled once
into the cache with g++ against libopenmpt-dev) from its first order to its end, at most
``--max-seconds`` (then faded out over `FADE_SECONDS`), with the song's loops played once:

- the whole module as its author saved it: the author's mix, ``master.flac``;
- each channel alone (every other channel muted), as in that mix: ``wet/``;
- each channel alone with its initial channel volume set to unity and its channel pan to the
  centre (libopenmpt's ``interactive`` interfaces, before the first sample): ``stems/``.

Notes, instruments, sample and instrument pans, envelopes and pattern effects (volume and pan
commands included) play in both: they are the performance, not the channel strip. The layout
is the General-MIDI songs' (`training.multitracks`)::

    DIR/multitracks/<package>__<module>/stems/NN_<name>.flac   dry (NN: the channel, 1..)
    DIR/multitracks/<package>__<module>/wet/NN_<name>.flac     as in the author's mix
    DIR/multitracks/<package>__<module>/master.flac            the author's mix
    DIR/multitracks/<package>__<module>/mix_sum.flac           the exact sum of the dry stems
    DIR/multitracks/<package>__<module>/meta.json              source, licence, split, format,
                                                               per stem its decisions
    DIR/licenses/<package>.copyright

Per stem, meta.json holds ``level_db`` (the initial channel volume, 20*log10(v/64)) and
``pan`` (-1..1) where the format stores them per channel (`channel_decisions`, `FORMATS`),
else null with the reason; where the dry render equals the wet one (unity volume, centre pan)
it is rendered once. One gain for the whole module (only ever down, ``common_gain_db``) keeps
every file under full scale. Channels that never play are left out. ``wet_lag_samples`` is
each wet stem's offset from its dry stem (0: both come from the same player). libopenmpt draws
new random numbers each render and offers no seed (IT instruments' random volume and pan
swing), so such songs' stems differ from run to run; ``wet_sum_error_db`` is how far the wet
stems' sum is from the author's mix. Run it as root on
Debian 12 (it installs g++, pkg-config and libopenmpt-dev when missing)::

    python -m automix.training.modules DIR [--jobs 1] [--only PACKAGE ...] [--max-seconds 150]

It skips modules whose meta.json exists and writes atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automix.training import recipe
from automix.training.data import split_of
from automix.training.lmms import error_db, lag

PACKAGES = ("heroes-sound-tracks", "ri-li-data", "redeclipse-data", "pingus-data",
            "fb-music-high")
MODULE_SUFFIXES = (".mod", ".s3m", ".xm", ".it", ".mptm")
APT_PACKAGES = ("g++", "pkg-config", "libopenmpt-dev")
MAX_SECONDS = 150.0
FADE_SECONDS = 3.0  # a module cut at --max-seconds fades out over its last seconds
SILENT_DBFS = -80.0  # a channel under this peak dry and wet plays nothing
RENDER_TIMEOUT_S = 1800.0
HELPER = "modchannels"

# Which channel-strip decisions each format stores, and why not where it does not.
# (OpenMPT's loaders: XM keeps volume and pan in samples and patterns only; S3M stores a pan
# per channel, no volume; MOD's LRRL pan is the Amiga's hardware, not the author's.)
FORMATS: dict[str, dict[str, str | None]] = {
    "it": {"level": None, "pan": None},
    "s3m": {"level": "S3M has no channel volume", "pan": None},
    "xm": {"level": "XM has no channel volume", "pan": "XM has no channel pan"},
    "mod": {"level": "MOD has no channel volume",
            "pan": "MOD's hard left-right-right-left pan is the format's, not the author's"},
}
OTHER_FORMAT = {"level": "not read for this format", "pan": "not read for this format"}

HELPER_SOURCE = r"""
// modchannels MODULE OUTDIR MAX_SECONDS: render a tracker module with libopenmpt into raw
// float32 stereo 44.1 kHz files: OUTDIR/master.f32, and per channel that plays a note,
// OUTDIR/wet_NNN.f32 (alone, as in the mix) and, unless its initial volume is unity and its
// pan centred, OUTDIR/dry_NNN.f32 (alone, volume 1, pan 0). OUTDIR/index.tsv: metadata,
// then one row a channel: index, name, notes, initial volume 0..1, initial pan -1..1, and
// the name of the instrument (or sample) it plays most.
#include <libopenmpt/libopenmpt.hpp>
#include <libopenmpt/libopenmpt_ext.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

static const int SR = 44100;

static std::string clean(std::string s) {
    for (auto &c : s) if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return s;
}

struct Player {
    openmpt::module_ext mod;
    openmpt::ext::interactive *ia;
    openmpt::ext::interactive2 *ia2;
    explicit Player(const std::vector<char> &data) : mod(data) {
        mod.set_repeat_count(0);
        mod.set_render_param(openmpt::module::RENDER_STEREOSEPARATION_PERCENT, 100);
        mod.set_render_param(openmpt::module::RENDER_INTERPOLATIONFILTER_LENGTH, 8);
        mod.set_render_param(openmpt::module::RENDER_VOLUMERAMPING_STRENGTH, -1);
        using namespace openmpt::ext;
        ia = static_cast<interactive *>(mod.get_interface(interactive_id));
        ia2 = static_cast<interactive2 *>(mod.get_interface(interactive2_id));
    }
};

static void render(Player &p, const std::string &out, size_t max_frames) {
    std::FILE *f = std::fopen(out.c_str(), "wb");
    std::vector<float> buf(2 * 4096);
    size_t total = 0;
    while (total < max_frames) {
        size_t want = std::min<size_t>(4096, max_frames - total);
        size_t got = p.mod.read_interleaved_stereo(SR, want, buf.data());
        if (got == 0) break;
        std::fwrite(buf.data(), sizeof(float), 2 * got, f);
        total += got;
    }
    std::fclose(f);
}

static void solo(Player &p, int channel) {
    for (int i = 0; i < p.mod.get_num_channels(); ++i)
        p.ia->set_channel_mute_status(i, i != channel);
}

int main(int argc, char **argv) {
    if (argc < 4) { std::cerr << "usage: modchannels MODULE OUTDIR MAX_SECONDS\n"; return 2; }
    std::ifstream in(argv[1], std::ios::binary);
    std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string outdir = argv[2];
    size_t max_frames = (size_t)(std::stod(argv[3]) * SR);
    Player probe(data);
    int n = probe.mod.get_num_channels();
    std::vector<long> notes(n, 0);
    std::vector<std::map<int, long>> played(n);  // channel -> instrument (or sample) -> notes
    for (int o = 0; o < probe.mod.get_num_orders(); ++o) {
        int pat = probe.mod.get_order_pattern(o);
        if (pat < 0 || pat >= probe.mod.get_num_patterns()) continue;
        for (int r = 0; r < probe.mod.get_pattern_num_rows(pat); ++r)
            for (int c = 0; c < n; ++c) {
                int note = probe.mod.get_pattern_row_channel_command(
                    pat, r, c, openmpt::module::command_note);
                int ins = probe.mod.get_pattern_row_channel_command(
                    pat, r, c, openmpt::module::command_instrument);
                if (note >= 1 && note <= 120) notes[c]++;
                if (ins > 0) played[c][ins]++;
            }
    }
    std::ofstream idx(outdir + "/index.tsv");
    for (const char *key : {"title", "artist", "type", "type_long", "tracker", "message"})
        idx << "#" << key << "\t" << clean(probe.mod.get_metadata(key)) << "\n";
    idx << "#duration\t" << probe.mod.get_duration_seconds() << "\n";
    std::vector<std::string> names = probe.mod.get_channel_names();
    std::vector<std::string> inames = probe.mod.get_num_instruments()
        ? probe.mod.get_instrument_names() : probe.mod.get_sample_names();
    for (int c = 0; c < n; ++c) {
        double volume = probe.ia->get_channel_volume(c), pan = probe.ia2->get_channel_panning(c);
        int top = 0;
        for (auto &kv : played[c]) if (!top || kv.second > played[c][top]) top = kv.first;
        std::string plays = top > 0 && top <= (int)inames.size() ? inames[top - 1] : "";
        idx << c + 1 << "\t" << clean(c < (int)names.size() ? names[c] : "") << "\t" << notes[c]
            << "\t" << volume << "\t" << pan << "\t" << clean(plays) << "\n";
    }
    idx.close();
    Player master(data);
    render(master, outdir + "/master.f32", max_frames);
    for (int c = 0; c < n; ++c) {
        if (!notes[c]) continue;
        char name[32];
        Player wet(data);
        solo(wet, c);
        std::snprintf(name, sizeof name, "/wet_%03d.f32", c + 1);
        render(wet, outdir + name, max_frames);
        if (probe.ia->get_channel_volume(c) == 1.0 && probe.ia2->get_channel_panning(c) == 0.0)
            continue;
        Player dry(data);
        solo(dry, c);
        dry.ia->set_channel_volume(c, 1.0);
        dry.ia2->set_channel_panning(c, 0.0);
        std::snprintf(name, sizeof name, "/dry_%03d.f32", c + 1);
        render(dry, outdir + name, max_frames);
    }
    return 0;
}
"""


# --- formats and the author's decisions -------------------------------------------------------


def module_format(data: bytes) -> str | None:
    """The format of a module by its magic bytes (``it``, ``xm``, ``s3m``, ``mod``; OpenMPT's
    MPTM reads as ``it``), None for anything else (Ri-li's ``language.It`` is a language file,
    not a module)."""
    if data[:4] == b"IMPM":
        return "it"
    if data[:17] == b"Extended Module: ":
        return "xm"
    if data[44:48] == b"SCRM":
        return "s3m"
    tag = data[1080:1084]
    if tag in (b"M.K.", b"M!K!", b"FLT4", b"FLT8", b"CD81", b"OKTA") \
            or (tag[1:] == b"CHN" and tag[:1].isdigit()) \
            or (tag[2:] == b"CH" and tag[:2].isdigit()):
        return "mod"
    return None


def volume_db(volume: float) -> float | None:
    """A channel volume 0..1 (the tracker's 0..64 over 64) in dB; None for silence."""
    return None if volume <= 0 else round(20.0 * math.log10(volume), 2)


def channel_decisions(fmt: str, volume: float, pan: float) -> dict:
    """The author's channel strip: ``level_db`` and ``pan`` (-1..1) where the format stores
    them per channel, else null and ``level_db_why`` / ``pan_why`` saying why; the values
    libopenmpt starts the channel with, and which of them the dry stem set to neutral."""
    reasons = FORMATS.get(fmt, OTHER_FORMAT)
    out: dict = {"level_db": None if reasons["level"] else volume_db(volume),
                 "pan": None if reasons["pan"] else round(max(-1.0, min(1.0, pan)), 3)}
    for key, why in (("level_db_why", reasons["level"]), ("pan_why", reasons["pan"])):
        if why:
            out[key] = why
    out["channel_volume"], out["channel_pan"] = round(volume, 4), round(pan, 4)  # as read
    out["neutralised"] = [k for k, v, unity in (("volume", volume, 1.0), ("pan", pan, 0.0))
                          if v != unity]
    return out


@dataclass(frozen=True)
class Channel:
    """One channel of the helper's index: 1-based, its name, its notes, its initial volume
    (0..1) and pan (-1..1) as libopenmpt reads them, the instrument (or sample) it plays most."""

    index: int
    name: str
    notes: int
    volume: float
    pan: float
    plays: str = ""


def read_index(text: str) -> tuple[dict[str, str], list[Channel]]:
    """The helper's ``index.tsv``: the module's metadata and its channels."""
    meta, channels = {}, []
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition("\t")
            meta[key] = value.strip()
        elif line.strip():
            index, name, notes, volume, pan, plays = line.split("\t")
            channels.append(Channel(int(index), name.strip(), int(notes), float(volume),
                                    float(pan), plays.strip()))
    return meta, channels


def stem_name(channel: Channel) -> str:
    """A stem's file name without suffix: the channel (1..) and its name, else the name of the
    instrument it plays most (a name automix's roles can read), e.g. ``04_bass``."""
    return f"{channel.index:02d}_{recipe.slug(channel.name or channel.plays or 'channel')}"


def faded(x: np.ndarray, *, cut: bool, fade_s: float = FADE_SECONDS) -> np.ndarray:
    """`x` (channels, n) with a linear fade-out over its last `fade_s` when the song was `cut`
    (linear, so faded dry stems still sum to the faded sum)."""
    if not cut:
        return x
    n = min(x.shape[1], round(fade_s * recipe.SAMPLE_RATE))
    ramp = np.ones(x.shape[1], dtype=np.float32)
    ramp[x.shape[1] - n:] = np.linspace(1.0, 0.0, n, dtype=np.float32)
    return x * ramp


# --- rendering --------------------------------------------------------------------------------


def ensure_helper(cache: Path) -> Path:
    """The compiled helper in ``cache`` (g++, pkg-config and libopenmpt-dev are installed with
    apt-get when missing; root only)."""
    helper = cache / HELPER
    source = cache / f"{HELPER}.cpp"
    if helper.exists() and source.exists() and source.read_text() == HELPER_SOURCE:
        return helper
    if not (shutil.which("g++") and shutil.which("pkg-config")
            and Path("/usr/include/libopenmpt/libopenmpt_ext.hpp").exists()):
        recipe.apt_install(APT_PACKAGES, recommends=False)
    cache.mkdir(parents=True, exist_ok=True)
    source.write_text(HELPER_SOURCE)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libopenmpt"], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["g++", "-O2", "-std=c++17", str(source), "-o", str(helper), *flags],
                   check=True, capture_output=True)
    return helper


def read_raw(path: Path, n: int) -> np.ndarray:
    """A helper render (float32 stereo interleaved) as (2, n)."""
    x = np.fromfile(path, dtype=np.float32).reshape(-1, 2).T
    return recipe.fit_length(x, n)


def render_module(path: Path, work: Path, helper: Path, max_seconds: float
                  ) -> tuple[dict[str, str], list[Channel]]:
    """Run the helper on one module into ``work``; its metadata and channels."""
    subprocess.run(["nice", "-n", "10", str(helper), str(path), str(work), str(max_seconds)],
                   check=True, capture_output=True, timeout=RENDER_TIMEOUT_S)
    return read_index((work / "index.tsv").read_text(errors="replace"))


def render_song(path: Path, song_dir: Path, *, meta: dict, work: Path, helper: Path,
                max_seconds: float) -> dict:
    """Dry and wet stems, the author's mix, the dry sum and meta.json for one module.

    Every file has the author's mix's length; meta.json is written last, so a song without it
    is unfinished (and rendered again by the next run)."""
    info, channels = render_module(path, work, helper, max_seconds)
    cut = float(info.get("duration") or 0) > max_seconds
    master = faded(np.fromfile(work / "master.f32", dtype=np.float32).reshape(-1, 2).T, cut=cut)
    n = master.shape[1]

    def pair(ch: Channel) -> tuple[np.ndarray, np.ndarray]:
        wet = faded(read_raw(work / f"wet_{ch.index:03d}.f32", n), cut=cut)
        dry_file = work / f"dry_{ch.index:03d}.f32"
        return (faded(read_raw(dry_file, n), cut=cut) if dry_file.exists() else wet), wet

    # pass 1: the channels that play, and the one gain that keeps every file under full scale
    peaks, total, silent = {}, np.zeros_like(master), 10.0 ** (SILENT_DBFS / 20.0)
    for ch in (c for c in channels if c.notes):
        dry, wet = pair(ch)
        peaks[ch] = max(float(np.abs(dry).max(initial=0.0)), float(np.abs(wet).max(initial=0.0)))
        total += dry if peaks[ch] > silent else 0.0
    audible = [ch for ch, peak in peaks.items() if peak > silent]
    if not audible:
        raise ValueError("no channel plays")
    gain = recipe.common_gain(max(float(np.abs(master).max(initial=0.0)),
                                  *(peaks[ch] for ch in audible)), total)
    # pass 2: write
    stems, total, wet_total = write_parts(
        song_dir, ((stem_name(ch), *pair(ch),
                    {"channel": ch.index, "channel_name": ch.name, "notes": ch.notes,
                     "plays": ch.plays, **channel_decisions(meta["format"], ch.volume, ch.pan)})
                   for ch in audible), master, gain, meta.get("title", ""))
    result = {**meta, "duration_s": round(n / recipe.SAMPLE_RATE, 2), "cut": cut,
              "fade_s": FADE_SECONDS if cut else 0.0,
              "original_seconds": round(float(info.get("duration") or 0), 2),
              "module_title": info.get("title", ""), "artist": info.get("artist", ""),
              "tracker": info.get("tracker", ""), "type_long": info.get("type_long", ""),
              "common_gain_db": volume_db(gain), "mix_sum_peak_dbfs": recipe.peak_db(total),
              "wet_sum_error_db": round(error_db(wet_total, master * gain), 2),
              "silent_channels": [c.index for c in channels if c not in audible],
              "stems": stems}
    recipe.write_json(song_dir / "meta.json", result)
    return result


def write_parts(song_dir: Path, parts, master: np.ndarray, gain: float, title: str
                ) -> tuple[dict[str, dict], np.ndarray, np.ndarray]:
    """Write a song's parts, each ``(name, dry, wet, facts)``: ``stems/<name>.flac`` (the dry
    render, quantised so that the stems add up exactly) and ``wet/<name>.flac``, both times
    ``gain``; then ``master.flac`` (``master`` times ``gain``) and ``mix_sum.flac`` (the dry
    sum). Returns each part's facts with its peaks and its wet stem's lag, the dry sum and
    the wet sum."""
    for sub in ("stems", "wet"):
        (song_dir / sub).mkdir(parents=True, exist_ok=True)
    total, wet_total, stems = np.zeros_like(master), np.zeros_like(master), {}
    for name, dry, wet, facts in parts:
        dry, wet = recipe.quantised(dry * gain), wet * gain
        recipe.write_flac(song_dir / "stems" / f"{name}.flac", dry, {"title": name})
        recipe.write_flac(song_dir / "wet" / f"{name}.flac", wet, {"title": name})
        total += dry
        wet_total += wet
        stems[name] = {**facts, "dry_peak_dbfs": recipe.peak_db(dry),
                       "wet_peak_dbfs": recipe.peak_db(wet), "wet_lag_samples": lag(dry, wet)}
    recipe.write_flac(song_dir / "master.flac", master * gain, {"title": title})
    recipe.write_flac(song_dir / "mix_sum.flac", total, {"title": title})
    return stems, total, wet_total


# --- songs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One module of a package: its name in the data folder, where it came from, its format."""

    name: str  # <package>__<file stem>
    package: str
    path: Path
    source: str  # path inside the package
    format: str


def package_modules(package: str, root: Path) -> list[Module]:
    """The tracker modules of an unpacked package (by magic bytes; a file seen before, once)."""
    found, seen = [], set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in MODULE_SUFFIXES:
            continue
        data = path.read_bytes()
        fmt, digest = module_format(data), hashlib.sha1(data).hexdigest()
        if fmt is None or digest in seen:
            continue
        seen.add(digest)
        found.append(Module(f"{package}__{recipe.slug(path.stem)}", package, path,
                            str(path.relative_to(root)), fmt))
    return found


def build_module(module: Module, out: Path, *, stanzas: list[dict[str, str]],
                 helper: Path, max_seconds: float) -> dict:
    """Render one module into ``out/multitracks/<song>`` (nothing when its meta.json exists)."""
    song_dir = out / "multitracks" / module.name
    if (song_dir / "meta.json").exists():
        return json.loads((song_dir / "meta.json").read_text())
    stanza = recipe.stanza_for(stanzas, module.source)
    meta = {"song": module.name, "package": module.package, "source": module.source,
            "format": module.format, "title": module.path.stem,
            "composer": recipe.composer_of(stanza.get("copyright", "")),
            "licence": stanza.get("license", "").split("\n")[0].split(" ")[0]
            or f"see licenses/{module.package}.copyright",
            "split": split_of(module.name), "max_seconds": max_seconds,
            "renderer": "libopenmpt"}
    with tempfile.TemporaryDirectory(prefix="modules_") as work:
        song = render_song(module.path, song_dir, meta=meta, work=Path(work), helper=helper,
                           max_seconds=max_seconds)
    return song


def build(out: Path, *, jobs: int = 1, only: list[str] | None = None,
          max_seconds: float = MAX_SECONDS, cache: Path | None = None) -> dict[str, list[dict]]:
    """Build (or finish) the tracker multitracks of `PACKAGES`; the meta of every song, by
    package. Failures are printed and leave no meta.json."""
    cache = cache or out / ".build"
    helper = ensure_helper(cache)
    done: dict[str, list[dict]] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for package in [p for p in PACKAGES if not only or p in only]:
            root = recipe.fetch_package(package, cache)
            stanzas = recipe.copy_copyright(package, root, out)
            futures = {pool.submit(build_module, m, out, stanzas=stanzas, helper=helper,
                                   max_seconds=max_seconds): m.name
                       for m in package_modules(package, root)}
            done[package] = recipe.finished_songs(futures)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = recipe.multitrack_parser(__doc__.split("\n\n")[0], only="these packages only",
                                      choices=PACKAGES, max_seconds=MAX_SECONDS)
    parser.add_argument("--cache", type=Path, default=None,
                        help="where .deb files are unpacked and the helper built "
                             "(default DIR/.build)")
    return recipe.run_multitracks(build, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
