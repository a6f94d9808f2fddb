"""The effects of an LMMS project (1.2 format) as data: each effect's plug-in, whether it runs,
its wet/dry, its parameters by name, and, where the plug-in is known, those parameters in real
units (`UNITS`, by kind): a compressor's threshold, ratio, attack, release, knee and make-up in
dB and ms, a reverb's decay, pre-delay, damping and wet level, an equaliser's bands.

LMMS stores a LADSPA effect's controls by port number (``<port0NN data=...>``: processor 0 or 1,
then the LADSPA port index); the names come from the plug-in's own descriptor
(`ladspa_port_names`, read from the installed ``.so``, with the range LMMS clamps a value to),
so a project reads in full only where its plug-ins are installed. A native effect stores its
controls as attributes of one child element (``<Eq Peak1freq=...>``). A control with
automation or a controller keeps its value in a child element instead (`model_value`).
"""

from __future__ import annotations

import ctypes
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

LADSPA_DIRS = (Path("/usr/lib/x86_64-linux-gnu/lmms/ladspa"), Path("/usr/lib/ladspa"),
               Path("/usr/local/lib/ladspa"))  # where LMMS 1.2 on Debian looks, in order
LADSPA_CONTROL_PORT = 4  # LADSPA_PORT_CONTROL
LADSPA_INPUT_PORT = 1  # LADSPA_PORT_INPUT
LADSPA_HINT_BOUNDED_BELOW, LADSPA_HINT_BOUNDED_ABOVE, LADSPA_HINT_SAMPLE_RATE = 0x1, 0x2, 0x8
SAMPLE_RATE = 44100  # the renders' rate: a sample-rate port's bounds scale with it
MAX_TEXT = 64  # longer attributes are blobs (a waveshaper's curve), not parameters


def model_value(el: ET.Element, name: str, default: float | None = None) -> float | None:
    """An LMMS model's value: the attribute ``name``, or, when automated or controlled, the
    ``value`` of the child element ``name``."""
    if el.get(name) is not None:
        return float(el.get(name))
    child = el.find(name)
    if child is not None and child.get("value") is not None:
        return float(child.get("value"))
    return default


def db(gain: float) -> float:
    """A linear amplitude factor in dB (-inf for 0)."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


# --- LADSPA plug-ins ------------------------------------------------------------------------


class _Hint(ctypes.Structure):
    _fields_ = [("hint", ctypes.c_int), ("lower", ctypes.c_float), ("upper", ctypes.c_float)]


class _Descriptor(ctypes.Structure):  # the leading fields of ladspa.h's LADSPA_Descriptor
    _fields_ = [("unique_id", ctypes.c_ulong), ("label", ctypes.c_char_p),
                ("properties", ctypes.c_int), ("name", ctypes.c_char_p),
                ("maker", ctypes.c_char_p), ("copyright", ctypes.c_char_p),
                ("port_count", ctypes.c_ulong), ("port_descriptors", ctypes.POINTER(ctypes.c_int)),
                ("port_names", ctypes.POINTER(ctypes.c_char_p)),
                ("port_range_hints", ctypes.POINTER(_Hint))]


def ladspa_file(file: str, dirs: tuple[Path, ...] = LADSPA_DIRS) -> Path | None:
    """The installed library of a LADSPA ``file`` as LMMS names it (``calf``, ``caps.so``)."""
    name = file if file.endswith(".so") else f"{file}.so"
    return next((d / name for d in dirs if (d / name).exists()), None)


class Port(NamedTuple):
    """An input control port of a LADSPA plug-in: its name and the range LMMS's control
    takes from it (None where unbounded), in the port's units."""

    name: str
    lower: float | None
    upper: float | None


@cache
def ladspa_port_names(file: str, label: str) -> dict[int, Port] | None:
    """Port index -> `Port` of the input control ports of plug-in ``label`` in LADSPA library
    ``file``; None when the library or the plug-in is not installed."""
    path = ladspa_file(file)
    if path is None:
        return None
    descriptor = ctypes.CDLL(str(path)).ladspa_descriptor
    descriptor.restype = ctypes.POINTER(_Descriptor)
    descriptor.argtypes = [ctypes.c_ulong]
    index = 0
    while d := descriptor(index):
        d = d.contents
        if d.label.decode() == label:
            wanted = LADSPA_CONTROL_PORT | LADSPA_INPUT_PORT
            return {i: _port(d.port_names[i].decode(), d.port_range_hints[i])
                    for i in range(d.port_count) if d.port_descriptors[i] & wanted == wanted}
        index += 1
    return None


