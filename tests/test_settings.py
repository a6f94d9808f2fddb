"""The parameter table (`automix.params`) and the settings documents and options
(`automix.settings`): ranges and their units, validation with its one-line messages, the
0..1 vectors the networks use, settings files' round trips, ``--amount``.

All of it in memory or in tmp_path, fast: this file is the settings group's selection in
tools/mutation.py.
"""

from __future__ import annotations

import json
import locale
import math
from dataclasses import fields, make_dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from automix import params
from automix import settings as st
from automix.analysis import Analysis
from automix.character import Character
from automix.errors import SettingsError
from automix.mixing.roles import ROLES
from automix.params import (
    CompressorParams,
    EQParams,
    HighpassParams,
    LimiterParams,
    MasterChain,
    PanParams,
    Range,
    ReverbParams,
    StemChain,
    StereoWidthParams,
)
from automix.presets import Target

EQ_NAMES = ", ".join(params.ranges(EQParams))


def refused(fn, *args, **kwargs) -> str:
    """The message of the `SettingsError` ``fn`` raises (one line, as the CLI prints it)."""
    with pytest.raises(SettingsError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- Range -----------------------------------------------------------------------------------


def test_log_range_maps_geometrically_and_back():
    r = Range(10.0, 1000.0, 100.0, "log")
    assert r.denormalize(0.0) == pytest.approx(10.0)
    assert r.denormalize(1.0) == pytest.approx(1000.0)
    assert r.denormalize(0.5) == pytest.approx(100.0)  # the geometric middle
    assert r.normalize(100.0) == pytest.approx(0.5)
    assert r.normalize(10.0) == pytest.approx(0.0)
    assert r.normalize(1000.0) == pytest.approx(1.0)
    assert r.normalize(31.622776601683793) == pytest.approx(0.25)


def test_lin_range_maps_linearly_and_back():
    r = Range(-12.0, 12.0, 0.0)
    assert r.scale == "lin"
    assert r.denormalize(0.25) == pytest.approx(-6.0)
    assert r.denormalize(1.0) == pytest.approx(12.0)
    assert r.normalize(-6.0) == pytest.approx(0.25)
    assert r.normalize(12.0) == pytest.approx(1.0)
    assert Range(2.0, 10.0, 2.0).normalize(4.0) == pytest.approx(0.25)


def test_ranges_map_arrays_and_tensors():
    log = Range(10.0, 1000.0, 100.0, "log")
    u = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(log.denormalize(u), [10.0, 100.0, 1000.0])
    t = torch.tensor([10.0, 100.0, 1000.0], dtype=torch.float64)
    back = log.normalize(t)
    assert isinstance(back, torch.Tensor) and back.shape == (3,)
    np.testing.assert_allclose(back.numpy(), [0.0, 0.5, 1.0], atol=1e-12)
    lin = Range(-1.0, 1.0, 0.0)
    np.testing.assert_allclose(lin.normalize(torch.tensor([-1.0, 0.0, 1.0])).numpy(),
                               [0.0, 0.5, 1.0])


def test_clip_holds_a_value_inside_its_range():
    r = params.ranges(HighpassParams)["freq_hz"]
    assert (r.min, r.max, r.default, r.scale) == (10.0, 300.0, 10.0, "log")
    assert r.clip(5.0) == 10.0
    assert r.clip(400.0) == 300.0
    assert r.clip(50.0) == 50.0


def test_param_is_a_field_with_its_range():
    cls = make_dataclass("Knob", [("level_db", float, params.param(-6.0, 6.0, 1.5)),
                                  ("time_ms", float, params.param(1.0, 100.0, 10.0, "log"))])
    assert cls().level_db == 1.5 and cls().time_ms == 10.0
    assert params.ranges(cls) == {"level_db": Range(-6.0, 6.0, 1.5, "lin"),
                                  "time_ms": Range(1.0, 100.0, 10.0, "log")}


# --- the table -------------------------------------------------------------------------------


def test_ranges_are_in_field_order_and_chains_have_none():
    rs = params.ranges(CompressorParams)
    assert list(rs) == ["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db"]
    assert rs["ratio"] == Range(1.0, 20.0, 1.0, "log")
    assert params.ranges(CompressorParams(ratio=4.0)) == rs  # an instance too
    assert params.ranges(MasterChain) == {}


@pytest.mark.parametrize("name, unit", [
    ("gain_db", "dB"), ("ceiling_dbtp", "dBTP"), ("freq_hz", "Hz"), ("attack_ms", "ms"),
    ("decay_s", "s"), ("width_pct", "%"), ("target_lufs", "LUFS"), ("ratio", ""), ("pan", ""),
    ("peak1_q", ""),
])
def test_unit_of_reads_the_name_suffix(name, unit):
    assert params.unit_of(name) == unit


def test_flat_ranges_of_a_chain_are_keyed_effect_dot_param():
    flat = params.flat_ranges(MasterChain)
    assert len(flat) == 20
    assert list(flat)[:3] == ["highpass.freq_hz", "eq.low_shelf_freq_hz", "eq.low_shelf_gain_db"]
    assert list(flat)[-1] == "width.width_pct"
    assert flat["compressor.ratio"] == Range(1.0, 20.0, 1.0, "log")
    assert params.flat_ranges(HighpassParams) == {"freq_hz": Range(10.0, 300.0, 10.0, "log")}
    assert list(params.flat_ranges(PanParams, prefix="x.")) == ["x.pan"]
    stem = params.flat_ranges(StemChain)
    assert len(stem) == 22 and list(stem)[0] == "gain.gain_db" and list(stem)[-1] == "send.send_db"


def test_from_unit_vector_maps_each_value_through_its_range_in_order():
    n = len(params.flat_ranges(MasterChain))
    chain = params.from_unit_vector(MasterChain, np.zeros(n))
    assert isinstance(chain, MasterChain) and isinstance(chain.eq, EQParams)
    assert float(chain.highpass.freq_hz) == pytest.approx(10.0)
    assert float(chain.width.width_pct) == pytest.approx(0.0)
    u = np.zeros(n)
    u[1] = 1.0  # eq.low_shelf_freq_hz
    u[n - 1] = 0.5  # width.width_pct
    chain = params.from_unit_vector(MasterChain, u)
    assert float(chain.eq.low_shelf_freq_hz) == pytest.approx(400.0)
    assert float(chain.eq.low_shelf_gain_db) == pytest.approx(-12.0)
    assert float(chain.width.width_pct) == pytest.approx(100.0)
    assert float(chain.compressor.makeup_db) == pytest.approx(0.0)


def test_from_unit_vector_keeps_the_batch_axes():
    n = len(params.flat_ranges(StemChain))
    u = torch.full((4, n), 0.5, dtype=torch.float64)
    chain = params.from_unit_vector(StemChain, u)
    assert chain.pan.pan.shape == (4,)
    np.testing.assert_allclose(chain.gain.gain_db.numpy(), -12.0)
    np.testing.assert_allclose(chain.send.send_db.numpy(), -30.0)
    np.testing.assert_allclose(chain.highpass.freq_hz.numpy(), math.sqrt(10.0 * 300.0))


def test_from_unit_vector_refuses_the_wrong_length():
    with pytest.raises(ValueError) as info:
        params.from_unit_vector(MasterChain, np.zeros(3))
    assert str(info.value) == "MasterChain needs 20 values, got 3"
    with pytest.raises(ValueError, match="^LimiterParams needs 2 values, got 21$"):
        params.from_unit_vector(LimiterParams, np.zeros((2, 21)))


def test_to_unit_list_inverts_from_unit_vector():
    n = len(params.flat_ranges(MasterChain))
    u = np.linspace(0.05, 0.95, n)
    chain = params.from_unit_vector(MasterChain, u)
    real = MasterChain(**{f.name: type(getattr(chain, f.name))(
        **{g.name: float(getattr(getattr(chain, f.name), g.name))
           for g in fields(getattr(chain, f.name))}) for f in fields(chain)})
    np.testing.assert_allclose(params.to_unit_list(real), u, atol=1e-12)
    assert params.to_unit_list(LimiterParams(ceiling_dbtp=-9.0, release_ms=500.0)) == \
        pytest.approx([0.0, 1.0])
    assert params.to_unit_list(StereoWidthParams()) == [0.5]


def test_as_real_makes_huge_integers_infinite():
    assert params.as_real(10**400) == math.inf
    assert params.as_real(-(10**400)) == -math.inf
    assert params.as_real(3) == 3.0 and isinstance(params.as_real(3), float)


def test_iter_table_and_markdown_table_list_every_parameter():
    rows = list(params.iter_table())
    assert len(rows) == 30
    assert rows[0] == ("highpass", "freq_hz", Range(10.0, 300.0, 10.0, "log"))
    assert rows[-1] == ("send", "send_db", Range(-60.0, 0.0, -60.0, "lin"))
    lines = params.markdown_table().split("\n")
    assert lines[0] == "| effect | parameter | unit | min | max | default | scale |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert len(lines) == 32
    assert lines[2] == "| highpass | `freq_hz` | Hz | 10 | 300 | 10 | log |"
    assert "| compressor | `ratio` |  | 1 | 20 | 1 | log |" in lines
    assert "| limiter | `ceiling_dbtp` | dBTP | -9 | 0 | -1 | lin |" in lines
    assert "| compressor | `attack_ms` | ms | 0.1 | 100 | 10 | log |" in lines


# --- validate --------------------------------------------------------------------------------


def test_validate_builds_floats_and_defaults_the_rest():
    lim = params.validate(LimiterParams, {"ceiling_dbtp": -2}, where="limiter")
    assert lim == LimiterParams(ceiling_dbtp=-2.0, release_ms=60.0)
    assert type(lim.ceiling_dbtp) is float
    assert params.validate(LimiterParams, {}, where="limiter") == LimiterParams()
    edges = params.validate(LimiterParams, {"ceiling_dbtp": -9.0, "release_ms": 500},
                            where="limiter")
    assert edges == LimiterParams(-9.0, 500.0)
    assert params.validate(LimiterParams, {"ceiling_dbtp": 0}, where="x").ceiling_dbtp == 0.0


def test_validate_refuses_a_non_mapping():
    assert refused(params.validate, EQParams, [1], where="stems.vocals.eq") == \
        "stems.vocals.eq: expected a mapping of parameters, got list"


def test_validate_names_the_first_unknown_parameter_and_the_allowed():
    assert refused(params.validate, EQParams, {"zz": 1, "bass": 1, "peak1_q": 1.0},
                   where="eq") == f"eq: unknown parameter 'bass'; allowed: {EQ_NAMES}"
    assert refused(params.validate, LimiterParams, {2: 1, "a": 0}, where="limiter") == \
        "limiter: unknown parameter 2; allowed: ceiling_dbtp, release_ms"  # YAML number keys


@pytest.mark.parametrize("value, shown", [(True, "True"), ("1", "'1'"), (None, "None"),
                                          ([1], "[1]")])
def test_validate_refuses_a_non_number(value, shown):
    assert refused(params.validate, LimiterParams, {"ceiling_dbtp": value}, where="limiter") == \
        f"limiter.ceiling_dbtp: expected a number, got {shown}"


@pytest.mark.parametrize("cls, name, value, message", [
    (LimiterParams, "ceiling_dbtp", 0.5, "l.ceiling_dbtp=0.5 is out of range [-9, 0] dBTP"),
    (LimiterParams, "ceiling_dbtp", -9.5, "l.ceiling_dbtp=-9.5 is out of range [-9, 0] dBTP"),
    (LimiterParams, "release_ms", 501, "l.release_ms=501 is out of range [10, 500] ms"),
    (CompressorParams, "ratio", 30, "l.ratio=30 is out of range [1, 20]"),
    (CompressorParams, "ratio", math.nan, "l.ratio=nan is out of range [1, 20]"),
    (CompressorParams, "ratio", math.inf, "l.ratio=inf is out of range [1, 20]"),
    (CompressorParams, "attack_ms", 0.05, "l.attack_ms=0.05 is out of range [0.1, 100] ms"),
])
def test_validate_refuses_out_of_range_with_the_range_and_unit(cls, name, value, message):
    assert refused(params.validate, cls, {name: value}, where="l") == message


def test_validate_refuses_an_integer_too_large_for_a_float():
    message = refused(params.validate, CompressorParams, {"ratio": 10**400}, where="c")
    assert message.startswith("c.ratio=1000") and message.endswith(" is out of range [1, 20]")


def test_validate_chain_builds_each_section():
    chain = params.validate_chain(MasterChain, {"eq": {"peak1_gain_db": 3}, "width": {}},
                                  where="chain")
    assert chain == MasterChain(eq=EQParams(peak1_gain_db=3.0))
    assert params.validate_chain(MasterChain, {}, where="chain") == MasterChain()


def test_validate_chain_messages():
    assert refused(params.validate_chain, MasterChain, "eq", where="s.chain") == \
        "s.chain: expected a mapping, got str"
    assert refused(params.validate_chain, MasterChain, {"reverb": {}, "aa": {}, 1: {}},
                   where="s.chain") == \
        "s.chain: unknown section 1; allowed: highpass, eq, compressor, width"
    assert refused(params.validate_chain, MasterChain, {"eq": {"peak1_q": 9}}, where="s.chain") \
        == "s.chain.eq.peak1_q=9 is out of range [0.3, 4]"


def test_as_dict_is_nested_and_plain():
    d = params.as_dict(MasterChain())
    assert d["highpass"] == {"freq_hz": 10.0}
    assert d["width"] == {"width_pct": 100.0}
    assert json.loads(json.dumps(d)) == d


# --- Amounts ---------------------------------------------------------------------------------


def test_amounts_default_to_the_suggestion():
    a = st.Amounts()
    assert (a.eq, a.dynamics, a.width) == (1.0, 1.0, 1.0)
    assert not a.scales
    assert st.Amounts(eq=0.0, dynamics=1.0, width=1.0).scales
    assert st.Amounts(dynamics=0.5).scales
    assert st.Amounts(width=0.999).scales


@pytest.mark.parametrize("kwargs, message", [
    ({"eq": 1.5}, "--amount eq=1.5 is out of range [0, 1]"),
    ({"dynamics": -0.25}, "--amount dynamics=-0.25 is out of range [0, 1]"),
    ({"width": 2}, "--amount width=2 is out of range [0, 1]"),
])
def test_amounts_outside_0_1_are_refused(kwargs, message):
    assert refused(st.Amounts, **kwargs) == message


def test_amounts_accept_both_ends():
    assert st.Amounts(eq=0.0, dynamics=1.0, width=0.0) == st.Amounts(0.0, 1.0, 0.0)


@pytest.mark.parametrize("text, expected", [
    (None, (1.0, 1.0, 1.0)),
    ("", (1.0, 1.0, 1.0)),
    ("  ", (1.0, 1.0, 1.0)),
    ("0.5", (0.5, 0.5, 0.5)),
    (" 0 ", (0.0, 0.0, 0.0)),
    ("eq=0.5,dynamics=1,width=0", (0.5, 1.0, 0.0)),
    (" eq = 0.25 , ", (0.25, 1.0, 1.0)),
    ("width=0,eq=1", (1.0, 1.0, 0.0)),
    ("dynamics=0.75", (1.0, 0.75, 1.0)),
])
def test_parse_amounts(text, expected):
    a = st.Amounts.parse(text)
    assert (a.eq, a.dynamics, a.width) == expected


@pytest.mark.parametrize("text, message", [
    ("eq", "--amount: expected a number in [0, 1], got 'eq'"),
    ("2", "--amount=2 is out of range [0, 1]"),
    ("0.5,0.3",
     "--amount: expected MODULE=VALUE, got '0.5' (modules: eq, dynamics, width, reverb)"),
    ("eq=1,bass",
     "--amount: expected MODULE=VALUE, got 'bass' (modules: eq, dynamics, width, reverb)"),
    ("bass=1", "--amount: unknown module 'bass'; allowed: eq, dynamics, width, reverb"),
    ("eq=2", "--amount eq=2 is out of range [0, 1]"),
    ("width=-1", "--amount width=-1 is out of range [0, 1]"),
    ("eq= x ", "--amount eq: expected a number in [0, 1], got 'x'"),
    ("eq=0.5=1", "--amount eq: expected a number in [0, 1], got '0.5=1'"),
])
def test_parse_amounts_refuses(text, message):
    assert refused(st.Amounts.parse, text) == message


def test_amount_zero_makes_each_module_neutral_and_keeps_frequencies():
    chain = MasterChain(highpass=HighpassParams(40.0),
                        eq=EQParams(peak1_freq_hz=500.0, peak1_gain_db=6.0, peak1_q=2.0,
                                    high_shelf_gain_db=-3.0),
                        compressor=CompressorParams(threshold_db=-20.0, ratio=4.0,
                                                    attack_ms=5.0, makeup_db=3.0),
                        width=StereoWidthParams(150.0))
    out = st.Amounts(0.0, 0.0, 0.0).scale(chain)
    assert type(out) is MasterChain
    assert out.highpass == HighpassParams(10.0)
    assert out.eq == EQParams(peak1_freq_hz=500.0, peak1_q=2.0)
    assert out.compressor == CompressorParams(attack_ms=5.0)
    assert out.width == StereoWidthParams(100.0)
    assert st.Amounts().scale(chain) == chain


def test_amount_half_is_half_way_in_the_tables_space():
    chain = MasterChain(highpass=HighpassParams(40.0), eq=EQParams(peak1_gain_db=6.0),
                        compressor=CompressorParams(threshold_db=-20.0, ratio=4.0),
                        width=StereoWidthParams(50.0))
    out = st.Amounts.parse("0.5").scale(chain)
    assert out.highpass.freq_hz == pytest.approx(20.0)  # log: the geometric middle
    assert out.eq.peak1_gain_db == pytest.approx(3.0)
    assert out.compressor.threshold_db == pytest.approx(-10.0)
    assert out.compressor.ratio == pytest.approx(2.0)
    assert out.width.width_pct == pytest.approx(75.0)
    only_eq = st.Amounts(eq=0.5).scale(chain)
    assert only_eq.eq.peak1_gain_db == 3.0 and only_eq.compressor == chain.compressor
    assert only_eq.width == chain.width


def test_amounts_round_to_a_thousandth():
    chain = MasterChain(compressor=CompressorParams(threshold_db=-10.0))
    out = st.Amounts(dynamics=1 / 3).scale(chain)
    assert out.compressor.threshold_db == -3.333


def test_amounts_scale_a_stem_chain_which_has_no_width():
    chain = StemChain(pan=PanParams(1.0), eq=EQParams(low_shelf_gain_db=-4.0))
    out = st.Amounts(eq=1.0, dynamics=1.0, width=0.5).scale(chain)
    assert type(out) is StemChain
    assert out.pan.pan == pytest.approx(0.5)
    assert out.eq == chain.eq
    assert st.Amounts(eq=0.0).scale(chain).eq == EQParams()


# --- settings documents ----------------------------------------------------------------------


MASTER = st.MasterSettings(chain=MasterChain(eq=EQParams(peak2_gain_db=2.5)), gain_db=3.25,
                           limiter=LimiterParams(-2.0, 80.0), target_lufs=-16.0)


def test_master_settings_defaults():
    s = st.MasterSettings()
    assert (s.chain, s.gain_db, s.limiter, s.target_lufs) == \
        (MasterChain(), 0.0, LimiterParams(), -14.0)


def test_master_settings_to_dict():
    d = st.MasterSettings(gain_db=1.234567).to_dict()
    assert list(d) == ["chain", "gain_db", "limiter", "target_lufs"]
    assert d["gain_db"] == 1.2346
    assert d["limiter"] == {"ceiling_dbtp": -1.0, "release_ms": 60.0}
    assert d["target_lufs"] == -14.0
    assert d["chain"]["compressor"]["ratio"] == 1.0


def test_master_settings_round_trip_through_json():
    d = json.loads(json.dumps(MASTER.to_dict()))
    assert st.MasterSettings.from_dict(d) == MASTER


def test_master_settings_from_an_empty_mapping_are_the_defaults():
    s = st.MasterSettings.from_dict({})
    assert s == st.MasterSettings()
    s = st.MasterSettings.from_dict({"gain_db": 3, "target_lufs": -9})
    assert type(s.gain_db) is float and type(s.target_lufs) is float
    assert (s.gain_db, s.target_lufs) == (3.0, -9.0)


@pytest.mark.parametrize("key, value", [("gain_db", -70), ("gain_db", 40.0),
                                        ("target_lufs", -40), ("target_lufs", 0.0)])
def test_master_settings_accept_their_bounds(key, value):
    assert getattr(st.MasterSettings.from_dict({key: value}), key) == value


@pytest.mark.parametrize("data, message", [
    ([], "s: expected a JSON object"),
    ({"gain": 1, "zz": 2}, "s: unknown key 'gain'; allowed: chain, gain_db, limiter, target_lufs"),
    ({1: 0, "x": 0}, "s: unknown key 1; allowed: chain, gain_db, limiter, target_lufs"),
    ({"gain_db": 40.5}, "s.gain_db: expected a number in [-70, 40], got 40.5"),
    ({"gain_db": -71}, "s.gain_db: expected a number in [-70, 40], got -71"),
    ({"gain_db": True}, "s.gain_db: expected a number in [-70, 40], got True"),
    ({"gain_db": "3"}, "s.gain_db: expected a number in [-70, 40], got '3'"),
    ({"gain_db": math.nan}, "s.gain_db: expected a number in [-70, 40], got nan"),
    ({"gain_db": None}, "s.gain_db: expected a number in [-70, 40], got None"),
    ({"target_lufs": 1}, "s.target_lufs: expected a number in [-40, 0], got 1"),
    ({"target_lufs": -41.0}, "s.target_lufs: expected a number in [-40, 0], got -41.0"),
    ({"target_lufs": -math.inf}, "s.target_lufs: expected a number in [-40, 0], got -inf"),
    ({"target_lufs": False}, "s.target_lufs: expected a number in [-40, 0], got False"),
    ({"chain": {"eq": {"peak1_gain_db": 13}}},
     "s.chain.eq.peak1_gain_db=13 is out of range [-12, 12] dB"),
    ({"chain": []}, "s.chain: expected a mapping, got list"),
    ({"limiter": {"ceiling_dbtp": 1}}, "s.limiter.ceiling_dbtp=1 is out of range [-9, 0] dBTP"),
    ({"limiter": 3}, "s.limiter: expected a mapping of parameters, got int"),
])
def test_master_settings_refused(data, message):
    assert refused(st.MasterSettings.from_dict, data, where="s") == message


def test_master_settings_from_dict_refuses_a_huge_integer():
    message = refused(st.MasterSettings.from_dict, {"gain_db": 10**400})
    assert message.startswith("settings.gain_db: expected a number in [-70, 40], got 1000")


def test_master_settings_default_where_is_settings():
    assert refused(st.MasterSettings.from_dict, 3) == "settings: expected a JSON object"


MIX = st.MixSettings(
    stems={"drums.wav": StemChain(pan=PanParams(-0.25)),
           "vocals.wav": StemChain(eq=EQParams(peak2_gain_db=1.5))},
    reverb=ReverbParams(decay_s=2.0, wet_db=-12.0), master=MASTER,
    roles={"vocals.wav": "vocals"})


def test_mix_settings_defaults():
    m = st.MixSettings(stems={})
    assert m.reverb == st.DEFAULT_REVERB and m.master == st.MasterSettings() and m.roles == {}
    assert st.DEFAULT_REVERB == ReverbParams(1.4, 20.0, 6000.0, 100.0, -6.0)


def test_mix_settings_to_dict_rounds_to_a_ten_thousandth():
    m = st.MixSettings(stems={"a.wav": StemChain(gain=params.GainParams(-3.123456))},
                       reverb=ReverbParams(decay_s=1.23456789))
    d = m.to_dict()
    assert list(d) == ["stems", "reverb", "master"]  # no roles given, none written
    assert d["stems"]["a.wav"]["gain"] == {"gain_db": -3.1235}
    assert d["stems"]["a.wav"]["pan"] == {"pan": 0.0}
    assert d["reverb"]["decay_s"] == 1.2346
    assert d["master"] == st.MasterSettings().to_dict()
    assert MIX.to_dict()["roles"] == {"vocals.wav": "vocals"}


def test_mix_settings_round_trip_through_json():
    d = json.loads(json.dumps(MIX.to_dict()))
    assert st.MixSettings.from_dict(d) == MIX


def test_mix_settings_need_only_their_stems():
    m = st.MixSettings.from_dict({"stems": {"a.wav": {}, 7: {"pan": {"pan": 1}}}})
    assert m.stems == {"a.wav": StemChain(), "7": StemChain(pan=PanParams(1.0))}
    assert m.master == st.MasterSettings() and m.roles == {}
    assert m.reverb == st.MixSettings.from_dict({"stems": {"a.wav": {}}, "reverb": {}}).reverb


def test_mix_settings_of_roles_only_suggest_a_mix():
    m = st.MixSettings.from_dict({"roles": {"lead.wav": "vocals", 3: "bass"}})
    assert m.stems == {} and m.roles == {"lead.wav": "vocals", "3": "bass"}
    assert m.reverb == st.DEFAULT_REVERB


STEMS_NEEDED = "s.stems: expected a mapping of stem file names to their settings"


@pytest.mark.parametrize("data, message", [
    ("x", "s: expected a JSON object"),
    ({"stems": {"a": {}}, "tempo": 1, "bpm": 2},
     "s: unknown key 'bpm'; allowed: stems, reverb, master, roles"),
    ({"stems": {"a": {}}, 0: 1, "x": 2}, "s: unknown key 0; allowed: stems, reverb, master, roles"),
    ({"roles": ["vocals"]}, "s.roles: expected a mapping of stem file names to roles"),
    ({"roles": {"a.wav": 1}}, "s.roles: expected a mapping of stem file names to roles"),
    ({"roles": {"a.wav": "kazoo"}},
     f"s.roles a.wav=kazoo: unknown role 'kazoo'; valid roles: {', '.join(ROLES)}"),
    ({}, STEMS_NEEDED),
    ({"stems": {}}, STEMS_NEEDED),
    ({"stems": ["a.wav"]}, STEMS_NEEDED),
    ({"roles": {}}, STEMS_NEEDED),
    ({"roles": {"a.wav": "bass"}, "reverb": {}}, STEMS_NEEDED),
    ({"stems": {"a.wav": {"pan": {"pan": 2}}}}, "s.stems.a.wav.pan.pan=2 is out of range [-1, 1]"),
    ({"stems": {"a.wav": {}}, "reverb": {"wet_db": 1}},
     "s.reverb.wet_db=1 is out of range [-60, 0] dB"),
    ({"stems": {"a.wav": {}}, "master": {"gain_db": 99}},
     "s.master.gain_db: expected a number in [-70, 40], got 99"),
    ({"stems": {"a.wav": {}}, "master": []}, "s.master: expected a JSON object"),
])
def test_mix_settings_refused(data, message):
    assert refused(st.MixSettings.from_dict, data, where="s") == message


def test_mix_settings_default_where_is_settings():
    assert refused(st.MixSettings.from_dict, {}) == \
        "settings.stems: expected a mapping of stem file names to their settings"


# --- references ------------------------------------------------------------------------------


def _analysis() -> Analysis:
    n = 28
    return Analysis(sample_rate=44100, channels=2, duration_s=1.23456, integrated_lufs=-14.0,
                    loudness_range_lu=5.0, true_peak_dbtp=-1.0, sample_peak_dbfs=-1.2,
                    rms_dbfs=-18.0, crest_db=12.0, plr_db=13.0, width=0.5, correlation=0.8,
                    tonal_mid_db=(0.0,) * n, tonal_side_db=(-10.0,) * n, warnings=())


def test_reference_to_dict_keeps_full_precision_and_its_characters():
    features = _analysis()
    target = Target("spotify", -14.0, -1.0, "")
    ref = st.Reference("pop", "preset", features, target)
    assert ref.sources == () and ref.characters == ()
    d = ref.to_dict()
    assert d == {"name": "pop", "kind": "preset", "features": features.to_dict(digits=None)}
    assert d["features"]["duration_s"] == 1.23456
    warm = Character("warm", "warmer", tilt_db_per_oct=-0.5)
    d = st.Reference("pop", "preset", features, target, characters=(warm,)).to_dict()
    assert d["character"] == [warm.to_dict()]
    assert list(d) == ["name", "kind", "features", "character"]


# --- options ---------------------------------------------------------------------------------


def test_master_options_defaults():
    o = st.MasterOptions()
    assert o.reference == "pop" and o.method == st.MASTER_METHOD == "dsp"
    assert o.amounts == st.Amounts() and o.settings is None and o.target is None
    assert (o.refit_gain, o.refine_steps, o.refine_seconds) == (False, 0, 8.0)


def test_options_check_the_method():
    assert st.MasterOptions(method="network").method == "network"
    assert refused(st.MasterOptions, method="magic") == \
        "unknown method 'magic'; choose dsp, network"
    assert refused(st.MixOptions, method="DSP") == \
        "unknown method 'DSP'; choose dsp, network, authors"
    assert refused(st.MasterOptions, method="authors") == \
        "unknown method 'authors'; choose dsp, network"  # the author model mixes only
    st.check_method("dsp")
    st.check_method("network")
    assert refused(st.check_method, "") == "unknown method ''; choose dsp, network"


def test_options_make_paths_of_strings():
    o = st.MasterOptions(settings="a/b.json")
    assert o.settings == Path("a/b.json") and isinstance(o.settings, Path)
    p = Path("c.yaml")
    assert st.MixOptions(settings=p).settings is p
    out = st.OutputOptions(output="x/song.flac", report="r.html")
    assert out.output == Path("x/song.flac") and out.report == Path("r.html")
    assert isinstance(out.output, Path) and isinstance(out.report, Path)
    assert st.OutputOptions().output is None and st.OutputOptions().report is None


def test_output_options_take_the_format_from_the_name():
    assert st.OutputOptions().file_format == "wav"
    assert st.OutputOptions(output="song.flac").file_format == "flac"
    assert st.OutputOptions(output=Path("song.out"), file_format="flac").file_format == "flac"
    o = st.OutputOptions()
    assert (o.bit_depth, o.force, o.preview) == (24, False, False)
    assert refused(st.OutputOptions, output="song.mp3") == \
        "song.mp3: automix writes wav or flac, not mp3; name the output .wav or .flac"


def test_mix_options():
    o = st.MixOptions()
    assert o.method == st.MIX_METHOD == "authors"
    assert (o.refine_steps, o.keep_balance, o.roles) == (0, 0.0, {})
    assert st.MixOptions(keep_balance=1.0).keep_balance == 1.0
    assert st.MixOptions(keep_balance=0.0).keep_balance == 0.0
    assert refused(st.MixOptions, keep_balance=1.5) == "--keep-balance 1.5 is out of range [0, 1]"
    assert refused(st.MixOptions, keep_balance=-0.5) == \
        "--keep-balance -0.5 is out of range [0, 1]"
    roles = {"lead.wav": "vocals"}
    o = st.MixOptions(roles=roles)
    assert o.roles == roles and o.roles is not roles  # a copy: the caller's dict stays theirs
    assert refused(st.MixOptions, roles={"x": "kazoo"}).startswith(
        "--role x=kazoo: unknown role 'kazoo'; valid roles: vocals, drums")


def test_request_of_is_plain_json():
    options = st.MasterOptions(reference=("pop", "rock"), settings="s.json", ceiling_dbtp=-2.0,
                               amounts=st.Amounts(eq=0.5))
    request = st.request_of(options, st.OutputOptions(output="o.flac", bit_depth=16))
    assert request["reference"] == ["pop", "rock"]
    assert request["settings"] == "s.json"
    assert request["amounts"] == {"eq": 0.5, "dynamics": 1.0, "width": 1.0, "reverb": 1.0}
    assert request["ceiling_dbtp"] == -2.0 and request["method"] == "dsp"
    assert request["format"] == "flac" and request["bit_depth"] == 16
    assert json.loads(json.dumps(request)) == request


# --- settings files --------------------------------------------------------------------------


def test_write_document_json_is_indented_with_a_final_newline(tmp_path):
    path = tmp_path / "s.json"
    doc = {"b": 1, "a": [1.5, "é"]}
    assert st.write_document(path, doc) == path
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(doc, indent=2) + "\n"
    with pytest.raises(ValueError):
        st.write_document(tmp_path / "nan.json", {"x": math.nan})  # JSON has no NaN


@pytest.mark.parametrize("name", ["s.yaml", "s.YML"])
def test_write_document_yaml_keeps_order_and_text(tmp_path, name):
    path = tmp_path / name
    st.write_document(path, {"zeta": 1, "alpha": {"name": "café"}})
    text = path.read_text(encoding="utf-8")
    assert text == "zeta: 1\nalpha:\n  name: café\n"


@pytest.mark.parametrize("name", ["m.json", "m.yaml", "m.YML"])
def test_master_settings_file_round_trip(tmp_path, name):
    path = st.write_document(tmp_path / name, {"settings": MASTER.to_dict(), "other": 1})
    assert st.read_master_settings(path) == MASTER
    assert st.read_master_part(path) == (MASTER, False)


@pytest.mark.parametrize("name", ["mix.json", "mix.yaml"])
def test_mix_settings_file_round_trip(tmp_path, name):
    path = st.write_document(tmp_path / name, MIX.to_dict())
    assert st.read_mix_settings(path) == MIX
    assert st.read_master_part(path) == (MASTER, True)


def test_read_settings_document_takes_the_settings_part(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"settings": {"gain_db": 1}, "x": 2}), encoding="utf-8")
    assert st.read_settings_document(path) == {"gain_db": 1}
    path.write_text(json.dumps({"settings": 5, "x": 2}), encoding="utf-8")
    assert st.read_settings_document(path) == {"settings": 5, "x": 2}
    path.write_text("[1, 2]", encoding="utf-8")
    assert st.read_settings_document(path) == [1, 2]


