"""The master network's trainer: closed-form degradations against rendered audio, the three
reference protocols, the splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.effects import render
from automix.model import features
from automix.params import EQParams, StereoWidthParams
from automix.training import data
from automix.training import master as train

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def _crops(path: Path, count: int, seconds: float = 1.5) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR
    n = round(seconds * sr)
    starts = np.linspace(0, x.shape[0] - n, count).astype(int)
    return np.stack([x[s:s + n].T for s in starts])


@pytest.mark.parametrize("path", sorted((ROOT / "reference_tracks").glob("*/*.flac"))[::3])
def test_closed_form_degradation_matches_pedalboard(path: Path) -> None:
    """What the trainer computes without rendering (mel bands moved by the EQ's response at
    their centres, levels renormalised) is what the features of the audio rendered by
    pedalboard read, for six random degradations of every band and the side: tonal balance
    within 0.4 dB at worst and 0.15 dB in the median, width within 0.3 dB."""
    torch.manual_seed(0)
    clean = _crops(path, 3)
    f, mid, side = train.crop_stats(torch.from_numpy(clean), SR)
    cfg = dataclasses.replace(train.CONFIGS["default"], identity_share=0.0, eq_band_share=1.0,
                              side_share=1.0)
    tonal, width_errors = [], []
    for seed in range(6):
        d = train.draw_degradation(torch.Generator().manual_seed(seed), 1, cfg)
        eq = EQParams(**{k: float(v[0]) for k, v in dataclasses.asdict(d.eq).items()})
        width = StereoWidthParams(width_pct=float(100 * 10 ** (d.side_db[0] / 20)))
        rendered = np.stack([render.stereo_width(render.eq(c, SR, eq), SR, width)
                             for c in clean])
        f_rendered = features.production_features(torch.from_numpy(rendered), SR)
        eq_db, power_eq_db = train.eq_responses(d, SR)
        closed = train.degrade_features(f, mid, side, eq_db.expand(3, -1),
                                        power_eq_db.expand(3, -1), d.side_db.float().expand(3))
        tonal += features.tonal_distance(closed, f_rendered).tolist()
        width_errors += (closed[:, features.WIDTH] - f_rendered[:, features.WIDTH]).abs().tolist()
        # the degradation was not a no-op
        assert float(features.tonal_distance(f, f_rendered).max()) > 0.5
    assert max(tonal) < 0.4 and float(np.median(tonal)) < 0.15
    assert max(width_errors) < 0.3


def _bank(songs: int = 6, packages: int = 3) -> tuple[train.CropBank, train.TrainConfig]:
    cfg = dataclasses.replace(train.CONFIGS["tiny"], synthetic_songs=songs)
    cache = data.synthetic_cache(songs=songs, per_song=cfg.per_song,
                                 segment_s=cfg.cache_segment_s, sample_rate=SR, seed=0)
    meta = [train.Song(n, Path(n), f"p{k % packages}", f"g{k % 2}")
            for k, n in enumerate(cache.songs)]
    return train.build_bank(cache, meta, cfg.segment_s), cfg


def test_sampler_draws_each_protocol_from_the_right_songs() -> None:
    """Same-song references come from the other half of the input's song; cross-song ones from
    another song of its package; presets are a mean of other songs of its genre."""
    bank, cfg = _bank()
    sampler = train.Sampler(bank, cfg, seed=0)
    songs = np.arange(len(bank.names))
    others = sampler._other(np.repeat(songs, 20), sampler.by_package, bank.package)
    assert np.all(others != np.repeat(songs, 20))
    assert np.all(bank.package[others] == bank.package[np.repeat(songs, 20)])
    batch = sampler.draw(64, protocol=np.zeros(64, int))
    assert batch.f_in.shape == batch.f_ref.shape == (64, features.N_FEATURES)
    assert set(batch.protocol) == {0}
    # untouched inputs exist (identity share) and their degradation is flat
    d = batch.degradation
    flat = torch.stack([getattr(d.eq, k) for k in vars(d.eq) if k.endswith("_gain_db")]).abs()
    untouched = (flat.sum(0) == 0) & (d.side_db == 0)
    assert 0 < int(untouched.sum()) < 64


def test_an_untouched_input_needs_no_correction() -> None:
    """The loss of doing nothing is zero when nothing was done, and grows with the EQ."""
    cfg = dataclasses.replace(train.CONFIGS["tiny"], identity_share=1.0)
    d = train.draw_degradation(torch.Generator().manual_seed(0), 8, cfg)
    assert float(train.identity_error_db(d, cfg).max()) < 0.01  # float32 biquads
    cfg = dataclasses.replace(cfg, identity_share=0.0, eq_band_share=1.0)
    d = train.draw_degradation(torch.Generator().manual_seed(0), 8, cfg)
    assert float(train.identity_error_db(d, cfg).min()) > 0.3


def test_fraction_is_stable_and_nested() -> None:
    names = [f"pkg__song{k}" for k in range(400)]
    quarter = {n for n in names if train.in_fraction(n, 0.25)}
    half = {n for n in names if train.in_fraction(n, 0.5)}
    assert quarter < half and 70 < len(quarter) < 130 and 160 < len(half) < 240