def _port(name: str, hint: _Hint) -> Port:
    """A port's range as LMMS sets its control: bounds scaled by the sample rate where the
    plug-in asks for it."""
    scale = SAMPLE_RATE if hint.hint & LADSPA_HINT_SAMPLE_RATE else 1.0
    lower = hint.lower * scale if hint.hint & LADSPA_HINT_BOUNDED_BELOW else None
    upper = hint.upper * scale if hint.hint & LADSPA_HINT_BOUNDED_ABOVE else None
    return Port(name, lower, upper)


# --- effects ----------------------------------------------------------------------------------


def plugin_key(effect: ET.Element) -> str:
    """``file/label`` of a LADSPA effect (``calf/Compressor``, ``.so`` dropped), else the
    native effect's name (``eq``)."""
    if effect.get("name") != "ladspaeffect":
        return effect.get("name", "")
    attrs = {a.get("name"): a.get("value", "") for a in effect.iter("attribute")}
    return f"{attrs.get('file', '').removesuffix('.so')}/{attrs.get('plugin', '')}"


def ladspa_ports(effect: ET.Element) -> dict[int, float]:
    """LADSPA port index -> value of processor 0 (the left or only one)."""
    controls = effect.find("ladspacontrols")
    out = {}
    for port in controls if controls is not None else []:
        m = re.fullmatch(r"port0(\d+)", port.tag)
        value = model_value(port, "data")
        if m and value is not None:
            out[int(m.group(1))] = value
    return out


def effect_params(effect: ET.Element) -> dict[str, float] | None:
    """Parameter name -> value of one effect; None for a LADSPA plug-in not installed."""
    if effect.get("name") == "ladspaeffect":
        file, label = plugin_key(effect).split("/", 1)
        ports = ladspa_port_names(file, label)
        if ports is None:
            return None
        # LMMS loads a value into the installed plug-in's control by port number, clamped to
        # its range, and ignores a port the plug-in does not have (another version's layout)
        return {ports[i].name: _clamped(v, ports[i]) for i, v in ladspa_ports(effect).items()
                if i in ports}
    controls = next((c for c in effect if c.tag != "key"), None)
    if controls is None:
        return {}
    params = {k: float(v) for k, v in controls.attrib.items() if _is_number(v)}
    for child in controls:
        if child.get("value") is not None and len(child.get("value")) <= MAX_TEXT:
            params[child.tag] = float(child.get("value"))
    return params


def describe(effect: ET.Element, *, chain_enabled: bool = True) -> dict:
    """One effect as data: plugin, kind, enabled (the chain's switch, the effect's, a calf
    plug-in's own bypass), wet (LMMS's wet/dry, -1..1), params and, where mapped, units."""
    key = plugin_key(effect)
    params = effect_params(effect)
    kind, to_units = MAPPED.get(key, (KINDS.get(key, "other"), None))
    enabled = chain_enabled and model_value(effect, "on", 1.0) != 0 \
        and not (params or {}).get("Bypass", 0.0)
    out = {"plugin": key, "kind": kind, "enabled": bool(enabled),
           "wet": model_value(effect, "wet", 1.0), "params": params}
    if params is None:
        out["missing"] = True
    elif to_units is not None:
        out["units"] = _json_safe(to_units(params))
    return out


def chain(fxchain: ET.Element | None) -> list[dict]:
    """The effects of an ``<fxchain>`` in order (none when absent)."""
    if fxchain is None:
        return []
    enabled = model_value(fxchain, "enabled", 1.0) != 0
    return [describe(e, chain_enabled=enabled) for e in fxchain.findall("effect")]


def missing_plugins(root: ET.Element) -> list[str]:
    """The LADSPA plug-ins a project uses that are not installed."""
    keys = {plugin_key(e) for e in root.iter("effect") if e.get("name") == "ladspaeffect"}
    return sorted(k for k in keys if ladspa_port_names(*k.split("/", 1)) is None)


# --- real units -------------------------------------------------------------------------------


def _p(params: dict[str, float], name: str, default: float = math.nan) -> float:
    """A parameter by name, case-insensitive."""
    lowered = {k.lower(): v for k, v in params.items()}
    return lowered.get(name.lower(), default)


def _calf_compressor(p: dict[str, float]) -> dict:
    return {"threshold_db": db(_p(p, "Threshold")), "ratio": _p(p, "Ratio"),
            "attack_ms": _p(p, "Attack"), "release_ms": _p(p, "Release"),
            "knee_db": db(_p(p, "Knee")), "makeup_db": db(_p(p, "Makeup Gain")),
            "input_db": db(_p(p, "Input", 1.0)), "detection": "peak" if _p(p, "Detection")
            else "rms"}


