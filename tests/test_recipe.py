"""The data recipe: its sources table, licence and composer lookup, zip members, decoding."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from automix import presets
from automix.training import recipe

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: widelands

Files: *
Copyright: 2002-2022 The Widelands Development Team
License: GPL-2+

Files: data/music/ingame_24.ogg data/music/ingame_25.ogg
Copyright: 2010 Stuart Marshall <stuart@example.org>
License: CC-BY-SA-3.0

Files: debian/*
Copyright: 2005 Someone Else
License: GPL-2+
"""


def test_every_source_names_a_shipped_genre_and_a_split() -> None:
    rows = recipe.read_sources()
    genres = {g.name for g in presets.list_genres()}
    assert len(rows) >= 25 and len({r.package for r in rows}) == len(rows)
    assert {r.genre for r in rows} <= genres
    assert {r.split for r in rows} == {"train", "eval"}
    # the evaluation packages are whole albums none of the shipped presets was made from
    sources = " ".join(s for g in presets.list_genres() for s in g.sources)
    for row in rows:
        if row.split == "eval":
            assert row.package.split("-")[0] not in sources


def test_licence_and_composer_come_from_the_last_matching_stanza() -> None:
    stanzas = recipe.copyright_stanzas(COPYRIGHT)
    path = "usr/share/games/widelands/data/music/ingame_24.ogg"
    stanza = recipe.stanza_for(stanzas, path)
    assert stanza["license"] == "CC-BY-SA-3.0"
    assert recipe.composer_of(stanza["copyright"]) == "Stuart Marshall"
    other = recipe.stanza_for(stanzas, "usr/share/games/widelands/data/music/ingame_01.ogg")
    assert other["license"] == "GPL-2+"
    assert recipe.composer_of(other["copyright"]) == "The Widelands Development Team"


def test_zip_members_are_found_and_decoded_to_44k_stereo(tmp_path: Path) -> None:
    sr = 22050
    t = np.arange(sr * 2) / sr
    tone = (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "a.ogg", tone, sr, format="OGG", subtype="VORBIS")
    with zipfile.ZipFile(tmp_path / "music.pk3", "w") as z:
        z.write(tmp_path / "a.ogg", "sound/cdtracks/a.ogg")
        z.writestr("sound/readme.txt", "not audio")
    source = recipe.Source("pkg", "music.pk3!sound/cdtracks/*.ogg", "pop", "train")
    found = recipe.members(source, tmp_path)
    assert [name for name, _ in found] == ["music.pk3!sound/cdtracks/a.ogg"]
    x, rate, _ = recipe.decode(found[0][1])
    y = recipe.to_stereo_44k(x, rate)
    assert y.shape[0] == 2 and abs(y.shape[1] - 2 * recipe.SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spectrum) * recipe.SAMPLE_RATE / y.shape[1] - 440) < 2


def test_manifest_round_trips(tmp_path: Path) -> None:
    row = {"id": "pkg__a", "package": "pkg", "title": "A", "composer": "Someone",
           "licence": "GPL-2+", "duration_s": "61.0", "genre": "pop", "split": "eval",
           "source": "x.ogg"}
    recipe.write_manifest([row], tmp_path / "manifest.csv")
    assert recipe.read_manifest(tmp_path) == [row]
    assert recipe.read_manifest(tmp_path / "missing") == []