def test_read_settings_document_errors(tmp_path):
    missing = tmp_path / "none.json"
    assert refused(st.read_settings_document, missing) == f"{missing}: no such settings file"
    assert refused(st.read_settings_document, tmp_path).startswith(f"{tmp_path}: cannot read (")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    message = refused(st.read_settings_document, latin)
    assert message.startswith(f"{latin}: cannot read (") and "utf-8" in message
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert refused(st.read_settings_document, bad) == \
        f"{bad}: not valid json (Expecting property name enclosed in double quotes: " \
        "line 1 column 2 (char 1))"
    bare = tmp_path / "bare"
    bare.write_text("nope", encoding="utf-8")
    assert refused(st.read_settings_document, bare).startswith(f"{bare}: not valid JSON (")
    yml = tmp_path / "bad.YAML"
    yml.write_text("a: [1\n", encoding="utf-8")
    message = refused(st.read_settings_document, yml)
    assert message.startswith(f"{yml}: not valid YAML (") and message.endswith(")")


def test_yaml_settings_are_read_as_yaml(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("gain_db: 2\nlimiter: {ceiling_dbtp: -3}\n", encoding="utf-8")
    assert st.read_master_settings(path) == st.MasterSettings(gain_db=2.0,
                                                              limiter=LimiterParams(-3.0))


def test_settings_files_name_themselves_in_errors(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"gain_db": 99}', encoding="utf-8")
    assert refused(st.read_master_settings, path) == \
        "m.json.gain_db: expected a number in [-70, 40], got 99"
    assert refused(st.read_master_part, path) == \
        "m.json.gain_db: expected a number in [-70, 40], got 99"
    assert refused(st.read_mix_settings, path) == \
        "m.json: unknown key 'gain_db'; allowed: stems, reverb, master, roles"
    path.write_text("[1]", encoding="utf-8")
    assert refused(st.read_master_part, path) == "m.json: expected a JSON object"


def test_read_master_part_of_a_mix_with_stems_only(tmp_path):
    path = st.write_document(tmp_path / "mix.json", {"stems": {"a.wav": {}}})
    assert st.read_master_part(path) == (st.MasterSettings(), True)


@pytest.mark.parametrize("doc, message", [
    ({"master": {}}, "x.json.stems: expected a mapping of stem file names to their settings"),
    ({"roles": {}, "gain_db": 1},
     "x.json: unknown key 'gain_db'; allowed: stems, reverb, master, roles"),
])
def test_read_master_part_reads_a_mix_by_its_keys(tmp_path, doc, message):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert refused(st.read_master_part, path) == message


def test_settings_files_are_utf8_whatever_the_locale(tmp_path):
    path = tmp_path / "mix.json"
    path.write_text('{"stems": {"café.wav": {}}}', encoding="utf-8")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # an ASCII locale
    try:
        stems = st.read_mix_settings(path).stems
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert list(stems) == ["café.wav"]


def test_a_parse_error_names_the_suffix_as_written(tmp_path):
    path = tmp_path / "doc.Xjs"
    path.write_text("{", encoding="utf-8")
    assert refused(st.read_settings_document, path).startswith(f"{path}: not valid Xjs (")


def test_read_master_part_of_roles_only_is_refused(tmp_path):
    path = tmp_path / "roles.json"
    path.write_text('{"roles": {"a.wav": "bass"}}', encoding="utf-8")
    assert st.read_mix_settings(path).roles == {"a.wav": "bass"}
    assert refused(st.read_master_part, path) == \
        f"{path}: holds stem roles only, no settings to render"