def _caps_compress(p: dict[str, float]) -> dict:
    return {"threshold_db": _p(p, "threshold (dB)"), "ratio": _p(p, "ratio (1:n)"),
            "attack_ms": 1000.0 * _p(p, "attack (s)"), "release_ms": 1000.0 * _p(p, "release (s)"),
            "knee_db": 2.0 * _p(p, "knee radius (dB)"), "makeup_db": _p(p, "gain (dB)")}


def _limiter(threshold: str, release_s: str | None = None, makeup: str | None = None
             ) -> Callable[[dict[str, float]], dict]:
    """A limiter whose threshold is a dB port (and release in seconds, make-up in dB)."""
    def units(p: dict[str, float]) -> dict:
        out = {"threshold_db": _p(p, threshold)}
        if release_s:
            out["release_ms"] = 1000.0 * _p(p, release_s)
        if makeup:
            out["makeup_db"] = _p(p, makeup)
        return out
    return units


def _calf_limiter(p: dict[str, float]) -> dict:
    return {"threshold_db": db(_p(p, "Limit")), "release_ms": _p(p, "Release"),
            "lookahead_ms": _p(p, "Lookahead"), "input_db": db(_p(p, "Input", 1.0))}


def _calf_reverb(p: dict[str, float]) -> dict:
    return {"decay_s": _p(p, "Decay time"), "predelay_ms": _p(p, "Pre Delay"),
            "damping_hz": _p(p, "High Frq Damp"), "wet_db": db(_p(p, "Wet Amount")),
            "dry_db": db(_p(p, "Dry Amount")), "diffusion": _p(p, "Diffusion"),
            "room_size": _p(p, "Room size"), "low_cut_hz": _p(p, "Bass Cut"),
            "high_cut_hz": _p(p, "Treble Cut")}


def _caps_plate(p: dict[str, float]) -> dict:
    # CAPS's plate gives its tail as the tank's feedback (0..0.749), not a time: kept as is.
    blend = _p(p, "blend")
    return {"tail": _p(p, "tail"), "damping": _p(p, "damping"),
            "bandwidth": _p(p, "bandwidth"), "wet_db": db(blend), "dry_db": db(1.0 - blend)}


def _tap_reverb(p: dict[str, float]) -> dict:
    return {"decay_s": _p(p, "Decay [ms]") / 1000.0, "wet_db": _p(p, "Wet Level [dB]"),
            "dry_db": _p(p, "Dry Level [dB]"), "reverb_type": _p(p, "Reverb Type")}


def _freeverb(p: dict[str, float]) -> dict:
    return {"room_size": _p(p, "Room Size"), "damping": _p(p, "Damping"),
            "wet_db": db(_p(p, "Wet Level")), "dry_db": db(_p(p, "Dry Level"))}


def _graphic_eq(p: dict[str, float]) -> dict:
    """CAPS's 10-band equaliser: ports named by their centre (``31 Hz``, ``1 kHz``)."""
    bands = []
    for name, gain in p.items():
        m = re.fullmatch(r"([\d.]+) (k?)Hz", name)
        if m:
            bands.append({"freq_hz": float(m.group(1)) * (1000.0 if m.group(2) else 1.0),
                          "gain_db": gain})
    return {"bands": sorted(bands, key=lambda b: b["freq_hz"])}


def _tap_eq(p: dict[str, float]) -> dict:
    return {"bands": [{"freq_hz": _p(p, f"Band {i} Freq [Hz]"),
                       "gain_db": _p(p, f"Band {i} Gain [dB]")} for i in range(1, 9)]}


DJ_EQ_HZ = {"Lo": 100.0, "Mid": 1000.0, "Hi": 10000.0}  # swh dj_eq's fixed band centres


def _dj_eq(p: dict[str, float]) -> dict:
    return {"bands": [{"freq_hz": hz, "gain_db": _p(p, f"{band} gain (dB)")}
                      for band, hz in DJ_EQ_HZ.items()]}


LMMS_EQ_BANDS = (  # LMMS's own equaliser: band, its type, and its control name stems
    ("HP", "highpass"), ("LowShelf", "lowshelf"), ("Peak1", "peak"), ("Peak2", "peak"),
    ("Peak3", "peak"), ("Peak4", "peak"), ("HighShelf", "highshelf"), ("LP", "lowpass"))


