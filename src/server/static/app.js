// The page of `ous serve`: upload or pick a sample, follow the job, then show the video with the
// face box, the emotion timeline (SVG drawn here), and the current window's details. No build
// step, no library, nothing from outside the package.
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const pct = (v) => `${(100 * v).toFixed(1)}%`;
const state = { model: null, result: null, videoUrl: null, window: -1 };

/** A colour per class index (classes come from the run; none are hard-coded here). */
const colour = (i, n) => `hsl(${Math.round((360 * i) / Math.max(1, n))}, 65%, 45%)`;

async function getJson(url, opts) {
  const r = await fetch(url, opts);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw Object.assign(new Error(body.error || `HTTP ${r.status}`), { status: r.status, retryAfter: r.headers.get('Retry-After') });
  return body;
}

function status(text, fraction, error = false) {
  $('status-text').textContent = text;
  $('status-bar').style.width = `${Math.round(100 * (fraction ?? 0))}%`;
  $('status').classList.toggle('error', error);
}

async function init() {
  try {
    state.model = await getJson('/api/model');
    const m = state.model;
    $('model').textContent = `${m.config.model} run ${m.run.split("/").pop()}: ${m.classes.length} classes (${m.classes.join(', ')}), ${m.encoder.frames} frames per window, CLIP ${m.encoder.clipHash.slice(0, 10)}`;
  } catch (e) {
    $('model').textContent = `the model is not available: ${e.message}`;
  }
  const samples = await getJson('/api/samples').catch(() => []);
  for (const [i, s] of samples.entries()) {
    const b = document.createElement('button');
    b.textContent = `sample ${i + 1}`; // what a sample shows is for the model to say
    b.dataset.sample = s.name.replace(/\.mp4$/, '');
    b.addEventListener('click', () => start(`/api/predict?sample=${encodeURIComponent(b.dataset.sample)}`, null, s.url));
    $('samples').append(b);
  }
  const drop = $('drop');
  $('file').addEventListener('change', () => $('file').files[0] && upload($('file').files[0]));
  drop.addEventListener('dragover', (e) => (e.preventDefault(), drop.classList.add('over')));
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  $('video').addEventListener('timeupdate', () => showTime($('video').currentTime));
  $('video').addEventListener('seeked', () => showTime($('video').currentTime));
  $('timeline').addEventListener('click', seekFromChart);
}

function upload(file) {
  const body = new FormData();
  body.append('video', file, file.name);
  start('/api/predict', body, URL.createObjectURL(file));
}

