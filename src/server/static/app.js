// The page of `ous serve`: upload or pick a sample, follow the job, then show the video with the
// face box, the emotion timeline (SVG drawn here), and the current window's details. No build
// step, no library, nothing from outside the package.
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const pct = (v) => `${(100 * v).toFixed(1)}%`;
// result: the job's answer; view: whose answer is shown (the result itself, or one of result.persons).
const state = { model: null, result: null, view: null, videoUrl: null, window: -1 };

/** A colour per person: dark enough for 3:1 contrast (WCAG) on the page's white, and apart from each other. */
const PERSON_COLOURS = ['#c62828', '#1565c0', '#6a1b9a', '#2e7d32', '#ad4e00', '#00838f', '#ad1457', '#4e342e'];
const personColour = (id) => PERSON_COLOURS[id % PERSON_COLOURS.length];

/** A window that saw no face: grey, never an emotion's colour. */
const NO_FACE = '#b0b0b0';

/** A colour per class index (classes come from the run; none are hard-coded here). */
const colour = (i, n) => `hsl(${Math.round((360 * i) / Math.max(1, n))}, 65%, 45%)`;

async function getJson(url, opts) {
  const r = await fetch(url, opts);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok)
    throw Object.assign(new Error(body.error || `HTTP ${r.status}`), {
      status: r.status,
      retryAfter: r.headers.get('Retry-After'),
    });
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
    $('model').textContent =
      `${m.config.model} run ${m.run}: ${m.classes.length} classes (${m.classes.join(', ')}), ` +
      `${m.encoder.frames} frames per window, CLIP ${m.encoder.clipHash.slice(0, 10)}`;
  } catch (e) {
    $('model').textContent = `the model is not available: ${e.message}`;
  }
  // A server started with --camera-sessions 0 takes none: no button that can only fail.
  const health = await getJson('/api/health').catch(() => null);
  if (health?.camera.limit === 0) $('camera-controls').hidden = true;
  const samples = await getJson('/api/samples').catch(() => []);
  for (const [i, s] of samples.entries()) {
    const b = document.createElement('button');
    b.textContent = `sample ${i + 1}`; // what a sample shows is for the model to say
    b.dataset.sample = s.name.replace(/\.mp4$/, '');
    b.addEventListener('click', () =>
      start(
        `/api/predict?sample=${encodeURIComponent(b.dataset.sample)}${everyone() && `&${everyone()}`}`,
        null,
        s.url,
      ),
    );
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
  const v = $('video');
  v.addEventListener('timeupdate', () => showTime(v.currentTime));
  // The crops need a painted frame. At loadeddata a canvas copy may still be blank, and a seek to the
  // time it is at is skipped by newer Chromium (Debian 13's): seek to a time it is not at (the first
  // tracked face's, or 1 ms), and draw again on each of seeked, canplay and the next presented frame.
  v.addEventListener('loadeddata', () => {
    const first = state.view?.faces?.[0]?.time ?? 0;
    v.currentTime = first !== v.currentTime ? first : v.currentTime + 0.001;
    v.requestVideoFrameCallback?.(() => showTime(v.currentTime));
  });
  for (const e of ['seeked', 'canplay']) v.addEventListener(e, () => showTime(v.currentTime));
  v.addEventListener('play', () => ($('play').textContent = 'pause'));
  v.addEventListener('pause', () => ($('play').textContent = 'play'));
  $('play').addEventListener('click', () => (v.paused ? v.play() : v.pause()));
  $('timeline').addEventListener('click', seekFromChart);
  $('camera-start').addEventListener('click', startCamera);
  $('camera-stop').addEventListener('click', stopCamera);
  // A closed tab ends its camera session at once (the server also ends one left idle).
  addEventListener('pagehide', () => {
    if (cam.session) fetch(`/api/live/${cam.session.id}`, { method: 'DELETE', keepalive: true }).catch(() => {});
  });
  resumeAfterReload();
}