def _lmms_eq(p: dict[str, float]) -> dict:
    """LMMS's equaliser: the active bands (freq, gain dB where it has one, Q or bandwidth)."""
    bands = []
    for band, kind in LMMS_EQ_BANDS:
        if not _p(p, f"{band}active", 0.0):
            continue
        entry = {"type": kind, "freq_hz": _p(p, f"{band}freq")}
        if kind not in ("highpass", "lowpass"):
            entry["gain_db"] = _p(p, f"{band}gain", 0.0)
        width = _p(p, f"{band}bw") if kind == "peak" else _p(p, f"{band}res")
        entry["bw" if kind == "peak" else "q"] = width
        bands.append(entry)
    return {"bands": bands, "input_db": _p(p, "Inputgain", 0.0),
            "output_db": _p(p, "Outputgain", 0.0)}


def _bass_booster(p: dict[str, float]) -> dict:
    return {"bands": [{"type": "lowshelf", "freq_hz": _p(p, "freq"),
                       "gain_db": db(_p(p, "gain"))}]}


def _gain(p: dict[str, float]) -> dict:
    return {"gain_db": db(_p(p, "Gain"))}


def _amplifier(p: dict[str, float]) -> dict:
    return {"gain_db": db(_p(p, "volume") / 100.0), "pan": _p(p, "pan") / 100.0}


UNITS: dict[str, dict[str, Callable[[dict[str, float]], dict]]] = {  # kind -> plug-in -> units
    "compressor": {"calf/Compressor": _calf_compressor, "caps/Compress": _caps_compress},
    "limiter": {
        "fast_lookahead_limiter_1913/fastLookaheadLimiter": _limiter("Limit (dB)",
                                                                     "Release time (s)"),
        "hard_limiter_1413/hardLimiter": _limiter("dB limit"), "calf/Limiter": _calf_limiter,
        "tap_limiter/tap_limiter": _limiter("Limit Level [dB]", makeup="Output Volume [dB]")},
    "deesser": {"tap_deesser/tap_deesser": _limiter("Threshold Level [dB]")},
    "reverb": {"calf/Reverb": _calf_reverb, "caps/Plate2x2": _caps_plate,
               "caps/Plate": _caps_plate, "tap_reverb/tap_reverb": _tap_reverb,
               "cmt/freeverb3": _freeverb},
    "eq": {"caps/Eq": _graphic_eq, "caps/Eq2x2": _graphic_eq, "tap_eq/tap_equalizer": _tap_eq,
           "dj_eq_1901/dj_eq": _dj_eq, "eq": _lmms_eq, "bassbooster": _bass_booster},
    "gain": {"amplifier": _amplifier, "cmt/amp_stereo": _gain},
}
MAPPED = {plugin: (kind, units) for kind, table in UNITS.items()
          for plugin, units in table.items()}

KINDS = {  # the other plug-ins the demo projects use, by what they do (no units)
    "calf/Filter": "filter", "cmt/hpf": "filter", "cmt/lpf": "filter", "dualfilter": "filter",
    "highpass_iir_1890/highpass_iir": "filter", "caps/SweepVFI": "filter",
    "caps/SweepVFII": "filter", "caps/ToneStack": "filter",
    "tap_echo/tap_stereo_echo": "delay", "cmt/fbdelay_1s": "delay", "cmt/delay_1s": "delay",
    "calf/VintageDelay": "delay", "cmt/canyon_delay": "delay", "comb_1190/comb": "delay",
    "caps/PhaserI": "modulation", "caps/PhaserII": "modulation", "caps/ChorusI": "modulation",
    "calf/MultiChorus": "modulation", "calf/Phaser": "modulation", "calf/Flanger": "modulation",
    "tap_chorusflanger/tap_chorusflanger": "modulation",
    "phasers_1217/fourByFourPole": "modulation", "phasers_1217/autoPhaser": "modulation",
    "ringmod_1188/ringmod_1i1o1l": "modulation", "am_pitchshift_1433/amPitchshift": "modulation",
    "caps/AmpV": "distortion", "caps/PreampIV": "distortion", "caps/Clip": "distortion",
    "caps/CabinetII": "distortion", "waveshaper": "distortion", "calf/Exciter": "distortion",
    "sinus_wavewrapper_1198/sinusWavewrapper": "distortion", "vynil_1905/vynil": "distortion",
    "stereomatrix": "stereo", "stereoenhancer": "stereo", "calf/StereoTools": "stereo",
    "caps/Narrower": "stereo", "dc_remove_1207/dcRemove": "filter",
    "spectrumanalyzer": "analyser", "peakcontrollereffect": "controller",
}


def _clamped(value: float, port: Port) -> float:
    if port.lower is not None:
        value = max(value, port.lower)
    return min(value, port.upper) if port.upper is not None else value


def _json_safe(value):
    """Floats rounded to 0.001, and None for what JSON cannot hold (-inf dB, a port not set)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return len(text) <= MAX_TEXT
