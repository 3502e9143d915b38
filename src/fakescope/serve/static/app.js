// fakescope web page: upload a file, poll its job, show verdict, P(fake), timeline and Grad-CAM evidence.
// Plain JavaScript, no build step, no external requests. Server data is inserted with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f"];
let pollTimer = null;

function show(id, on) { $(id).hidden = !on; }

function showError(message) {
  $("error").textContent = message;
  show("error", true);
  show("progress-box", false);
}

function setStage(text, percent) {
  $("stage").textContent = text;
  const bar = $("progress");
  if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
}

function reset() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  show("error", false);
  show("result", false);
  show("timeline-box", false);
  show("tracks-box", false);
  show("heatmaps-box", false);
}

function upload(file) {
  reset();
  $("filename").textContent = file.name;
  show("progress-box", true);
  setStage("Uploading", 0);
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/analyze");
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setStage("Uploading", Math.round((100 * e.loaded) / e.total));
  };
  xhr.upload.onload = () => setStage("Analysing", null);
  xhr.onerror = () => showError("Upload failed: the server could not be reached.");
  xhr.onload = () => {
    const body = xhr.response || {};
    if (xhr.status === 200) render(body);
    else if (xhr.status === 202) { setStage("Queued", null); poll(body.url); }
    else showError(`Error ${xhr.status}: ${body.detail || xhr.statusText}`);
  };
  xhr.send(form);
}

async function poll(url) {
  let job;
  try {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    job = await r.json();
    if (!r.ok) { showError(`Error ${r.status}: ${job.detail || r.statusText}`); return; }
  } catch (err) {
    pollTimer = setTimeout(() => poll(url), 2000);
    return;
  }
  if (job.status === "done") { render(job); return; }
  if (job.status === "failed") { showError(`Analysis failed: ${job.error || "unknown reason"}`); return; }
  if (job.status === "queued") setStage("Queued (waiting for the worker)", null);
  else setStage("Analysing", job.progress > 0 ? Math.round(100 * job.progress) : null);
  pollTimer = setTimeout(() => poll(url), 1000);
}

function fmt(p) { return p === null || p === undefined ? "n/a" : Number(p).toFixed(3); }

function render(job) {
  show("progress-box", false);
  const r = job.result || {};
  const verdict = r.verdict || job.status;
  const v = $("verdict");
  v.textContent = verdict;
  v.className = "verdict " + verdict.replace(/[^a-z-]/g, "");
  $("fake-prob").textContent = fmt(r.fake_prob);
  const parts = [
    `model ${r.model}`, `threshold ${fmt(r.threshold)}`, `${r.n_frames} frame(s)`, `${r.n_faces} face(s)`,
  ];
  if (job.kind === "video") parts.push(`aggregation ${r.aggregation}`);
  if (r.timings && r.timings.total !== undefined) parts.push(`${Number(r.timings.total).toFixed(2)} s`);
  $("details").textContent = parts.join(" · ");
  $("raw").textContent = JSON.stringify(job, null, 2);
  show("result", true);
  drawTimeline(job.kind, r.frames || [], r.threshold);
  drawTracks(r.tracks || []);
  drawHeatmaps(job.heatmap_urls || []);
}

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawTimeline(kind, frames, threshold) {
  const box = $("timeline");
  box.replaceChildren();
  if (kind !== "video" || frames.length === 0) return;
  const W = 800, H = 240, L = 48, R = 16, T = 12, B = 36;
  const tMax = Math.max(...frames.map((f) => f.timestamp), 0.001);
  const x = (t) => L + ((W - L - R) * t) / tMax;
  const y = (p) => T + (H - T - B) * (1 - p);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "P(fake) over time" });
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(p), y2: y(p), stroke: "#eee" }));
    svg.appendChild(el("text", { x: L - 6, y: y(p) + 4, "text-anchor": "end", "font-size": 11 }, p.toFixed(2)));
  }
  for (let i = 0; i <= 5; i++) {
    const t = (tMax * i) / 5;
    svg.appendChild(el("text", { x: x(t), y: H - B + 16, "text-anchor": "middle", "font-size": 11 }, t.toFixed(1)));
  }
  svg.appendChild(el("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11 }, "time (s)"));
  svg.appendChild(el("line", {
    x1: L, x2: W - R, y1: y(threshold), y2: y(threshold), stroke: "#888", "stroke-dasharray": "5 4",
  }));
  const tracks = [...new Set(frames.map((f) => f.track_id))].sort((a, b) => a - b);
  tracks.forEach((tid, i) => {
    const pts = frames.filter((f) => f.track_id === tid).sort((a, b) => a.timestamp - b.timestamp);
    const color = COLORS[i % COLORS.length];
    svg.appendChild(el("polyline", {
      points: pts.map((f) => `${x(f.timestamp)},${y(f.fake_prob)}`).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, class: "track-line",
    }));
    for (const f of pts) {
      const c = el("circle", { cx: x(f.timestamp), cy: y(f.fake_prob), r: 3, fill: color });
      c.appendChild(el("title", {}, `person ${tid}, ${f.timestamp.toFixed(2)} s: P(fake) ${fmt(f.fake_prob)}`));
      svg.appendChild(c);
    }
    svg.appendChild(el("text", { x: W - R - 4, y: T + 14 + 14 * i, "text-anchor": "end", "font-size": 11, fill: color },
      `person ${tid}`));
  });
  box.appendChild(svg);
  show("timeline-box", true);
}

function drawTracks(tracks) {
  const body = $("tracks").querySelector("tbody");
  body.replaceChildren();
  for (const t of tracks) {
    const tr = document.createElement("tr");
    for (const v of [t.track_id, t.n_faces, fmt(t.fake_prob), t.used ? "yes" : "no (short track)"]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  show("tracks-box", tracks.length > 1);
}

function drawHeatmaps(urls) {
  const box = $("heatmaps");
  box.replaceChildren();
  for (const url of urls.slice(0, 64)) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = url;
    img.alt = "Grad-CAM overlay";
    img.loading = "lazy";
    const cap = document.createElement("figcaption");
    cap.textContent = decodeURIComponent(url.split("/").pop()).replace(/\.png$/, "");
    fig.append(img, cap);
    box.appendChild(fig);
  }
  show("heatmaps-box", urls.length > 0);
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
  fetch("/healthz").then((r) => r.json()).then((h) => {
    if (h.limits) {
      $("limits").textContent = `Up to ${h.limits.max_upload_mb} MB; videos up to ${h.limits.max_video_seconds} s. ` +
        `Model: ${h.model}.`;
    }
  }).catch(() => {});
}

setup();
