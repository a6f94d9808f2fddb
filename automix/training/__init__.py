"""Training of the networks that `automix.model` runs (which never imports this package).

- `data`: the song splits by a hash of the name (`song_percentile`; `is_eval_song` for the
  master network, `is_held_out` and `is_validation` for the stem network) and the master
  network's segment cache (`SegmentCache`, `build_cache`, `synthetic_cache`)
- `common`: what both trainers share: `load_config`, `JsonLog`, `start_run` (the only place
  that sets torch's threads; called by the trainers' entry points alone)
- `master`: self-supervised training of the master network (`automix.model.network`) through
  the twin (`automix train`)
- `stems`: training of the stem network (`automix.model.stem_net`) on multitracks: the
  perturbations it learns to undo, the band-power model of a chain, the songs' band powers,
  the losses (`automix train --model stems`)
"""
