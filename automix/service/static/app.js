// The audition page: submit a job, poll it, play loudness-matched previews with an A/B toggle,
// draw the suggestion, re-render from sliders. Talks only to the /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS = { input: "#7f7f7f", reference: "#1f77b4", result: "#d62728" };
const POLL_MS = 300;

// Sliders: [key, label, unit, min, max, step]. EQ gains and width edit the master chain's
// settings; the compression amount scales the suggested compressor toward neutral
// (amounts.dynamics); the reverb return level exists for mix jobs only (a master has no reverb).
const SLIDERS = [
  ["reverb.wet_db", "Reverb (mix)", "dB", -60, 0, 1],
  ["eq.low_shelf_gain_db", "Low shelf", "dB", -12, 12, 0.5],
  ["eq.peak1_gain_db", "Low-mid peak", "dB", -12, 12, 0.5],
  ["eq.peak2_gain_db", "Mid peak", "dB", -12, 12, 0.5],
  ["eq.peak3_gain_db", "Presence peak", "dB", -12, 12, 0.5],
  ["eq.high_shelf_gain_db", "High shelf", "dB", -12, 12, 0.5],
  ["dynamics", "Compression amount", "", 0, 1, 0.05],
  ["width.width_pct", "Width", "%", 50, 150, 1],
  ["target_lufs", "Loudness target", "LUFS", -23, -6, 0.5],
];

// --- A/B player: every buffer plays from one start time; switching only moves gains. --------
class ABPlayer {
  constructor() {
    this.ctx = null;
    this.buffers = {};
    this.urls = {};
    this.sources = {};
    this.gains = {};
    this.active = "result";
    this.playing = false;
    this.startedAt = 0;
    this.starts = 0; // how many times sources were (re)started: a toggle must not change it
  }

  context() {
    if (!this.ctx) this.ctx = new AudioContext();
    return this.ctx;
  }

