"""Training of the networks that `automix.model` runs (which never imports this package).

- `data`: the song splits (`song_percentile`; `is_eval_song` for the master network's
  benchmark, `is_held_out` and `is_validation` for the stem network's) and segment caching
- `common`: what both trainers share: `load_config`, `JsonLog`, `start_run` (the only place
  that sets torch's threads; called by the trainers' entry points alone)
- `master`: self-supervised training of the master network through the twin (`automix train`)
- `stem_net` training still lives in `automix.model.stem_net` (moved next)
"""
