"""The analysis network's forward pass in numpy, for inference without torch.

`automix.model.network.MasterNet` is trained in torch; `export_npz` writes its state dict as a
``.npz`` beside ``master.pt`` and `NumpyMasterNet` runs the same forward from it (Linear,
LayerNorm, exact GELU, sigmoid, fixed parameters), so that `automix master --method network`
needs neither torch nor its import time. The chain conventions the network is trained for live
here, once; `automix.model.network` imports them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from automix.params import MasterChain, flat_ranges

CHAIN_INPUT_RMS_DB = -20.0
PARAM_NAMES = list(flat_ranges(MasterChain))
N_PARAMS = len(PARAM_NAMES)
FIXED_PARAMS = {"compressor.makeup_db"}  # loudness is set after the chain
# math.erf over an array: the network's activations are few (batch x hidden), and scipy.special
# would cost a second of imports.
_erf = np.frompyfunc(math.erf, 1, 1)
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default
MODULES_PER_LAYER = 4  # Linear, LayerNorm, GELU, Dropout (see `network._mlp`)


def export_npz(model: Any, path: str | Path) -> Path:
    """Write ``model.state_dict()`` (a torch `MasterNet`) as numpy arrays to ``path`` (.npz)."""
    path = Path(path).with_suffix(".npz")
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    return path


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias``: (..., in) -> (..., out) with weight (out, in), bias (out,)."""
    return x @ weight.T + bias


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Normalise the last axis to zero mean and unit (biased) variance, then scale and shift."""
    mean = x.mean(axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: ``x * Phi(x)`` with the standard normal CDF."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def hidden_layers(weights: dict[str, np.ndarray], prefix: str) -> int:
    """How many (Linear, LayerNorm, GELU) layers the MLP ``prefix`` has before its output
    Linear: one less than its 2-D weights."""
    return sum(1 for k, v in weights.items()
               if k.startswith(f"{prefix}.") and k.endswith(".weight") and v.ndim == 2) - 1


def mlp(weights: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """`network._mlp` in eval mode: (Linear, LayerNorm, GELU) layers then a Linear,
    (..., in) -> (..., out).

    ``weights`` is a state dict whose keys are ``f"{prefix}.{module index}.weight"`` etc.
    """
    layers = hidden_layers(weights, prefix)
    for i in range(layers):
        at = f"{prefix}.{MODULES_PER_LAYER * i}"
        norm = f"{prefix}.{MODULES_PER_LAYER * i + 1}"
        x = gelu(layer_norm(linear(x, weights[f"{at}.weight"], weights[f"{at}.bias"]),
                            weights[f"{norm}.weight"], weights[f"{norm}.bias"]))
    out = f"{prefix}.{MODULES_PER_LAYER * layers}"
    return linear(x, weights[f"{out}.weight"], weights[f"{out}.bias"])


class NumpyMasterNet:
    """`MasterNet`'s forward (eval mode) from its state dict as numpy arrays.

    Attributes
    ----------
    weights : dict of np.ndarray, the state dict (float64 copies; ``fixed_mask`` bool)
    segment_s : float, the excerpt length (seconds) the network was trained on
    """

    def __init__(self, weights: dict[str, np.ndarray], segment_s: float) -> None:
        self.weights = {k: v if v.dtype == bool else v.astype(np.float64)
                        for k, v in weights.items()}
        self.segment_s = segment_s

    @classmethod
    def load(cls, path: str | Path) -> NumpyMasterNet:
        """The network from ``path``'s ``.npz`` (see `export_npz`) and ``.json`` (its meta)."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz")) as data:
            weights = {k: data[k] for k in data.files}
        return cls(weights, float(meta["features"]["segment_s"]))

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (features - self.weights["feature_mean"]) / self.weights["feature_std"]

    def __call__(self, input_features: np.ndarray, reference_features: np.ndarray
                 ) -> np.ndarray:
        """Normalised parameters, shape (batch, N_PARAMS), in 0..1, from two
        (batch, N_FEATURES) arrays."""
        w = self.weights
        f_in = self.standardise(np.asarray(input_features, dtype=np.float64))
        f_ref = self.standardise(np.asarray(reference_features, dtype=np.float64))
        e_in, e_ref = mlp(w, "encoder", f_in), mlp(w, "encoder", f_ref)
        both = np.concatenate([e_in, e_ref, e_ref - e_in, f_ref - f_in], axis=-1)
        return np.where(w["fixed_mask"], w["fixed_unit"], sigmoid(mlp(w, "head", both)))
