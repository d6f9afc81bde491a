"use strict";
// The demo page: one canvas holds the image, the prompt being drawn and SAM-2's mask; every answer fills one
// column per variant. Coordinates sent to the server are pixels of the original image.

const DISPLAY = 512; // the image's longest side on screen, in CSS pixels
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const state = {
  meta: null, image: null, scale: 1, tool: "box",
  box: null, drag: null, points: [], labels: [], paint: null, painting: null, painted: false,
  samMask: null, seq: 0, shown: 0, maxBytes: 0,
};

function message(text) { $("message").textContent = text || ""; }

async function api(path, options) {
  const r = await fetch(path, options);
  let body;
  try { body = await r.json(); } catch (e) { body = { error: `HTTP ${r.status}` }; }
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function toImage(ev) {
  const r = canvas.getBoundingClientRect(); // its border box: the image starts inside the border
  const w = state.meta.width, h = state.meta.height;
  const x = Math.round(((ev.clientX - r.left - canvas.clientLeft) * w) / canvas.clientWidth);
  const y = Math.round(((ev.clientY - r.top - canvas.clientTop) * h) / canvas.clientHeight);
  return [Math.min(Math.max(x, 0), w), Math.min(Math.max(y, 0), h)];
}

function corners(a, b) {
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
}

function resetPrompt() {
  state.box = null; state.drag = null; state.points = []; state.labels = [];
  state.painted = false; state.samMask = null;
  if (state.meta) {
    state.paint = document.createElement("canvas");
    state.paint.width = state.meta.width;
    state.paint.height = state.meta.height;
  }
}

function currentPrompt() {
  if (state.tool === "box" && state.box) return { kind: "box", box: state.box };
  if (state.tool === "points" && state.points.length) {
    return { kind: "points", points: state.points, labels: state.labels };
  }
  if (state.tool === "mask" && state.painted) return { kind: "mask", mask: state.paint.toDataURL("image/png") };
  return null;
}

function redraw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.image) return;
  const s = state.scale;
  ctx.imageSmoothingEnabled = s < 1;
  ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  if (state.samMask) ctx.drawImage(state.samMask, 0, 0, canvas.width, canvas.height);
  if (state.tool === "mask" && state.painted) {
    ctx.globalAlpha = 0.6;
    ctx.drawImage(state.paint, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
  if (state.tool === "box" && state.box) {
    const [x1, y1, x2, y2] = state.box;
    ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 2;
    ctx.strokeRect(x1 * s, y1 * s, (x2 - x1) * s, (y2 - y1) * s);
  }
  if (state.tool === "points") {
    state.points.forEach(([x, y], i) => {
      ctx.fillStyle = state.labels[i] ? "#19c24a" : "#e0262b";
      ctx.beginPath(); ctx.arc(x * s, y * s, 5, 0, 2 * Math.PI); ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
    });
  }
}

function paintTo(p) {
  // a stroke from the last position: mouse moves arrive as jumps, a fast stroke would leave dots
  const pctx = state.paint.getContext("2d");
  const from = state.painting || p;
  pctx.strokeStyle = "rgb(0, 200, 255)";
  pctx.lineWidth = Math.max(1, (2 * $("brush").value) / state.scale);
  pctx.lineCap = "round";
  pctx.beginPath(); pctx.moveTo(from[0], from[1]); pctx.lineTo(p[0], p[1]); pctx.stroke();
  state.painting = p;
  state.painted = true;
  redraw();
}

canvas.addEventListener("mousedown", (ev) => {
  if (!state.image) return;
  ev.preventDefault();
  const p = toImage(ev);
  if (state.tool === "box") { state.drag = p; state.box = corners(p, p); redraw(); }
  if (state.tool === "points") {
    state.points.push(p); state.labels.push(ev.shiftKey ? 0 : 1); redraw(); send();
  }
  if (state.tool === "mask") { state.painting = null; paintTo(p); }
});
canvas.addEventListener("mousemove", (ev) => {
  if (state.drag) { state.box = corners(state.drag, toImage(ev)); redraw(); }
  if (state.painting) paintTo(toImage(ev));
});
window.addEventListener("mouseup", (ev) => {
  if (state.drag) { state.box = corners(state.drag, toImage(ev)); state.drag = null; redraw(); send(); }
  if (state.painting) { state.painting = null; send(); }
});

document.querySelectorAll("input[name=tool]").forEach((el) => el.addEventListener("change", () => {
  state.tool = el.value; state.samMask = null; redraw(); if (currentPrompt()) send();
}));
$("clear").addEventListener("click", () => { resetPrompt(); message(""); redraw(); });

async function send() {
  const prompt = currentPrompt();
  if (!prompt) return;
  const seq = ++state.seq;
  try {
    const answer = await api("/api/query", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: state.meta.id, prompt }),
    });
    if (seq === state.seq) render(answer); // an answer to an older prompt is dropped
  } catch (e) {
    if (seq === state.seq) message(e.message);
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  });
  children.forEach((c) => node.append(c));
  return node;
}