/** A job this tab started before a reload: follow it (its result, without the video) or cancel it. */
async function resumeAfterReload() {
  const saved = JSON.parse(sessionStorage.getItem('ous-job') ?? 'null');
  if (!saved) return;
  const j = await getJson(`/api/jobs/${saved.id}`).catch(() => null);
  if (!j || (j.status !== 'queued' && j.status !== 'running')) return sessionStorage.removeItem('ous-job');
  $('resume').hidden = false;
  $('resume-follow').onclick = () => (($('resume').hidden = true), follow(saved.id, saved.videoUrl));
  $('resume-cancel').onclick = async () => {
    $('resume').hidden = true;
    sessionStorage.removeItem('ous-job');
    await fetch(`/api/jobs/${saved.id}`, { method: 'DELETE' }).catch(() => {});
    status('the job from before the reload is cancelled', 0);
  };
}

/** The query that asks for every person, when the box is ticked ('' otherwise). */
const everyone = () => ($('all-persons').checked ? 'persons=all' : '');

function upload(file) {
  const body = new FormData();
  body.append('video', file, file.name);
  start(`/api/predict${everyone() && `?${everyone()}`}`, body, URL.createObjectURL(file));
}

/** Forget the last result: nothing of it may stay on screen while the next video is worked on. */
function clearResult() {
  if (cam.stream) stopCamera();
  $('camera').hidden = true;
  state.result = null;
  state.view = null;
  state.window = -1;
  $('result').hidden = true;
  $('persons').hidden = true;
  $('person-list').replaceChildren();
  $('personboxes').replaceChildren();
  $('live').hidden = true;
  $('live-timeline').replaceChildren();
  $('timeline').replaceChildren();
  $('emotion').textContent = '';
  $('face-missing').hidden = true;
  $('noface-answer').hidden = true;
  $('noface-windows').hidden = true;
  for (const id of ['probabilities', 'polarity', 'scene-effect', 'window-range', 'window-emotion'])
    $(id).replaceChildren();
  for (const id of ['face-crop', 'scene-crop']) {
    const c = $(id);
    c.getContext('2d').clearRect(0, 0, c.width, c.height);
  }
  const v = $('video');
  v.removeAttribute('src');
  v.load();
  if (state.videoUrl?.startsWith('blob:')) URL.revokeObjectURL(state.videoUrl);
  state.videoUrl = null;
  delete document.body.dataset.emotion;
  document.body.classList.remove('nofaces');
}

/** Each stage's share of the whole job, for the overall bar (the stage's own percentage is shown as is). */
const STAGES = { decode: [0, 0.05], detect: [0.05, 0.35], encode: [0.4, 0.5], classify: [0.9, 0.1] };

async function start(url, body, videoUrl) {
  // The same sample asked again while its job is being sent or runs (Enter, then Space on the same
  // button) is one job, not two.
  if (!body && state.sending === url) return;
  state.sending = body ? null : url;
  clearResult();
  state.videoUrl = videoUrl;
  const run = (state.run = (state.run ?? 0) + 1); // a newer start makes this one stop polling
  document.body.dataset.state = 'working';
  status('uploading…', 0);
  let job;
  try {
    job = await getJson(url, { method: 'POST', body });
  } catch (e) {
    if (run !== state.run) return;
    state.sending = null;
    document.body.dataset.state = 'error';
    return status(e.status === 503 && e.retryAfter ? `${e.message} (in ${e.retryAfter} s)` : e.message, 0, true);
  }
  // A reload can come back to it (a blob: video does not survive one; a sample's URL does).
  sessionStorage.setItem('ous-job', JSON.stringify({ id: job.id, videoUrl: body ? null : videoUrl }));
  await follow(job.id, videoUrl, run);
}

/** A rough time left from the share done so far and the time it took ('' until it can tell). */
function eta(fraction, since) {
  const s = (Date.now() - since) / 1000;
  if (!(fraction > 0.02) || s < 3) return '';
  const left = (s * (1 - fraction)) / fraction;
  return left < 90 ? `, about ${Math.ceil(left)} s left` : `, about ${Math.round(left / 60)} min left`;
}

