"""Zam plug-in export (issue #19 point 1): the per-module error table.

For real songs (the committed excerpts, and mixes from $AUTOMIX_DATA when present) and
settings automix suggests for them, maps the master chain onto the Zam plug-ins
(`automix.plugins.zam.fit`), renders the song through the real plug-ins and prints, against
automix's own render of the same settings:

- EQ: the largest magnitude error in dB over 30 Hz-16 kHz, measured through the plug-ins,
  of the fitted ZamEQ2s, and of automix's bands copied over as they are (the baseline);
- compressor: ZamCompX2's output loudness against automix's compressor output, in LU, and
  the RMS of their 400-ms level differences in dB (knee, ballistics and channel link);
- master: the loudness difference in LU and the true peak in dBTP against the ceiling, of
  the fitted chain and of the chain as mapped without the fit (the baseline).

    AUTOMIX_DATA=/work/sdata python benchmarks/plugins.py [--seconds 30] [--data-songs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._songs import real_songs  # noqa: E402

CASES = (("pop", None), ("rock", None), ("pop", "-9"), ("pop", "-7"))  # reference, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--data-songs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from automix import api, loudness
    from automix.audio import Audio, load
    from automix.mastering.finalise import render_master
    from automix.plugins import zam, zam_eq

    if zam.missing():
        sys.exit(f"zam-plugins missing ({', '.join(zam.missing())}): apt-get install zam-plugins")
    songs = [ROOT / "examples" / "dirty_love.flac",
             ROOT / "reference_tracks" / "electronic" / "lmms_saber_finalstep.flac"]
    songs += real_songs(args.seconds, args.data_songs)
    header = ("| song | reference, target | EQ fit dB | EQ copied dB | comp. LU | comp. 400 ms dB "
              "| master LU | master LU unfitted | true peak dBTP | unfitted dBTP | ceiling "
              "| saturator | fit s |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    worst = {"eq": 0.0, "lu": 0.0, "over": -np.inf}
    for path in songs:
        audio = load(path)
        n = min(audio.samples.shape[1], int(args.seconds * audio.sample_rate))
        audio = Audio(np.ascontiguousarray(audio.samples[:, :n]), audio.sample_rate)
        for reference, target in CASES:
            settings = api.suggest(audio, reference, target=target)
            ours = render_master(audio, settings).samples
            want = loudness.integrated_lufs(ours, audio.sample_rate)
            t0 = time.perf_counter()
            fitted = zam.fit(settings, audio.samples, audio.sample_rate)
            seconds = time.perf_counter() - t0
            copied = zam_eq.max_error_db(zam_eq.copied(settings.chain), settings.chain,
                                         audio.sample_rate)
            mapped = zam.render(zam.build(settings, audio.sample_rate), audio.samples,
                                audio.sample_rate)
            e = fitted.errors
            comp = "off | off" if e.compressor_lu is None else \
                f"{e.compressor_lu:+.2f} | {e.compressor_short_term_db:.2f}"
            print(f"| {path.stem[:28]} | {reference}, {target or 'preset'} "
                  f"| {e.eq_max_db:.2f} | {copied:.2f} | {comp} | {e.master_lu:+.2f} "
                  f"| {loudness.integrated_lufs(mapped, audio.sample_rate) - want:+.2f} "
                  f"| {e.true_peak_dbtp:.2f} "
                  f"| {loudness.true_peak_dbtp(mapped, audio.sample_rate):.2f} "
                  f"| {e.ceiling_dbtp:g} | {'yes' if fitted.chain.saturator else 'no'} "
                  f"| {seconds:.1f} |", flush=True)
            worst["eq"] = max(worst["eq"], e.eq_max_db)
            worst["lu"] = max(worst["lu"], abs(e.master_lu))
            worst["over"] = max(worst["over"], e.true_peak_dbtp - e.ceiling_dbtp)
    print(f"\nworst: EQ {worst['eq']:.2f} dB (goal 0.5), loudness {worst['lu']:.2f} LU "
          f"(goal 0.3), true peak {worst['over']:+.2f} dB from the ceiling (goal <= 0)")


if __name__ == "__main__":
    main()
