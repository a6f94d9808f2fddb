"""Cut the shipped reference excerpts and the example song; recompute the genre presets.

Every file under ``reference_tracks/<genre>/`` and ``examples/`` is cut by this script from the
real-music folder made by the data build script ``build.sh`` (Debian packages of free music),
so anyone with that folder can reproduce them bit for bit::

    python reference_tracks/make_excerpts.py DATA_DIR     # excerpts, SOURCES.md, licences
    python reference_tracks/make_excerpts.py --profiles   # presets/genres/*.json from them

Excerpt rule: the loudest window (mean K-weighted power as in BS.1770, 0.1 s steps)
that starts at least ``EDGE_GUARD_S`` after the song's start and ends at least that long
before its end, so that intros and fade-outs are never chosen; 10 ms raised-cosine edges stop
clicks. Output: FLAC, 16-bit (TPDF-dithered, fixed seed), 44.1 kHz, stereo.
The genre of a track is judged from its package, title, tags and measured features, not by
listening; see the table below.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from automix import loudness, presets
from automix.audio import Audio, load, save, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT / "reference_tracks"
EXAMPLE_DIR = ROOT / "examples"
GENRES_DIR = ROOT / "presets" / "genres"
SAMPLE_RATE = 44100
REFERENCE_LENGTH_S = 10.0
EXAMPLE_LENGTH_S = 25.0
EDGE_GUARD_S = 8.0  # skip this much at both ends before looking for the loudest window
EDGE_FADE_S = 0.01
HOP_S = 0.1


@dataclass(frozen=True)
class Source:
    """One excerpt: where it comes from and who made it."""

    genre: str  # folder under reference_tracks/, or "example"
    source: str  # path inside DATA_DIR
    package: str  # Debian package
    original: str  # path inside that package
    title: str
    artist: str
    licence: str


# genre, file in DATA_DIR, Debian package, original path, title, artist (from the file's tags or
# the package's copyright file), licence (from the copyright file). Reasons are in the comments.
SOURCES = [
    # pop: bright, song-form game themes with drums, bass, lead melody.
    Source("pop", "mixes/supertux__tropicalbreeze.flac", "supertux-data",
           "usr/share/games/supertux2/music/tropical/tropicalbreeze.ogg", "Tropical Breeze", "Flan",
           "GPL-2+"),
    Source("pop", "mixes/frozen__frozen_mainzik_1p.flac", "frozen-bubble-data",
           "usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg",
           "Frozen Bubble main theme (1p)", "Matthias Le Bidan", "GPL-2"),
    Source("pop", "multitracks/lmms_alf42red_mauiwowi/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Alf42red-Mauiwowi.mmpz", "Mauiwowi",
           "Alf42red (Armin Heller)", "CC-BY-SA-3.0"),
    # rock: distorted guitars over a live-style kit.
    Source("rock", "mixes/hedgewars__rock.flac", "hedgewars-data",
           "usr/share/games/hedgewars/Data/Music/Rock.ogg", "Rock", "Hedgewars project",
           "GPL-2"),
    Source("rock", "multitracks/lmms_thomasso_axefromthe80s/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Thomasso-AxeFromThe80s.mmpz", "Axe From The 80s",
           "Thomasso", "Artistic-2"),
    # metal: real band recordings (drums, bass, rhythm and lead guitars), summed stems.
    Source("metal", "multitracks/fof_metal_madness/mix_sum.flac", "fretsonfire-songs-sectoid",
           "usr/share/games/fretsonfire/data/songs/sectoid/Metal madness", "Metal Madness",
           "Sectoid (Carlos Viola Iborra)", "Expat"),
    Source("metal", "multitracks/fof_escape_from_chaosland/mix_sum.flac",
           "fretsonfire-songs-sectoid",
           "usr/share/games/fretsonfire/data/songs/sectoid/Escape from chaosland",
           "Escape from Chaosland", "Sectoid (Carlos Viola Iborra)", "Expat"),
    Source("metal", "multitracks/fof_war_of_freedom/mix_sum.flac", "fretsonfire-songs-sectoid",
           "usr/share/games/fretsonfire/data/songs/sectoid/War of freedom", "War of Freedom",
           "Sectoid (Carlos Viola Iborra)", "Expat"),
    # electronic: synth-driven dance productions rendered by LMMS with their own master bus
    # (pushover "electro" was left out: clipped, with a DC offset).
    Source("electronic", "multitracks/lmms_saber_finalstep/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Saber-FinalStep.mmpz", "Final Step",
           "Saber Rastikerdar", "BSD-2-clause"),
    Source("electronic", "multitracks/lmms_skiessi_onion/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Skiessi/Skiessi-Onion.mmpz", "Onion", "Skiessi",
           "CC-BY-SA-4.0"),
    Source("electronic", "multitracks/lmms_socceroos_progress/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Socceroos-Progress.mmpz", "Progress", "Socceroos (Sam)",
           "Artistic-2"),
    # hiphop: slow beats with a heavy low end (hip-hop, reggaeton, reggae).
    Source("hiphop", "multitracks/lmms_strictproduction_dearjondoe/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/StrictProduction-DearJonDoe.mmp", "Dear Jon Doe",
           "StrictProduction", "GPL-2+"),
    Source("hiphop", "multitracks/lmms_capdan_reggaetontry/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/CapDan/CapDan-ReggaetonTry.mmpz", "Reggaeton Try",
           "CapDan (Der Daniel)", "Artistic-2"),
    Source("hiphop", "multitracks/lmms_capdan_reggaetry/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/CapDan/CapDan-ReggaeTry.mmpz", "Reggae Try",
           "CapDan (Der Daniel)", "Artistic-2"),
    # folk: small acoustic ensembles (strings, winds, hand percussion), Celtic/medieval.
    Source("folk", "mixes/wesnoth__traveling_minstrels.flac", "wesnoth-1.16-music",
           "usr/share/games/wesnoth/1.16/data/core/music/traveling_minstrels.ogg",
           "Traveling Minstrels", "Mattias Westlund", "GPL-2+"),
    Source("folk", "mixes/wesnoth__legends_of_the_north.flac", "wesnoth-1.16-music",
           "usr/share/games/wesnoth/1.16/data/core/music/legends_of_the_north.ogg",
           "Legends of the North", "Mattias Westlund", "GPL-2+"),
    # orchestral: full symphonic film-score writing, wide dynamics.
    Source("orchestral", "mixes/wesnoth__battle_epic.flac", "wesnoth-1.16-music",
           "usr/share/games/wesnoth/1.16/data/core/music/battle-epic.ogg", "Battle Epic",
           "Doug Kaufman", "GPL-2+"),
    Source("orchestral", "mixes/wesnoth__the_dangerous_symphony.flac", "wesnoth-1.16-music",
           "usr/share/games/wesnoth/1.16/data/core/music/the_dangerous_symphony.ogg",
           "The Dangerous Symphony", "Gianmarco Leone", "GPL-2+"),
    # chiptune: chip and tracker music: pulse-wave synths, short samples, drum machines. Left
    # out: supertux "chipdisko" (exact mono: its empty side channel would corrupt the side
    # balance) and "classic" (a DC offset of 0.059 full scale).
    Source("chiptune", "multitracks/mod_frozenbubble_mainzik_2p/master.flac", "fb-music-high",
           "usr/share/games/frozen-bubble/snd/frozen-mainzik-2p.xm",
           "Frozen Bubble main theme (2p), FastTracker 2 module", "Matthias Le Bidan", "GPL-2+"),
    Source("chiptune", "multitracks/lmms_skiessi_c64/master.flac", "lmms-common",
           "usr/share/lmms/projects/demos/Skiessi/Skiessi-C64.mmpz", "C64", "Skiessi",
           "CC-BY-SA-4.0"),
    # ambient: slow pads and textures, downtempo electronic.
    Source("ambient", "mixes/singularity__nebula.flac", "singularity-music",
           "usr/share/games/singularity/music/Nebula.ogg", "Nebula", "Maxstack (Max McCracken)",
           "CC-BY-SA-3.0"),
    Source("ambient", "mixes/singularity__through_space.flac", "singularity-music",
           "usr/share/games/singularity/music/Through Space.ogg", "Through Space",
           "Maxstack (Max McCracken)", "CC-BY-SA-3.0"),
]

# The example a new user masters first: an un-mastered LMMS stem sum (its own master bus makes it
# 3.8 LU louder) that is not a reference. Twilight Area was passed over: DC offset in its excerpt.
EXAMPLE = Source("example", "multitracks/lmms_dirtylove/mix_sum.flac", "lmms-common",
                 "usr/share/lmms/projects/shorties/DirtyLove.mmpz", "Dirty Love",
                 "LMMS contributors", "GPL-2+")
EXAMPLE_NAME = "dirty_love.flac"

# genre -> (one-line description, default delivery target). Folk, orchestral and ambient default
# to apple (-16 LUFS) to keep their dynamics: measured over the whole source songs, folk and
# orchestral span 11.7 and 9.9 LU of loudness range (EBU Tech 3342) and ambient has the largest
# peak-to-loudness ratio, 17.1 dB; at -14 LUFS under a -1 dBTP ceiling that PLR would need about
# 2 dB more limiting. (Rock's sources also measure 11.7 LU, but rock is delivered loud by
# convention.) The rest default to spotify's -14 LUFS, where every streaming service lands.
GENRES = {
    "pop": ("Song-form productions: full low end, soft top, mostly centred", "spotify"),
    "rock": ("Guitars and live drums: dense mids and upper mids, dark top", "spotify"),
    "metal": ("Heavy band recordings: loudest, densest, strong 2-5 kHz guitars", "spotify"),
    "electronic": ("Synth-driven dance music: strong sub-bass, wide image", "spotify"),
    "hiphop": ("Hip-hop, reggaeton and reggae beats: heavy low end, narrow image", "spotify"),
    "folk": ("Acoustic ensembles: little sub-bass, forward mids, wide image", "apple"),
    "orchestral": ("Symphonic film score: widest image, little sub-bass, big dynamics",
                   "apple"),
    "chiptune": ("Chip and tracker music: pulse-wave synths, bright top, narrow image",
                 "spotify"),
    "ambient": ("Slow pads and textures: soft top, wide image, high peak-to-loudness",
                "apple"),
}


def loudest_window_s(samples: np.ndarray, sample_rate: int, length_s: float) -> float:
    """Start (s, on the 0.1 s grid) of the loudest ``length_s`` window away from the edges.

    ``samples``: (channels, samples). Songs too short for the guard keep a proportional guard.
    """
    # BS.1770 K-weighted power summed over channels: the quantity every loudness is a mean of.
    weighted = loudness.weighted_power(samples, sample_rate)
    hop = round(HOP_S * sample_rate)
    blocks = weighted.size // hop
    power = weighted[:blocks * hop].reshape(blocks, hop).mean(axis=1)
    width = round(length_s / HOP_S)
    if blocks < width:
        raise SystemExit(f"song shorter than {length_s:g} s")
    window = np.convolve(power, np.ones(width) / width, mode="valid")
    guard = min(round(EDGE_GUARD_S / HOP_S), (blocks - width) // 4)
    usable = window[guard:len(window) - guard]
    return (guard + int(np.argmax(usable))) * HOP_S


def cut(data_dir: Path, src: Source, dest: Path, length_s: float) -> tuple[float, float]:
    """Write the loudest ``length_s`` excerpt of ``src`` to ``dest``; return (start, end) s."""
    audio = load(data_dir / src.source)
    if audio.sample_rate != SAMPLE_RATE or audio.channels != 2:
        raise SystemExit(f"{src.source}: expected 44.1 kHz stereo, got "
                         f"{audio.sample_rate} Hz x {audio.channels}")
    start_s = loudest_window_s(audio.samples, audio.sample_rate, length_s)
    first = round(start_s * SAMPLE_RATE)
    excerpt = audio.samples[:, first:first + round(length_s * SAMPLE_RATE)].copy()
    fade = int(EDGE_FADE_S * SAMPLE_RATE)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
    excerpt[:, :fade] *= ramp
    excerpt[:, -fade:] *= ramp[::-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    save(dest, Audio(excerpt, SAMPLE_RATE), bit_depth=16, file_format="flac")
    return start_s, start_s + length_s


def excerpt_name(src: Source) -> str:
    """``mixes/x__y.flac`` -> ``x__y.flac``; ``multitracks/song/master.flac`` -> ``song.flac``."""
    parts = Path(src.source).parts
    return f"{parts[1]}.flac" if parts[0] == "multitracks" else parts[-1]


def sources_table(rows: list[tuple[str, Source, float, float]]) -> str:
    columns = ["file", "genre", "Debian package", "original path", "title", "artist", "licence",
               "excerpt (s)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, s, start, end in rows:
        lines.append(f"| `{name}` | {s.genre} | {s.package} | `{s.original}` | {s.title} "
                     f"| {s.artist} | {s.licence} | {start:.1f}–{end:.1f} |")
    return "\n".join(lines) + "\n"


def copy_licences(data_dir: Path, sources: list[Source], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for package in sorted({s.package for s in sources}):
        shutil.copyfile(data_dir / "licenses" / f"{package}.copyright",
                        folder / f"{package}.copyright")


SOURCES_HEAD = """# Reference tracks: sources and licences