async function start(url, body, videoUrl) {
  $('result').hidden = true;
  document.body.dataset.state = 'working';
  status('uploading…', 0);
  let job;
  try {
    job = await getJson(url, { method: 'POST', body });
  } catch (e) {
    document.body.dataset.state = 'error';
    return status(e.status === 503 ? `${e.message} (in ${e.retryAfter} s)` : e.message, 0, true);
  }
  for (;;) {
    const j = await getJson(`/api/jobs/${job.id}`).catch((e) => ({ status: 'failed', error: e.message }));
    if (j.status === 'queued') status(`waiting in the queue: position ${j.position}`, 0);
    else if (j.status === 'running') status(`${j.stage ?? 'starting'}: ${Math.round(100 * j.progress)}%`, ({ decode: 0, detect: 0.1, encode: 0.4, classify: 0.9 }[j.stage] ?? 0) + 0.3 * j.progress);
    else if (j.status === 'failed') {
      document.body.dataset.state = 'error';
      return status(j.error, 0, true);
    } else {
      status('done', 1);
      return show(j.result, videoUrl);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

function show(result, videoUrl) {
  state.result = result;
  state.window = -1;
  const v = $('video');
  v.src = videoUrl;
  $('overlay').setAttribute('viewBox', `0 0 ${result.width} ${result.height}`);
  $('player').style.aspectRatio = `${result.width} / ${result.height}`;
  $('emotion').textContent = result.emotion;
  $('face-missing').hidden = !result.faceMissing;
  $('result').hidden = false;
  drawTimeline(result);
  showTime(0);
  document.body.dataset.state = 'done';
  document.body.dataset.emotion = result.emotion;
}

/** The window whose centre is nearest to t. */
function windowAt(t) {
  const ws = state.result.windows;
  let best = 0;
  for (let i = 1; i < ws.length; i++) if (Math.abs((ws[i].start + ws[i].end) / 2 - t) < Math.abs((ws[best].start + ws[best].end) / 2 - t)) best = i;
  return best;
}

function showTime(t) {
  const r = state.result;
  if (!r) return;
  // The face box of the nearest tracked frame.
  let f = r.faces[0];
  for (const g of r.faces) if (Math.abs(g.time - t) < Math.abs(f.time - t)) f = g;
  const [x, y, w, h] = f.box;
  const box = $('facebox');
  for (const [k, val] of Object.entries({ x, y, width: w, height: h })) box.setAttribute(k, val);
  box.style.stroke = f.detected ? '#0f0' : '#fc0';
  const cursor = $('cursor');
  if (cursor) cursor.setAttribute('transform', `translate(${state.x(t)},0)`);
  const i = windowAt(t);
  if (i !== state.window) showWindow(i);
  drawCrops(f.box);
}

function bars(el, probs, names) {
  el.replaceChildren();
  const topName = Object.entries(probs).sort((a, b) => b[1] - a[1])[0][0];
  names.forEach((n, i) => {
    const row = document.createElement('div');
    row.className = `row${n === topName ? ' top' : ''}`;
    row.innerHTML = `<span></span><div class="bar"><div></div></div><span></span>`;
    row.children[0].textContent = n;
    row.children[1].firstChild.style.width = pct(probs[n]);
    row.children[1].firstChild.style.background = colour(i, names.length);
    row.children[2].textContent = pct(probs[n]);
    el.append(row);
  });
}

function showWindow(i) {
  state.window = i;
  const w = state.result.windows[i];
  const names = Object.keys(w.probabilities);
  $('window-range').textContent = `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`;
  $('window-emotion').textContent = w.emotion;
  bars($('probabilities'), w.probabilities, names);
  if (w.polarity) bars($('polarity'), w.polarity, Object.keys(w.polarity));
  else $('polarity').textContent = 'no scene (face-only model)';
  const e = w.sceneEffect;
  $('scene-effect').textContent = e
    ? `The scene moved ${pct(e.totalVariation)} of the probability; without it: ${e.emotionWithoutScene}${e.changedDecision ? ' (the scene changed the decision)' : ''}.`
    : '';
  for (const el of document.querySelectorAll('#timeline .win')) el.classList.toggle('current', Number(el.dataset.i) === i);
}

/** The face crop and the masked scene, drawn from the playing frame with the box the model used. */
function drawCrops(box) {
  const v = $('video');
  if (v.readyState < 2) return;
  const [x, y, w, h] = box;
  const fc = $('face-crop').getContext('2d');
  fc.fillStyle = '#000';
  fc.fillRect(0, 0, 112, 112);
  fc.drawImage(v, x, y, w, h, 0, 0, 112, 112);
  const sc = $('scene-crop');
  const g = sc.getContext('2d');
  const k = sc.width / state.result.width;
  sc.height = Math.round(state.result.height * k);
  g.drawImage(v, 0, 0, sc.width, sc.height);
  g.fillStyle = 'rgb(123,117,104)'; // CLIP's mean colour, as the model's scene stream
  g.fillRect(x * k, y * k, w * k, h * k);
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

function drawTimeline(r) {
  const svg = $('timeline');
  svg.replaceChildren();
  const W = 640, H = 190, left = 34, right = 8, top = 8, band = 14, bottom = 22;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const names = Object.keys(r.probabilities);
  const end = Math.max(r.duration || 0, ...r.windows.map((w) => w.end)) || 1;
  const x = (t) => left + ((W - left - right) * t) / end;
  const y = (p) => top + band + 4 + (H - top - band - 4 - bottom) * (1 - p);
  state.x = x;
  // Axes: probability 0..1, seconds.
  for (const p of [0, 0.5, 1]) {
    el('line', { x1: left, x2: W - right, y1: y(p), y2: y(p), stroke: '#ddd' }, svg);
    el('text', { x: left - 4, y: y(p) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#666' }, svg).textContent = p.toFixed(1);
  }
  const ticks = Math.min(10, Math.ceil(end));
  for (let k = 0; k <= ticks; k++) {
    const t = (end * k) / ticks;
    el('text', { x: x(t), y: H - 6, 'text-anchor': 'middle', 'font-size': 10, fill: '#666' }, svg).textContent = `${t.toFixed(t < 10 ? 1 : 0)} s`;
  }
  // The band: each window's top class.
  r.windows.forEach((w, i) => {
    const rect = el('rect', { class: 'win', 'data-i': i, x: x(w.start), y: top, width: Math.max(1, x(w.end) - x(w.start)), height: band, fill: colour(names.indexOf(w.emotion), names.length), opacity: 0.8 }, svg);
    el('title', {}, rect).textContent = `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${w.emotion}`;
  });
  // One line per class through the window centres (a dot for a single window).
  names.forEach((n, c) => {
    const pts = r.windows.map((w) => `${x((w.start + w.end) / 2).toFixed(1)},${y(w.probabilities[n]).toFixed(1)}`);
    if (pts.length > 1) el('polyline', { class: 'line', 'data-class': n, points: pts.join(' '), fill: 'none', stroke: colour(c, names.length), 'stroke-width': 2 }, svg);
    else el('circle', { class: 'line', 'data-class': n, cx: pts[0].split(',')[0], cy: pts[0].split(',')[1], r: 4, fill: colour(c, names.length) }, svg);
  });
  // Legend.
  names.forEach((n, c) => {
    const lx = left + 6 + (c % 4) * 90;
    const ly = top + band + 14 + Math.floor(c / 4) * 12;
    el('rect', { x: lx, y: ly - 8, width: 8, height: 8, fill: colour(c, names.length) }, svg);
    el('text', { x: lx + 11, y: ly, 'font-size': 10, fill: '#333' }, svg).textContent = n;
  });
  const cursor = el('g', { id: 'cursor' }, svg);
  el('line', { x1: 0, x2: 0, y1: top, y2: H - bottom, stroke: '#222', 'stroke-width': 1.5 }, cursor);
  svg.dataset.windows = r.windows.length;
}

function seekFromChart(ev) {
  const r = state.result;
  if (!r) return;
  const svg = $('timeline');
  const box = svg.getBoundingClientRect();
  const vx = ((ev.clientX - box.left) / box.width) * 640;
  const end = Math.max(r.duration || 0, ...r.windows.map((w) => w.end)) || 1;
  const t = Math.max(0, Math.min(end, ((vx - 34) / (640 - 34 - 8)) * end));
  const v = $('video');
  if (v.readyState >= 1) v.currentTime = t;
  showTime(t);
}

init();