  async load(urls) {
    const ctx = this.context();
    const decoded = await Promise.all(Object.entries(urls).map(async ([name, url]) => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${name} preview: HTTP ${response.status}`);
      return [name, await ctx.decodeAudioData(await response.arrayBuffer())];
    }));
    const resume = this.playing ? this.position() : null;
    this.stop();
    this.buffers = Object.fromEntries(decoded);
    this.urls = urls;
    if (!(this.active in this.buffers)) this.active = "result";
    if (resume !== null) this.play(resume);
  }

  position() {
    if (!this.playing) return 0;
    const length = this.buffers.result.duration;
    return (this.context().currentTime - this.startedAt) % length;
  }

  play(offset = 0) {
    const ctx = this.context();
    ctx.resume();
    const when = ctx.currentTime + 0.05;
    for (const [name, buffer] of Object.entries(this.buffers)) {
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.loop = true;
      const gain = ctx.createGain();
      gain.gain.value = name === this.active ? 1 : 0;
      source.connect(gain).connect(ctx.destination);
      source.start(when, offset % buffer.duration);
      this.sources[name] = source;
      this.gains[name] = gain;
    }
    this.startedAt = when - offset;
    this.playing = true;
    this.starts += 1;
  }

  stop() {
    for (const source of Object.values(this.sources)) source.stop();
    this.sources = {};
    this.gains = {};
    this.playing = false;
  }

  select(name) {
    if (!(name in this.buffers)) return;
    this.active = name;
    const now = this.context().currentTime;
    for (const [key, gain] of Object.entries(this.gains)) {
      gain.gain.cancelScheduledValues(now);
      gain.gain.setTargetAtTime(key === name ? 1 : 0, now, 0.003); // ~10 ms: no click
    }
  }

  toggle() {
    this.select(this.active === "input" ? "result" : "input");
  }
}

const player = new ABPlayer();
const state = { kind: "master", baseJob: null, baseSettings: null, job: null, renders: 0,
                reference: null };
window.automix = { player, state };

// --- API ------------------------------------------------------------------------------------
async function problemText(response) {
  try {
    const body = await response.json();
    return `${body.title}: ${body.detail}`;
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

async function submit(form) {
  const response = await fetch("/v1/jobs", { method: "POST", body: form });
  if (response.status !== 202) throw new Error(await problemText(response));
  return response.headers.get("Location");
}

async function waitFor(location, label) {
  for (;;) {
    const response = await fetch(location);
    if (!response.ok) throw new Error(await problemText(response));
    const job = await response.json();
    showStatus(`${label}: ${job.status} (${job.stage})`, job.progress);
    if (job.status === "done") return job;
    if (job.status === "failed") throw new Error(`${job.error.title}: ${job.error.detail}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function showStatus(text, progress) {
  $("status-text").textContent = text;
  $("progress").hidden = progress === null;
  if (progress !== null) $("progress").value = progress;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

// --- first job: upload, suggest, master -------------------------------------------------------
async function start(event) {
  event.preventDefault();
  showError(null);
  const form = new FormData();
  const stems = $("stems").files;
  state.kind = stems.length ? "mix" : "master";
  if (stems.length) {
    form.append("kind", "mix");
    for (const file of stems) form.append("stems", file, file.name);
  } else if ($("song").files.length) {
    form.append("file", $("song").files[0], $("song").files[0].name);
  } else {
    showError("choose a song (or stems) first");
    return;
  }
  if ($("reference-file").files.length) {
    const file = $("reference-file").files[0];
    form.append("reference_file", file, file.name);
    state.reference = null;
  } else {
    form.append("reference", $("reference").value);
    state.reference = $("reference").value;
  }
  if ($("target").value) form.append("target", $("target").value);
  if ($("character").value.trim()) form.append("character", $("character").value.trim());
  if (state.kind === "master" && $("chain").value.trim()) form.append("chain", $("chain").value.trim());
  $("submit").disabled = true;
  try {
    const job = await waitFor(await submit(form), "mastering");
    state.baseJob = job;
    state.baseSettings = job.result.settings;
    setSliders(job.result.settings);
    await show(job);
  } catch (error) {
    showError(error);
  } finally {
    $("submit").disabled = false;
  }
}

async function show(job) {
  $("result").hidden = false;
  const links = job.links;
  const urls = { input: links.previews.input, result: links.previews.result };
  if (links.previews.reference) urls.reference = links.previews.reference;
  await player.load(urls);
  $("hear-reference").hidden = !urls.reference;
  drawWaveform();
  drawTonal(job.result);
  drawMetrics(job.result);
  drawEq(job.result.eq_curve);
  settingsTable(job.result.settings_groups);
  stemTable(job.result.stem_table);
  $("download-master").href = links.master;
  $("download-settings").href = links.settings;
  $("open-report").href = links.report;
  showStatus(doneText(job), null);
  state.job = job; // the job now shown
}

// "done: song.wav at -14.0 LUFS, -1.2 dBTP (target: spotify, -14 LUFS)"; a target named by
// its loudness ("-12 LUFS") is not said twice.
function doneText(job) {
  const target = job.result.target;
  const output = job.result.measurements.output;
  const loudness = `${target.integrated_lufs} LUFS`;
  const aim = target.name === loudness ? loudness : `${target.name}, ${loudness}`;
  return `done: ${job.input_name} at ${output.integrated_lufs.toFixed(1)} LUFS, ` +
    `${output.true_peak_dbtp.toFixed(1)} dBTP (target: ${aim})`;
}

// --- sliders and re-rendering ---------------------------------------------------------------
function buildSliders() {
  for (const [key, label, unit, min, max, step] of SLIDERS) {
    const wrap = document.createElement("label");
    wrap.innerHTML = `${label} <input type="range" min="${min}" max="${max}" step="${step}" ` +
      `data-key="${key}" id="slider-${key.replace(/\./g, "-")}"><output></output>`;
    const input = wrap.querySelector("input");
    const out = wrap.querySelector("output");
    input.addEventListener("input", () => { out.textContent = `${input.value} ${unit}`; });
    input.addEventListener("change", () => rerender());
    $("sliders").appendChild(wrap);
  }
}

// A mix's settings hold the master's under "master" and the shared reverb under "reverb".
const masterOf = (settings) => (state.kind === "mix" ? settings.master : settings);

function setSliders(settings) {
  for (const input of $("sliders").querySelectorAll("input")) {
    const key = input.dataset.key;
    const isReverb = key.startsWith("reverb.");
    input.parentElement.hidden = isReverb && state.kind !== "mix";
    if (input.parentElement.hidden) continue;
    const value = key === "dynamics" ? 1
      : key === "target_lufs" ? masterOf(settings).target_lufs
      : isReverb ? settings.reverb.wet_db
      : key.split(".").reduce((obj, k) => obj[k], masterOf(settings).chain);
    input.value = value;
    input.dispatchEvent(new Event("input"));
  }
}

function editedSettings() {
  const settings = JSON.parse(JSON.stringify(state.baseSettings));
  const values = {};
  for (const input of $("sliders").querySelectorAll("input")) {
    if (!input.parentElement.hidden) values[input.dataset.key] = Number(input.value);
  }
  for (const [key, value] of Object.entries(values)) {
    const [group, name] = key.split(".");
    if (group === "reverb") settings.reverb.wet_db = value;
    else if (name) masterOf(settings).chain[group][name] = value;
  }
  return { settings, dynamics: values.dynamics, targetLufs: values.target_lufs };
}

async function rerender() {
  if (!state.baseJob) return;
  const { settings, dynamics, targetLufs } = editedSettings();
  const form = new FormData();
  form.append("kind", state.kind);
  form.append("input_job", state.baseJob.id);
  if (state.reference) form.append("reference", state.reference);
  if ($("target").value) form.append("target", $("target").value);
  if ($("character").value.trim()) form.append("character", $("character").value.trim());
  form.append("settings", JSON.stringify(settings));
  form.append("amounts", `dynamics=${dynamics}`);
  form.append("target_lufs", String(targetLufs));
  const ticket = ++state.renders; // only the newest render is shown
  showError(null);
  try {
    const job = await waitFor(await submit(form), "re-rendering");
    if (ticket === state.renders) await show(job);
  } catch (error) {
    if (ticket === state.renders) showError(error);
  }
}

// --- plots ----------------------------------------------------------------------------------
function axes(ctx, canvas, xs, ys, logX) {
  const pad = { left: 42, right: 10, top: 10, bottom: 24 };
  const [x0, x1] = logX ? [Math.log10(xs[0]), Math.log10(xs[1])] : xs;
  const w = canvas.width - pad.left - pad.right;
  const h = canvas.height - pad.top - pad.bottom;
  const px = (x) => pad.left + (((logX ? Math.log10(x) : x) - x0) / (x1 - x0)) * w;
  const py = (y) => pad.top + (1 - (y - ys[0]) / (ys[1] - ys[0])) * h;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#ddd";
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  for (let y = Math.ceil(ys[0] / 10) * 10; y <= ys[1]; y += 10) {
    ctx.beginPath(); ctx.moveTo(pad.left, py(y)); ctx.lineTo(pad.left + w, py(y)); ctx.stroke();
    ctx.fillText(String(y), 4, py(y) + 4);
  }
  if (logX) {
    for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
      ctx.beginPath(); ctx.moveTo(px(f), pad.top); ctx.lineTo(px(f), pad.top + h); ctx.stroke();
      ctx.fillText(f >= 1000 ? `${f / 1000}k` : String(f), px(f) - 8, canvas.height - 8);
    }
  }
  return { px, py };
}

function drawTonal(result) {
  const canvas = $("tonal-plot");
  const ctx = canvas.getContext("2d");
  const curves = { input: result.measurements.input.bands, reference:
                   result.reference.features.bands, result: result.measurements.output.bands };
  const centers = curves.input.centers_hz;
  const values = Object.values(curves).flatMap((b) => b.mid_db).filter((v) => v !== null);
  const ys = [Math.floor(Math.min(...values) / 10) * 10, Math.ceil(Math.max(...values) / 10) * 10];
  const { px, py } = axes(ctx, canvas, [centers[0], centers[centers.length - 1]], ys, true);
  for (const [name, bands] of Object.entries(curves)) {
    ctx.strokeStyle = COLOURS[name];
    ctx.lineWidth = name === "input" ? 1.5 : 2.5;
    ctx.beginPath();
    let pen = false;
    bands.mid_db.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(px(centers[i]), py(v)); else ctx.moveTo(px(centers[i]), py(v));
      pen = true;
    });
    ctx.stroke();
  }
  ctx.lineWidth = 1;
  Object.keys(curves).forEach((name, i) => {
    ctx.fillStyle = COLOURS[name];
    ctx.fillText(name, canvas.width - 80, 20 + 14 * i);
  });
}

function drawMetrics(result) {
  const canvas = $("metrics-plot");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sources = { input: result.measurements.input, reference: result.reference.features,
                    result: result.measurements.output };
  const metrics = [["integrated_lufs", "LUFS", -40, 0], ["plr_db", "PLR dB", 0, 25],
                   ["width", "width", 0, 1]];
  const rowH = canvas.height / metrics.length;
  ctx.font = "11px sans-serif";
  metrics.forEach(([key, label, lo, hi], row) => {
    ctx.fillStyle = "#333";
    ctx.fillText(label, 4, row * rowH + 14);
    Object.entries(sources).forEach(([name, feats], i) => {
      const v = feats[key] ?? lo;
      const frac = Math.max(0.02, Math.min(1, (v - lo) / (hi - lo)));
      ctx.fillStyle = COLOURS[name];
      ctx.fillRect(70, row * rowH + 6 + i * 18, frac * (canvas.width - 130), 14);
      ctx.fillStyle = "#333";
      ctx.fillText(Number(v).toFixed(2), canvas.width - 55, row * rowH + 17 + i * 18);
    });
  });
}

function drawWaveform() {
  const canvas = $("waveform");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const rows = [["input", 0], ["result", canvas.height / 2]];
  for (const [name, top] of rows) {
    const data = player.buffers[name].getChannelData(0);
    const step = Math.max(1, Math.floor(data.length / canvas.width));
    ctx.fillStyle = COLOURS[name];
    for (let x = 0; x < canvas.width; x++) {
      let peak = 0;
      for (let i = x * step; i < Math.min(data.length, (x + 1) * step); i++) {
        peak = Math.max(peak, Math.abs(data[i]));
      }
      const h = peak * (canvas.height / 2 - 4);
      ctx.fillRect(x, top + canvas.height / 4 - h / 2, 1, Math.max(1, h));
    }
  }
}

// Settings grouped by module, each value with its unit (as the worker's settings_groups).
function settingsTable(groups) {
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  $("settings-table").innerHTML = (groups || []).map(([module, rows]) =>
    `<h3>${esc(module)}</h3><table data-module="${esc(module)}">` +
    rows.map(([label, value]) => `<tr><td>${esc(label)}</td><td>${esc(value)}</td></tr>`)
      .join("") + "</table>").join("");
}

// A mix's stems, a row each (as the worker's stem_table); hidden for a master.
const STEM_COLUMNS = ["stem", "role", "gain dB", "pan", "EQ", "compressor", "send"];
function stemTable(rows) {
  const esc = (t) => String(t).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const table = $("stem-table");
  table.hidden = !(rows && rows.length);
  table.innerHTML = table.hidden ? "" :
    "<tr>" + STEM_COLUMNS.map((h) => `<th>${h}</th>`).join("") + "</tr>" +
    rows.map((r) => "<tr>" + r.map((c) => `<td>${esc(c)}</td>`).join("") + "</tr>").join("");
}

function drawEq(curve) {
  if (!curve) return;
  const canvas = $("eq-plot");
  const ctx = canvas.getContext("2d");
  const top = Math.max(3, Math.ceil(Math.max(...curve.gain_db.map(Math.abs)) / 3) * 3);
  const freqs = curve.freqs_hz;
  const { px, py } = axes(ctx, canvas, [freqs[0], freqs[freqs.length - 1]], [-top, top], true);
  ctx.strokeStyle = COLOURS.result;
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  curve.gain_db.forEach((v, i) => (i ? ctx.lineTo(px(freqs[i]), py(v))
                                      : ctx.moveTo(px(freqs[i]), py(v))));
  ctx.stroke();
  ctx.lineWidth = 1;
}

// --- wiring ---------------------------------------------------------------------------------
async function init() {
  buildSliders();
  const response = await fetch("/v1/presets");
  const presets = await response.json();
  for (const g of presets.genres) $("reference").add(new Option(`${g.name}: ${g.description}`, g.name));
  $("reference").value = "pop";
  for (const t of presets.targets) {
    $("target").add(new Option(`${t.name} (${t.integrated_lufs} LUFS)`, t.name));
  }
  $("stems-label").hidden = !presets.mix_available;
  for (const name of presets.plugins || []) $("plugins").append(new Option(name, name));
  $("chain-label").hidden = !(presets.plugins || []).length;
  $("job-form").addEventListener("submit", start);
  $("play").addEventListener("click", () => {
    if (player.playing) { player.stop(); $("play").textContent = "Play"; }
    else { player.play(0); $("play").textContent = "Stop"; }
  });
  const updateAB = () => {
    $("ab-state").textContent = player.active;
    $("ab").setAttribute("aria-pressed", String(player.active === "input"));
  };
  $("ab").addEventListener("click", () => { player.toggle(); updateAB(); });
  $("hear-reference").addEventListener("click", () => { player.select("reference"); updateAB(); });
  document.addEventListener("keydown", (event) => {
    if (event.code === "Space" && player.playing && event.target.tagName !== "INPUT") {
      event.preventDefault();
      player.toggle();
      updateAB();
    }
  });
  $("render").addEventListener("click", () => rerender());
  document.body.dataset.ready = "true";
}

init().catch(showError);