Ten-second excerpts of real productions, one folder per genre; the genre presets in
`presets/genres/` are computed from them (`python reference_tracks/make_excerpts.py --profiles`).
All come from Debian packages of freely licensed music; each package's copyright file is in
`licenses/`. The excerpt is the loudest 10 s away from intro and outro, cut by
`make_excerpts.py` (which also records why each track stands for its genre). Genres are judged
from package, title, tags and measured features, not by listening. "mixes/" sources are the
packages' finished tracks; LMMS sources are LMMS's own render of the demo project (master); the
tracker module is libopenmpt's render; Frets on Fire sources are the sum of the band's stems.

"""

EXAMPLE_HEAD = """# Example song: source and licence

`{name}` is {length:g} s of a real production that has not been mastered: the plain sum
of the per-instrument tracks that LMMS renders from the project below, without the project's
master bus (an amplifier and a look-ahead limiter; it is not one of the reference tracks). Master
it with the README's first command.
Licence text: `licenses/`.

"""


def remove_stale(keep: set[Path]) -> None:
    """Delete excerpts and licence copies that the tables above no longer name."""
    for path in [*REFERENCE_DIR.glob("*/*.flac"), *REFERENCE_DIR.glob("licenses/*.copyright"),
                 *EXAMPLE_DIR.glob("*.flac"), *EXAMPLE_DIR.glob("licenses/*.copyright")]:
        if path not in keep:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")


def make_excerpts(data_dir: Path) -> None:
    remove_stale({REFERENCE_DIR / s.genre / excerpt_name(s) for s in SOURCES}
                 | {REFERENCE_DIR / "licenses" / f"{s.package}.copyright" for s in SOURCES}
                 | {EXAMPLE_DIR / EXAMPLE_NAME,
                    EXAMPLE_DIR / "licenses" / f"{EXAMPLE.package}.copyright"})
    rows = []
    for src in SOURCES:
        name = excerpt_name(src)
        start, end = cut(data_dir, src, REFERENCE_DIR / src.genre / name, REFERENCE_LENGTH_S)
        rows.append((f"{src.genre}/{name}", src, start, end))
        print(f"{src.genre:11s} {name:45s} {start:7.1f} s", flush=True)
    write_text_atomic(REFERENCE_DIR / "SOURCES.md", SOURCES_HEAD + sources_table(rows))
    copy_licences(data_dir, SOURCES, REFERENCE_DIR / "licenses")
    start, end = cut(data_dir, EXAMPLE, EXAMPLE_DIR / EXAMPLE_NAME, EXAMPLE_LENGTH_S)
    write_text_atomic(EXAMPLE_DIR / "SOURCES.md",
                      EXAMPLE_HEAD.format(name=EXAMPLE_NAME, length=EXAMPLE_LENGTH_S)
                      + sources_table([(EXAMPLE_NAME, EXAMPLE, start, end)]))
    copy_licences(data_dir, [EXAMPLE], EXAMPLE_DIR / "licenses")
    total = sum(p.stat().st_size for p in REFERENCE_DIR.rglob("*.flac"))
    print(f"reference audio: {total / 1e6:.1f} MB; example: "
          f"{(EXAMPLE_DIR / EXAMPLE_NAME).stat().st_size / 1e6:.1f} MB")


def make_profiles() -> None:
    """Recompute ``presets/genres/<genre>.json`` from ``reference_tracks/<genre>/*.flac``."""
    for genre, (description, target) in GENRES.items():
        files = sorted((REFERENCE_DIR / genre).glob("*.flac"))
        profile = presets.profile_from_files(files, name=genre, description=description,
                                             target=target)
        profile = replace(profile, sources=[p.relative_to(ROOT).as_posix() for p in files])
        presets.save_genre(profile, GENRES_DIR / f"{genre}.json")
        f = profile.features
        print(f"{genre:11s} {f['integrated_lufs']:6.1f} LUFS  PLR {f['plr_db']:5.1f} dB  "
              f"LRA {f['loudness_range_lu']:4.1f} LU  width {f['width']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path,
                        help="the real-music folder (mixes/, multitracks/, licenses/)")
    parser.add_argument("--profiles", action="store_true",
                        help="recompute presets/genres/*.json from the excerpts")
    args = parser.parse_args()
    if args.data_dir is None and not args.profiles:
        parser.error("give DATA_DIR, --profiles, or both")
    if args.data_dir is not None:
        make_excerpts(args.data_dir)
    if args.profiles:
        make_profiles()


if __name__ == "__main__":
    main()