function render(answer) {
  message("");
  const p = answer.prompt;
  const where = p.kind === "box" ? `box [${p.box.join(", ")}]` : `${p.kind}, region [${p.region.join(", ")}]`;
  $("prompt").textContent = `${where} · query: ${answer.text.replace("\n", " ")}`;
  $("prompt").dataset.prompt = JSON.stringify(p);
  const withMask = answer.variants.find((v) => v.mask);
  state.samMask = null;
  if (withMask) {
    const img = new Image();
    img.onload = () => { state.samMask = img; redraw(); };
    img.src = withMask.mask;
  }
  const results = $("results");
  results.replaceChildren(...answer.variants.map((v) => el("div", { class: "variant", "data-label": v.label },
    el("h3", {}, v.label),
    el("div", { class: "mask-info" }, v.mask ? `SAM-2 mask: ${v.mask_pixels} px` : "no SAM-2 stream in this variant"),
    el("div", {}, "top-10 captions"),
    el("ol", { class: "captions" }, ...v.captions.map((c) => el("li",
      { class: c.gt ? "gt" : "", "data-index": c.index, "data-score": c.score, title: c.gt ? "ground truth" : "" },
      el("span", { class: "score" }, c.score.toFixed(4)), el("span", { class: "text" }, c.text)))),
    el("div", {}, "top-10 images"),
    el("div", { class: "images" }, ...v.images.map((m) => {
      const fig = el("figure", { class: m.same ? "same" : "", "data-id": m.id, "data-score": m.score, title: m.name },
        el("img", { src: `/api/image/${m.id}`, alt: m.name }), el("figcaption", {}, m.score.toFixed(3)));
      fig.addEventListener("click", () => { $("image-select").value = m.id; selectById(m.id); });
      return fig;
    })))));
  state.shown += 1;
  $("status").dataset.answers = String(state.shown);
}

const metas = new Map();

function selectImage(meta) {
  state.meta = meta;
  resetPrompt();
  $("results").replaceChildren();
  $("prompt").textContent = "";
  message("");
  const w = meta.width, h = meta.height;
  let s = DISPLAY / Math.max(w, h);
  if (s >= 1) s = Math.floor(s); // whole CSS pixels per image pixel: a drawn corner lands on a pixel edge
  state.scale = s;
  canvas.width = Math.round(w * s); canvas.height = Math.round(h * s);
  canvas.style.width = `${canvas.width}px`; canvas.style.height = `${canvas.height}px`;
  const img = new Image();
  img.onload = () => { state.image = img; redraw(); $("status").dataset.image = meta.id; };
  img.onerror = () => message(`${meta.name}: cannot load the image`);
  state.image = null;
  $("status").dataset.image = "";
  img.src = `/api/image/${meta.id}`;
  $("queries").replaceChildren(...(meta.queries.length ? [el("div", {}, "eval queries on this image (click: use the true box)")] : []),
    ...meta.queries.map((q) => {
      const b = el("button", { type: "button" }, `[${q.box.join(", ")}] ${q.caption}`);
      b.addEventListener("click", () => {
        document.querySelector("input[name=tool][value=box]").checked = true;
        state.tool = "box"; state.box = q.box.slice(); redraw(); send();
      });
      return b;
    }));
}

function selectById(id) { selectImage(metas.get(id)); }

$("image-select").addEventListener("change", (ev) => selectById(ev.target.value));

$("upload").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  if (state.maxBytes && file.size > state.maxBytes) {
    message(`upload: ${file.size} bytes, more than the ${state.maxBytes} allowed`);
    return;
  }
  try {
    const meta = await api("/api/upload", { method: "POST", body: file });
    meta.name = `upload: ${file.name}`;
    metas.set(meta.id, meta);
    if (![...$("image-select").options].some((o) => o.value === meta.id)) {
      $("image-select").append(el("option", { value: meta.id }, meta.name));
    }
    $("image-select").value = meta.id;
    selectImage(meta);
  } catch (e) {
    message(e.message);
  }
});

async function start() {
  try {
    const info = await api("/api/info");
    state.maxBytes = info.max_bytes;
    const names = info.variants.map((v) => v.label).join(", ");
    const g = info.gallery;
    $("info").textContent = `${names} · gallery: ${g.captions} captions, ${g.images} images (${g.source})`;
    const images = await api("/api/images");
    images.forEach((m) => { metas.set(m.id, m); $("image-select").append(el("option", { value: m.id }, m.name)); });
    if (images.length) selectImage(images[0]);
  } catch (e) {
    message(e.message);
  }
}

start();
