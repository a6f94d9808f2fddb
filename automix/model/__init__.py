"""The networks at inference: what `automix master --method network` and `automix mix
--method network` run. Training is `automix.training`, which this package never imports.

- `features`: production features in torch (gain invariant; averaged over tracks for presets)
- `network`: `MasterNet`, an MLP encoder shared by input and reference, and a head
- `predict`: `load_model`, `predict_master_chain`, `reference_features_from_audio`, `refine`
- `stem_net`: the stem network behind `automix mix --method network` (per-stem level, EQ and
  balance from band powers): `band_grams`, `StemNet`, `load_model`, `predict`
"""
