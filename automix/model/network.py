"""The analysis network: production features of a mix and a reference -> mastering chain.

One encoder (an MLP over the standardised `automix.model.features` vector) is shared by the
input and the reference; the head reads ``[e_in, e_ref, e_ref - e_in, f_ref - f_in]`` and
outputs one 0..1 value per `MasterChain` parameter (sigmoid), mapped to real units by the
parameter table (`automix.params.from_unit_vector`). Because the reference enters only as a
feature vector, a preset made of several tracks is the mean of their vectors.

Level convention: the chain's input is scaled to `CHAIN_INPUT_RMS_DB` (mean square over
channels and time) before the chain; the compressor threshold the network predicts is relative
to that level (`automix.model.predict` shifts it back to the file's own level). Loudness is
normalised after the chain, so the compressor's make-up gain is not predicted: it is held at
its default.

Inference runs the same forward in numpy (`automix.model.network_np`, from the ``.npz`` that
`automix.model.network_np.export_npz` writes beside ``master.pt``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from automix.model.features_np import N_FEATURES
from automix.model.network_np import (  # noqa: F401  (the chain conventions, re-exported)
    CHAIN_INPUT_RMS_DB,
    FIXED_PARAMS,
    N_PARAMS,
    PARAM_NAMES,
)
from automix.params import MasterChain, flat_ranges


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters of the network (stored beside the weights as JSON)."""

    hidden: int = 512
    embedding: int = 256
    encoder_layers: int = 2
    head_layers: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(n_in: int, hidden: int, n_out: int, layers: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout)]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class MasterNet(nn.Module):
    """Features of input and reference -> normalised `MasterChain` parameters.

    Attributes
    ----------
    feature_mean, feature_std : buffers, shape (N_FEATURES,): standardisation of the features,
        measured on training data.
    """

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(N_FEATURES))
        self.register_buffer("feature_std", torch.ones(N_FEATURES))
        self.encoder = _mlp(N_FEATURES, config.hidden, config.embedding, config.encoder_layers,
                            config.dropout)
        self.head = _mlp(3 * config.embedding + N_FEATURES, config.hidden, N_PARAMS,
                         config.head_layers, config.dropout)
        fixed = torch.tensor([name in FIXED_PARAMS for name in PARAM_NAMES])
        defaults = torch.tensor([r.normalize(r.default) for r in flat_ranges(MasterChain).values()])
        self.register_buffer("fixed_mask", fixed)
        self.register_buffer("fixed_unit", defaults.float())

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_std

    def forward(self, input_features: torch.Tensor, reference_features: torch.Tensor
                ) -> torch.Tensor:
        """Normalised parameters, shape (batch, N_PARAMS), from two (batch, N_FEATURES) tensors."""
        f_in = self.standardise(input_features)
        f_ref = self.standardise(reference_features)
        e_in, e_ref = self.encoder(f_in), self.encoder(f_ref)
        logits = self.head(torch.cat([e_in, e_ref, e_ref - e_in, f_ref - f_in], dim=-1))
        unit = torch.sigmoid(logits)
        return torch.where(self.fixed_mask, self.fixed_unit.to(unit), unit)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