/** Polls a job until it ends; the overall bar never goes back (stages report their own fractions). */
async function follow(id, videoUrl, run = (state.run = (state.run ?? 0) + 1)) {
  document.body.dataset.state = 'working';
  let shown = 0;
  let since;
  for (;;) {
    if (run !== state.run) return;
    const j = await getJson(`/api/jobs/${id}`).catch((e) => ({ status: 'failed', error: e.message }));
    if (run !== state.run) return;
    if (j.status === 'queued') status(`waiting in the queue: position ${j.position}`, 0);
    else if (j.status === 'running') {
      since ??= Date.now();
      const [base, share] = STAGES[j.stage] ?? [0, 0];
      shown = Math.max(shown, base + share * (j.progress ?? 0));
      const windows = j.windows?.length ? ` (window ${j.windows.length} of ${j.windowsTotal ?? '?'})` : '';
      status(`${j.stage ?? 'starting'}: ${Math.round(100 * (j.progress ?? 0))}%${windows}${eta(shown, since)}`, shown);
      showLive(j);
    } else {
      state.sending = null;
      sessionStorage.removeItem('ous-job');
      $('live').hidden = true;
      if (j.status === 'failed') {
        document.body.dataset.state = 'error';
        return status(j.error, 0, true);
      }
      status('done', 1);
      return show(j.result, videoUrl);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The timeline of the windows classified so far, on the whole video's time axis. */
function showLive(j) {
  if (!j.windows?.length || !state.model) return;
  $('live').hidden = false;
  // With every person asked for, the windows of all persons arrive interleaved: show the first person's.
  const first = Math.min(...j.windows.map((w) => w.person ?? 0));
  drawTimeline(
    $('live-timeline'),
    state.model.classes,
    j.windows.filter((w) => (w.person ?? 0) === first),
    j.duration ?? 0,
  );
}

function show(result, videoUrl) {
  state.result = result;
  state.window = -1;
  const v = $('video');
  v.src = videoUrl;
  state.videoUrl = videoUrl;
  $('overlay').setAttribute('viewBox', `0 0 ${result.width} ${result.height}`);
  $('player').style.aspectRatio = `${result.width} / ${result.height}`;
  $('face-missing').hidden = !result.faceMissing;
  // An answer from windows that saw no face is not about a face: marked, not shown as certain as the rest.
  const notAFace = Boolean(result.faceMissing || result.summary?.noFaceAnswer);
  $('noface-answer').hidden = !notAFace || result.faceMissing;
  document.body.classList.toggle('nofaces', notAFace);
  showNoFaceWindows($('noface-windows'), result.summary?.noFaceWindows ?? 0, notAFace);
  $('result').hidden = false;
  const persons = result.persons ?? [];
  $('persons').hidden = !persons.length;
  $('person-list').replaceChildren(
    ...persons.map((p) => {
      const b = document.createElement('button');
      b.dataset.person = p.id;
      b.style.color = personColour(p.id);
      b.textContent =
        `person ${p.id}${p.main ? ' (main)' : ''}: ${p.emotion} ${pct(p.probabilities[p.emotion])}, ` +
        `${p.first.toFixed(1)}–${p.last.toFixed(1)} s`;
      b.addEventListener('click', () => select(p));
      return b;
    }),
  );
  select(persons.find((p) => p.main) ?? null);
  document.body.dataset.state = 'done';
  document.body.dataset.emotion = result.emotion;
}

/** "N windows without a face left out", when some were (and the answer is not over them all). */
function showNoFaceWindows(p, n, notAFace) {
  p.hidden = !n || notAFace;
  p.textContent = `${n} window${n === 1 ? '' : 's'} without a face left out of the answer`;
}

/** Shows one person's answer and timeline (null: the one-person answer). */
function select(person) {
  const r = state.result;
  state.view = person ?? r;
  state.window = -1;
  $('whose').textContent = person ? `Person ${person.id}, over their windows` : 'Whole video';
  $('emotion').textContent = state.view.emotion;
  for (const b of $('person-list').children) b.classList.toggle('selected', Number(b.dataset.person) === person?.id);
  state.x = drawTimeline($('timeline'), Object.keys(r.probabilities), state.view.windows, r.duration);
  showTime($('video').currentTime || 0);
}

/** The nearest of a track's frames to t, or undefined when t is outside it (by more than a step). */
function nearestFace(faces, t) {
  if (!faces.length) return undefined;
  let f = faces[0];
  for (const g of faces) if (Math.abs(g.time - t) < Math.abs(f.time - t)) f = g;
  const step = faces.length > 1 ? (faces[faces.length - 1].time - faces[0].time) / (faces.length - 1) : Infinity;
  return Math.abs(f.time - t) <= step ? f : undefined;
}

/** Every person's box at t, in their colour with their id; a click selects them. */
function drawPersonBoxes(t) {
  const g = $('personboxes');
  g.replaceChildren();
  for (const p of state.result.persons ?? []) {
    const f = nearestFace(p.faces, t);
    if (!f) continue;
    const [x, y, w, h] = f.box;
    const rect = el(
      'rect',
      {
        x,
        y,
        width: w,
        height: h,
        stroke: personColour(p.id),
        'data-person': p.id,
        class: state.view === p ? 'selected' : '',
      },
      g,
    );
    rect.addEventListener('click', () => select(p));
    el('text', { x: x + 4, y: y + 16, fill: personColour(p.id) }, g).textContent = String(p.id);
  }
}

/** The window whose centre is nearest to t. */
function windowAt(t) {
  const ws = state.view.windows;
  let best = 0;
  for (let i = 1; i < ws.length; i++)
    if (Math.abs((ws[i].start + ws[i].end) / 2 - t) < Math.abs((ws[best].start + ws[best].end) / 2 - t)) best = i;
  return best;
}

function showTime(t) {
  const r = state.result;
  if (!r) return;
  const view = state.view;
  $('clock').textContent = `${t.toFixed(1)} s`;
  // The face box of the nearest tracked frame: the one-person answer's, or each person's.
  let f = view.faces[0];
  for (const g of view.faces) if (Math.abs(g.time - t) < Math.abs(f.time - t)) f = g;
  const [x, y, w, h] = f.box;
  const box = $('facebox');
  box.style.display = r.persons ? 'none' : '';
  for (const [k, val] of Object.entries({ x, y, width: w, height: h })) box.setAttribute(k, val);
  box.style.stroke = f.detected ? '#0f0' : '#fc0';
  if (r.persons) drawPersonBoxes(t);
  const cursor = $('timeline').querySelector('.cursor');
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
  const w = state.view.windows[i];
  const names = Object.keys(w.probabilities);
  $('window-range').textContent = `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`;
  $('window-emotion').textContent = w.faceFrames === 0 ? `no face (${w.emotion} from the crop)` : w.emotion;
  bars($('probabilities'), w.probabilities, names);
  if (w.polarity) bars($('polarity'), w.polarity, Object.keys(w.polarity));
  else $('polarity').textContent = 'no scene (face-only model)';
  const e = w.sceneEffect;
  $('scene-effect').textContent = e
    ? `The scene moved ${pct(e.totalVariation)} of the probability; without it: ` +
      `${e.emotionWithoutScene}${e.changedDecision ? ' (the scene changed the decision)' : ''}.`
    : '';
  for (const el of document.querySelectorAll('#timeline .win'))
    el.classList.toggle('current', Number(el.dataset.i) === i);
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

// The timeline's layout (viewBox units, one per CSS pixel: the viewBox is as wide as the drawing, so
// its 10-unit text is 10 px on a phone too): the legend in its own strip above the band, the plot
// below it, the time axis under the plot; nothing overlaps the lines.
const TL = { W: 640, H: 210, left: 34, right: 14, legend: 16, band: 14, bottom: 22 };

/** Draws windows on `svg` over [0, duration] s; returns the time-to-x function. */
function drawTimeline(svg, names, windows, duration, T = state.model?.encoder?.frames ?? '?') {
  svg.replaceChildren();
  const { H, left, right, band, bottom } = TL;
  const W = (TL.W = Math.max(280, Math.round(svg.clientWidth || 640)));
  const perRow = Math.max(1, Math.floor((W - left - right) / 98));
  const legendRows = Math.ceil(names.length / perRow);
  const top = 4 + TL.legend * legendRows;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const end = Math.max(duration || 0, ...windows.map((w) => w.end)) || 1;
  const x = (t) => left + ((W - left - right) * t) / end;
  const plotTop = top + band + 6;
  const y = (p) => plotTop + (H - plotTop - bottom) * (1 - p);
  // Legend: as many names a row as fit, above everything else.
  names.forEach((n, c) => {
    const lx = left + (c % perRow) * 98;
    const ly = 4 + Math.floor(c / perRow) * TL.legend + 10;
    el('rect', { class: 'legend', x: lx, y: ly - 8, width: 8, height: 8, fill: colour(c, names.length) }, svg);
    el('text', { class: 'legend', x: lx + 11, y: ly, 'font-size': 10, fill: '#333' }, svg).textContent = n;
  });
  // Axes: probability 0..1, seconds (the first label starts at the axis, the last ends at it).
  el('rect', { class: 'plot', x: left, y: y(1), width: W - left - right, height: y(0) - y(1), fill: 'none' }, svg);
  for (const p of [0, 0.5, 1]) {
    el('line', { x1: left, x2: W - right, y1: y(p), y2: y(p), stroke: '#ddd' }, svg);
    el(
      'text',
      { class: 'axis', x: left - 4, y: y(p) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#666' },
      svg,
    ).textContent = p.toFixed(1);
  }
  const ticks = Math.min(10, Math.ceil(end));
  for (let k = 0; k <= ticks; k++) {
    const t = (end * k) / ticks;
    const anchor = k === 0 ? 'start' : k === ticks ? 'end' : 'middle';
    el(
      'text',
      { class: 'axis', x: x(t), y: H - 6, 'text-anchor': anchor, 'font-size': 10, fill: '#666' },
      svg,
    ).textContent = `${t.toFixed(t < 10 ? 1 : 0)} s`;
  }
  // The band: each window's top class; a window that saw no face is grey, with no emotion's colour.
  windows.forEach((w, i) => {
    const noFace = w.faceFrames === 0;
    const rect = el(
      'rect',
      {
        class: noFace ? 'win noface' : 'win',
        'data-i': i,
        x: x(w.start),
        y: top,
        width: Math.max(1, x(w.end) - x(w.start)),
        height: band,
        fill: noFace ? NO_FACE : colour(names.indexOf(w.emotion), names.length),
        opacity: 0.8,
      },
      svg,
    );
    const faces = w.faceFrames === undefined ? '' : ` (face in ${w.faceFrames}/${T} frames)`;
    el('title', {}, rect).textContent =
      `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${noFace ? 'no face' : w.emotion}${faces}`;
  });
  // One line per class through the window centres (a dot for a single window).
  names.forEach((n, c) => {
    const pts = windows.map((w) => `${x((w.start + w.end) / 2).toFixed(1)},${y(w.probabilities[n]).toFixed(1)}`);
    if (pts.length > 1)
      el(
        'polyline',
        {
          class: 'line',
          'data-class': n,
          points: pts.join(' '),
          fill: 'none',
          stroke: colour(c, names.length),
          'stroke-width': 2,
        },
        svg,
      );
    else
      el(
        'circle',
        {
          class: 'line',
          'data-class': n,
          cx: pts[0].split(',')[0],
          cy: pts[0].split(',')[1],
          r: 4,
          fill: colour(c, names.length),
        },
        svg,
      );
  });
  const cursor = el('g', { class: 'cursor' }, svg);
  el('line', { x1: 0, x2: 0, y1: top, y2: H - bottom, stroke: '#222', 'stroke-width': 1.5 }, cursor);
  svg.dataset.windows = windows.length;
  state.end = end;
  return x;
}

function seekFromChart(ev) {
  const r = state.result;
  if (!r) return;
  const svg = $('timeline');
  const box = svg.getBoundingClientRect();
  const vx = ((ev.clientX - box.left) / box.width) * TL.W;
  const end = Math.max(r.duration || 0, ...state.view.windows.map((w) => w.end)) || 1;
  const t = Math.max(0, Math.min(end, ((vx - TL.left) / (TL.W - TL.left - TL.right)) * end));
  const v = $('video');
  if (v.readyState >= 1) v.currentTime = t;
  showTime(t);
}

// The camera mode: frames from getUserMedia, sampled at the rate the session asks for (T per window),
// sent as small batches of JPEGs (POST /api/live/{id}/frames, the format in src/server/live.ts); each
// answer carries the windows classified since, which grow the live timeline and move the face box.
const cam = { session: null, stream: null, grab: null, send: null, batch: [], windows: [], after: -1, busy: false };

function camStatus(text, error = false) {
  $('camera-status').textContent = text;
  $('camera-status').classList.toggle('error', error);
}

async function startCamera() {
  if (cam.stream) return;
  clearResult();
  $('camera').hidden = false;
  $('camera-summary').textContent = '';
  $('camera-timeline').replaceChildren();
  camStatus('asking for the camera…');
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    return camStatus(`no camera: ${e.message}`, true);
  }
  const v = $('camera-video');
  v.srcObject = cam.stream;
  await v.play().catch(() => {});
  $('camera-start').hidden = true;
  $('camera-stop').hidden = false;
  camStatus('loading the model…');
  let s;
  try {
    const headers = { 'Content-Type': 'application/json' };
    s = await getJson('/api/live', { method: 'POST', headers, body: JSON.stringify(cameraSettings()) });
  } catch (e) {
    endCamera();
    return camStatus(e.status === 503 && e.retryAfter ? `${e.message} (in ${e.retryAfter} s)` : e.message, true);
  }
  const persons = !!everyone();
  const fresh = { frames: s.frames, windows: [], after: -1, batch: [], t0: performance.now() };
  Object.assign(cam, { session: { ...s, persons }, ...fresh });
  document.body.dataset.state = 'camera';
  camStatus('live: the first window comes once its frames and the look-ahead have been seen');
  cam.grab = setInterval(grabFrame, 1000 / s.fps);
  cam.send = setInterval(sendBatch, 250);
}

/** The session's timeline from the page's own address (?window=&stride=&lookahead=, seconds), if given. */
function cameraSettings() {
  const q = new URLSearchParams(location.search);
  const out = {};
  for (const k of ['window', 'stride', 'lookahead']) if (q.has(k)) out[k] = Number(q.get(k));
  if (everyone()) out.persons = 'all'; // the "every person" box: a window for each face in view
  return out;
}

/** One frame of the camera as a JPEG, stamped with the seconds since the first. */
function grabFrame() {
  const v = $('camera-video');
  if (v.readyState < 2 || !v.videoWidth) return;
  const k = Math.min(1, 640 / Math.max(v.videoWidth, v.videoHeight));
  const c = (cam.canvas ??= document.createElement('canvas'));
  [c.width, c.height] = [Math.round(v.videoWidth * k), Math.round(v.videoHeight * k)];
  c.getContext('2d').drawImage(v, 0, 0, c.width, c.height);
  const t = (performance.now() - cam.t0) / 1000;
  c.toBlob((b) => b && cam.session && cam.batch.push({ t, b }), 'image/jpeg', 0.8);
}

/** The frames grabbed since the last batch: [u32 length][f64 t][JPEG] each, big-endian. */
async function batchBody(frames) {
  const parts = [];
  for (const f of frames) {
    const head = new DataView(new ArrayBuffer(12));
    head.setUint32(0, f.b.size);
    head.setFloat64(4, f.t);
    parts.push(head.buffer, f.b);
  }
  return new Blob(parts, { type: 'application/octet-stream' });
}

async function sendBatch() {
  if (cam.busy || !cam.session || !cam.batch.length) return;
  cam.busy = true;
  const frames = cam.batch.splice(0, cam.session.maxBatch);
  try {
    const u = await getJson(`/api/live/${cam.session.id}/frames?after=${cam.after}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: await batchBody(frames),
    });
    liveUpdate(u);
  } catch (e) {
    camStatus(e.message, true);
    if (e.status === 404) endCamera();
  } finally {
    cam.busy = false;
  }
}

/**
 * New windows: the timeline grows (the main person's, with every person), the boxes move to the
 * latest windows' faces, the emotion is the latest.
 */
function liveUpdate(u) {
  for (const w of u.windows) if (w.seq > cam.after) cam.windows.push(w);
  cam.after = cam.windows.length ? cam.windows[cam.windows.length - 1].seq : cam.after;
  const last = cam.windows.findLast((w) => w.main) ?? cam.windows[cam.windows.length - 1];
  if (last) {
    const names = Object.keys(last.probabilities);
    const mains = cam.windows.filter((w) => w.main);
    drawTimeline($('camera-timeline'), names, mains, last.end, cam.session?.frames ?? cam.frames);
    // the latest span's windows: one per person in view (one in all with a single person)
    const now = cam.windows.filter((w) => w.start === cam.windows[cam.windows.length - 1].start);
    $('camera-emotion').textContent = now
      .map((w) => `${now.length > 1 ? `person ${w.person}: ` : ''}${w.faceFrames === 0 ? 'no face' : w.emotion}`)
      .join(' · ');
    drawCameraBoxes(now, u.frameSize);
    const lat = `${(last.latency / 1000).toFixed(1)} s after its last frame`;
    camStatus(`live: ${cam.windows.length} windows, the latest ${lat}; ${u.dropped} frames dropped`);
  }
  if (u.status === 'ended') {
    if (u.error) camStatus(u.error, true);
    showCameraSummary(u);
    endCamera();
  }
}

/**
 * The latest windows' face boxes over the camera picture, in the pixels of the frames sent: green for
 * one person, each person's colour (and id) when every person is followed.
 */
function drawCameraBoxes(ws, size) {
  const c = $('camera-overlay');
  if (!size) return;
  [c.width, c.height] = size;
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const main = ws.find((w) => w.main) ?? ws[0];
  c.dataset.box = main.faceBox.join(',');
  c.dataset.faceFrames = main.faceFrames;
  c.dataset.boxes = JSON.stringify(ws.map((w) => ({ person: w.person, box: w.faceBox })));
  g.lineWidth = Math.max(2, c.width / 200);
  const px = Math.round(Math.max(12, c.width / 30)); // the ids' text size
  g.font = `${px}px sans-serif`;
  for (const w of ws) {
    if (w.faceFrames === 0) continue; // no face seen: no box to show
    const [x, y, bw, bh] = w.faceBox;
    const colour = cam.session?.persons ? personColour(w.person) : '#0f0';
    g.strokeStyle = g.fillStyle = colour;
    g.strokeRect(x, y, bw, bh);
    if (cam.session?.persons) g.fillText(String(w.person), x + 4, y + 4 + px);
  }
}

function showCameraSummary(u) {
  const s = u.summary;
  if (!s) return;
  const notAFace = s.faceMissing || s.noFaceAnswer;
  const left = s.noFaceWindows && !notAFace ? `; ${s.noFaceWindows} windows without a face left out` : '';
  $('camera-summary').textContent =
    `Over the session: ${s.emotion} ${pct(s.probabilities[s.emotion])}` +
    `${notAFace ? ' (not about a face: no window saw one)' : ''}, ${s.windowCount} windows${left}, ` +
    `${s.dropped} frames dropped, latency p95 ${(s.latency.p95 / 1000).toFixed(1)} s.` +
    (s.persons?.length
      ? ` Each person: ${s.persons.map((p) => `${p.id} ${p.emotion} ${pct(p.probabilities[p.emotion])}`).join(', ')}.`
      : '');
  $('camera-summary').classList.toggle('warning', notAFace);
}

async function stopCamera() {
  const s = cam.session;
  clearInterval(cam.grab);
  if (!s) return endCamera();
  camStatus('finishing the last windows…');
  while (cam.busy) await new Promise((r) => setTimeout(r, 50));
  await sendBatch();
  clearInterval(cam.send);
  try {
    liveUpdate(await getJson(`/api/live/${s.id}?after=${cam.after}`, { method: 'DELETE' }));
    camStatus('the camera is off');
  } catch (e) {
    camStatus(e.message, true);
  }
  endCamera();
}

/** The camera off and the session forgotten (what it showed stays on the page). */
function endCamera() {
  clearInterval(cam.grab);
  clearInterval(cam.send);
  for (const t of cam.stream?.getTracks() ?? []) t.stop();
  Object.assign(cam, { session: null, stream: null, batch: [] });
  $('camera-start').hidden = false;
  $('camera-stop').hidden = true;
  if (document.body.dataset.state === 'camera') document.body.dataset.state = 'camera-done';
}

init();
