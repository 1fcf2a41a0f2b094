// app.mjs - the explorer page: asks the server's /v1/explore endpoints for
// one analysis of the text and draws the views from it (docs/explorer.md).
// The state lives in the URL (logic.mjs: stateToQuery / queryToState).
import {
  BUCKET_COLOURS, argsortDesc, decodeF32, hookSpec, logSoftmax, parseThresholds,
  processLogits, queryToState, rankBucket, sequentialColour, softmax, stateToQuery, textOn, visibleToken,
} from './logic.mjs';
import { barChart, cellAt, clear, heatmap, rampLegend, scatter, svgEl } from './charts.mjs';

const $ = (id) => document.getElementById(id);
let state = queryToState(location.search);
let model = null;       // /v1/explore/model
let vocab = null;       // token texts by id (/v1/explore/vocab), loaded in the background
let analysis = null;    // /v1/explore/analyze of state.text
let analysedText = null;
const cache = { logits: new Map(), lens: new Map(), lensShown: null, attention: new Map(), order: new Map(), raw: new Map() };
// timings the page measures, for docs/explorer.md and the tests
window.lscTimings = { analysis: [], redraw: [] };

// ---- requests: a loading indicator after 200 ms, errors shown in the page ----
// The server's API key, when it has one: kept for this tab only (sessionStorage).
const KEY_STORE = 'logitscope-api-key';
let inFlight = 0, loadingTimer = null;
async function api(path, body) {
  inFlight++;
  if (!loadingTimer) loadingTimer = setTimeout(() => { $('loading').hidden = false; }, 200);
  try {
    let r;
    try {
      const headers = {}, key = sessionStorage.getItem(KEY_STORE);
      if (key) headers.Authorization = `Bearer ${key}`;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      r = await fetch(path, body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) });
    } catch (e) {
      throw new Error('the server is not answering (is `logitscope serve` still running?)');
    }
    const data = await r.json().catch(() => null);
    if (r.status === 401) {
      $('key-form').hidden = false;
      $('api-key').focus();
      throw new Error(sessionStorage.getItem(KEY_STORE)
        ? 'the server refused this API key: enter the one `logitscope serve --api-key` was given'
        : 'this server needs an API key (`logitscope serve --api-key`): enter it below');
    }
    if (!r.ok) throw new Error(data?.error?.message || `the server answered ${r.status}`);
    return data;
  } finally {
    if (--inFlight === 0) {
      clearTimeout(loadingTimer);
      loadingTimer = null;
      $('loading').hidden = true;
    }
  }
}

function showError(e) {
  $('error').textContent = String(e.message || e);
  $('error').hidden = false;
}
function clearError() { $('error').hidden = true; }

function saveState() {
  const q = stateToQuery(state);
  history.replaceState(null, '', q ? `?${q}` : location.pathname);
}

function tokenText(id) {
  if (vocab) return vocab[id] ?? '';
  for (const t of analysis?.tokens ?? []) {
    if (t.id === id) return t.text;
    for (const c of t.next.top) if (c.id === id) return c.text;
  }
  return `#${id}`;
}

const tooltip = $('tooltip');
function showTip(ev, text) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 260)}px`;
  tooltip.style.top = `${ev.clientY + 14}px`;
}
function hideTip() { tooltip.hidden = true; }

// ---- the analysis and the surprisal text ----
async function analyze() {
  const text = $('text').value;
  state.text = text;
  saveState();
  clearError();
  if (!text) return;
  const t0 = performance.now();
  try {
    analysis = await api('/v1/explore/analyze', { text, top_k: 20 });
  } catch (e) {
    analysis = null;
    analysedText = null;
    clear($('tokens'));
    $('totals').textContent = '';
    showError(e);
    return;
  }
  analysedText = text;
  cache.logits.clear();
  cache.order.clear();
  cache.raw.clear();
  cache.attention.clear();
  cache.lens.clear();
  cache.lensShown = null;
  lensPos0 = null;
  if (state.pos >= analysis.n_tokens) state.pos = -1;
  renderTokens();
  const ms = performance.now() - t0;
  window.lscTimings.analysis.push(ms);
  $('status').textContent = `${analysis.n_tokens} tokens analysed in ${ms.toFixed(0)} ms`;
  await renderView();
}

function colourFor(t) {
  const tok = analysis.tokens[t];
  if (state.colour === 'logprob') {
    if (tok.logprob === null) return '#888888';
    return sequentialColour(1 - Math.min(1, -tok.logprob / 15));
  }
  if (state.colour === 'entropy') {
    if (t === 0) return '#888888';
    return sequentialColour(1 - analysis.tokens[t - 1].next.entropy / Math.log(model?.n_vocab || 50257));
  }
  const b = rankBucket(tok.rank, thresholds());
  return b < 0 ? '#888888' : BUCKET_COLOURS[Math.min(b, BUCKET_COLOURS.length - 1)];
}

function thresholds() { return parseThresholds(state.thresholds) || [1, 10, 100, 1000]; }

function renderTokens() {
  const box = $('tokens');
  clear(box);
  if (!analysis) return;
  const sel = selectedPos();
  analysis.tokens.forEach((tok, t) => {
    const s = document.createElement('span');
    s.className = 'tok';
    s.dataset.pos = t;
    s.dataset.id = tok.id;
    s.dataset.logprob = tok.logprob === null ? '' : String(tok.logprob);
    s.dataset.rank = tok.rank === null ? '' : String(tok.rank);
    s.tabIndex = t === sel ? 0 : -1;
    if (t === sel) s.classList.add('selected');
    const bg = colourFor(t);
    s.style.background = bg;
    s.style.color = textOn(bg);
    s.textContent = visibleToken(tok.text);
    box.appendChild(s);
    if (tok.text.includes('\n')) box.appendChild(document.createTextNode('\n'));
  });
  const a = analysis;
  $('totals').textContent = a.n_tokens > 1
    ? `${a.n_tokens} tokens · NLL ${a.nll.toFixed(3)} nats/token · perplexity ${a.perplexity.toPrecision(5)}`
    : `${a.n_tokens} token`;
  renderLegend();
  renderHistogram();
}

function renderLegend() {
  const lg = $('legend');
  clear(lg);
  if (state.colour === 'rank') {
    const th = thresholds(), names = [];
    th.forEach((v, i) => names.push(i === 0 ? `top ${v}` : `top ${v}`));
    names.push(`rank ≥ ${th[th.length - 1]}`);
    names.forEach((n, i) => {
      const w = document.createElement('span');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = BUCKET_COLOURS[Math.min(i, BUCKET_COLOURS.length - 1)];
      w.append(sw, n);
      lg.appendChild(w);
    });
  } else if (state.colour === 'logprob') {
    rampLegend(lg, { lo: '≤ −15', hi: '0', label: 'log-probability' });
  } else {
    rampLegend(lg, { lo: `${Math.log(model?.n_vocab || 50257).toFixed(1)} nats`, hi: '0',
      label: 'entropy of the prediction' });
  }
}

function renderHistogram() {
  const svg = $('histogram');
  clear(svg);
  const th = thresholds(), counts = new Array(th.length + 1).fill(0);
  for (const t of analysis.tokens) { const b = rankBucket(t.rank, th); if (b >= 0) counts[b]++; }
  const max = Math.max(1, ...counts), W = 360, bw = W / counts.length;
  counts.forEach((c, i) => {
    const h = (c / max) * 70;
    svgEl('rect', { x: i * bw + 4, y: 80 - h, width: bw - 8, height: h,
      fill: BUCKET_COLOURS[Math.min(i, BUCKET_COLOURS.length - 1)] }, svg);
    svgEl('text', { x: i * bw + bw / 2, y: 78 - h, 'text-anchor': 'middle' }, svg).textContent = c;
    svgEl('text', { x: i * bw + bw / 2, y: 98, 'text-anchor': 'middle' }, svg).textContent =
      i < th.length ? `< ${th[i]}` : `≥ ${th[th.length - 1]}`;
  });
}

function selectedPos() {
  if (!analysis) return -1;
  return state.pos >= 0 && state.pos < analysis.n_tokens ? state.pos : analysis.n_tokens - 1;
}

function inspect(t) {
  const box = $('inspector');
  clear(box);
  const tok = analysis.tokens[t];
  const h = document.createElement('div');
  const prob = tok.logprob === null ? null : Math.exp(tok.logprob);
  h.innerHTML = '';
  const p1 = document.createElement('p');
  p1.textContent = `position ${t} · id ${tok.id} · ${JSON.stringify(tok.text)}`;
  const p2 = document.createElement('p');
  p2.textContent = t === 0 ? 'the first token: nothing predicts it'
    : `rank ${tok.rank} · probability ${prob.toPrecision(4)} · log-prob ${tok.logprob.toFixed(4)} · entropy ${analysis.tokens[t - 1].next.entropy.toFixed(3)} nats`;
  box.append(p1, p2);
  if (t === 0) return;
  const table = document.createElement('table');
  table.innerHTML = '<thead><tr><th>#</th><th>id</th><th class="t">token</th><th>logit</th><th>logprob</th><th>prob</th><th>cum</th></tr></thead>';
  const body = document.createElement('tbody');
  let cum = 0;
  analysis.tokens[t - 1].next.top.forEach((c, i) => {
    const p = Math.exp(c.logprob);
    cum += p;
    const tr = document.createElement('tr');
    if (c.id === tok.id) tr.className = 'actual';
    for (const v of [i, c.id, JSON.stringify(c.text), c.logit.toFixed(3), c.logprob.toFixed(3), p.toFixed(4), cum.toFixed(4)]) {
      const td = document.createElement('td');
      td.textContent = v;
      if (typeof v === 'string' && v.startsWith('"')) td.className = 't';
      tr.appendChild(td);
    }
    body.appendChild(tr);
  });
  table.appendChild(body);
  box.appendChild(table);
}

function tokenFromEvent(ev) {
  const s = ev.target.closest?.('.tok');
  return s && $('tokens').contains(s) ? Number(s.dataset.pos) : -1;
}

function selectPos(t) {
  lensPos0 = null;
  state.pos = t === analysis.n_tokens - 1 ? -1 : t;
  saveState();
  for (const s of $('tokens').querySelectorAll('.tok')) {
    const me = Number(s.dataset.pos) === t;
    s.classList.toggle('selected', me);
    s.tabIndex = me ? 0 : -1;
  }
  renderView();
}

function wireTokens() {
  const box = $('tokens');
  box.addEventListener('mouseover', (ev) => { const t = tokenFromEvent(ev); if (t >= 0) inspect(t); });
  box.addEventListener('focusin', (ev) => { const t = tokenFromEvent(ev); if (t >= 0) inspect(t); });
  box.addEventListener('click', (ev) => { const t = tokenFromEvent(ev); if (t >= 0) selectPos(t); });
  box.addEventListener('keydown', (ev) => {
    const t = tokenFromEvent(ev);
    if (t < 0) return;
    const spans = box.querySelectorAll('.tok');
    let to = t;
    if (ev.key === 'ArrowRight') to = Math.min(spans.length - 1, t + 1);
    else if (ev.key === 'ArrowLeft') to = Math.max(0, t - 1);
    else if (ev.key === 'Home') to = 0;
    else if (ev.key === 'End') to = spans.length - 1;
    else if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); selectPos(t); return; }
    else return;
    ev.preventDefault();
    spans[t].tabIndex = -1;
    spans[to].tabIndex = 0;
    spans[to].focus();
  });
}

// ---- views ----
async function logitsRow(pos) {
  if (!cache.logits.has(pos)) {
    const r = await api('/v1/explore/logits', { text: analysedText, pos });
    const row = decodeF32(r.logits_f32);
    cache.logits.set(pos, row);
    cache.order.set(pos, argsortDesc(row));
    cache.raw.set(pos, softmax(row, 1));
  }
  return cache.logits.get(pos);
}

async function renderView() {
  for (const b of $('tabs').querySelectorAll('button'))
    b.setAttribute('aria-selected', String(b.dataset.view === state.view));
  for (const v of document.querySelectorAll('section.view')) v.hidden = v.dataset.view !== state.view;
  if (!analysis) return;
  try {
    if (state.view === 'next') await renderNext();
    else if (state.view === 'lens') await renderLens();
    else if (state.view === 'attention') await renderAttention();
    else if (state.view === 'figures') await renderFigures();
    else if (state.view === 'steer') await renderSteer(false);
  } catch (e) {
    showError(e);
  }
}

async function renderNext() {
  const pos = selectedPos();
  $('next-pos').textContent = `position ${pos} (${JSON.stringify(analysis.tokens[pos].text)})`;
  await logitsRow(pos);
  drawNext();
}

// Redraws the next-token bars from the cached row (the sliders' path: no request).
function drawNext() {
  const pos = selectedPos(), row = cache.logits.get(pos);
  if (!row) return;
  const t0 = performance.now();
  const opts = { temperature: state.temperature, topK: state.topK, topP: state.topP, order: cache.order.get(pos) };
  const raw = cache.raw.get(pos), post = softmax(processLogits(row, opts), 1);
  const rows = cache.order.get(pos).slice(0, 20).map((id) => ({
    id, label: JSON.stringify(tokenText(id)), values: [raw[id], post[id]],
    title: `id ${id} · logit ${row[id].toFixed(4)} · raw ${raw[id].toPrecision(4)} · after sampling ${post[id].toPrecision(4)}`,
  }));
  const svg = $('next-chart');
  barChart(svg, rows, { max: 1, onClick: (r) => appendTokens([r.id]),
    format: (v) => v.toFixed(3) });
  for (const g of svg.querySelectorAll('g[data-id]')) {
    const r = rows.find((x) => String(x.id) === g.dataset.id);
    g.dataset.raw = String(r.values[0]);
    g.dataset.post = String(r.values[1]);
  }
  window.lscTimings.redraw.push(performance.now() - t0);
}

async function appendTokens(ids) {
  const add = ids.map(tokenText).join('');
  $('text').value = analysedText + add;
  state.pos = -1;
  await analyze();
}

async function extend(doSample) {
  if (!analysis) return;
  try {
    const r = await api('/v1/explore/generate', {
      text: analysedText, max_new_tokens: 1, do_sample: doSample, seed: state.seed,
      temperature: state.temperature, top_k: state.topK, top_p: state.topP,
    });
    if (doSample) { state.seed += 1; $('seed').value = state.seed; }
    $('text').value = analysedText + r.text;
    state.pos = -1;
    await analyze();
  } catch (e) { showError(e); }
}

let lensGeo = null;
// The lens reads a window of positions per request (the server's
// max_lens_positions: each costs n_layer + 1 unembeddings). Windows are aligned
// so moving the selection inside one asks nothing; the pager reaches the rest.
let lensPos0 = null; // the window the pager chose; null: the selection's window
function lensWindow() {
  const W = model.max_lens_positions, N = analysis.n_tokens;
  const pos0 = lensPos0 ?? Math.floor(selectedPos() / W) * W;
  return { W, N, pos0, n: Math.min(W, N - pos0) };
}
async function renderLens() {
  const { W, N, pos0, n: nWant } = lensWindow();
  $('lens-page').textContent = `positions ${pos0}–${pos0 + nWant - 1} of ${N}`;
  $('lens-prev').disabled = pos0 === 0;
  $('lens-next').disabled = pos0 + W >= N;
  if (!cache.lens.has(pos0)) {
    const text = analysedText, r = await api('/v1/explore/lens', { text, pos0, n_pos: nWant });
    if (text !== analysedText) return; // a new analysis came while this window loaded
    cache.lens.set(pos0, r);
  }
  if (state.view !== 'lens' || lensWindow().pos0 !== pos0) return; // the pager moved on meanwhile
  cache.lensShown = window.lscLens = cache.lens.get(pos0); // the drawn window, for tests and scripts
  const lens = cache.lensShown, L = lens.n_layers, n = lens.n_pos, V = model.n_vocab;
  const metric = state.metric;
  const rows = [], labels = [];
  for (let l = L - 1; l >= 0; l--) { // the final layer on top
    const ly = lens.layers[l];
    labels.push(l === 0 ? 'embeddings' : l === L - 1 ? `final (block ${l - 1})` : `block ${l - 1}`);
    rows.push(Array.from({ length: n }, (_, t) => {
      if (metric === 'prob') return ly.top_prob[t];
      if (metric === 'rank') return ly.next_rank[t] === null ? NaN : 1 - Math.log10(ly.next_rank[t] + 1) / Math.log10(V);
      return 1 - Math.min(1, ly.kl[t] / 10);
    }));
  }
  const cell = n <= 30 ? 34 : n <= 80 ? 16 : 8;
  lensGeo = heatmap($('lens-canvas'), rows, {
    rowLabels: labels, colLabels: analysis.tokens.slice(pos0, pos0 + n).map((t) => `${visibleToken(t.text)}`), cell, theme: state.theme,
    cellText: (r, c) => tokenText(lens.layers[L - 1 - r].top_id[c]),
  });
  const legend = metric === 'prob' ? ['top-token probability', '0', '1']
    : metric === 'rank' ? ['rank of the actual next token (log scale)', `${V}`, '0']
      : ['KL to the final layer', '≥ 10 nats', '0'];
  rampLegend($('lens-legend'), { label: legend[0], lo: legend[1], hi: legend[2] });
}

function lensTip(ev) {
  if (!lensGeo || !cache.lensShown) return;
  const hit = cellAt($('lens-canvas'), lensGeo, ev);
  if (!hit) return hideTip();
  const lens = cache.lensShown, L = lens.n_layers, l = L - 1 - hit.r, t = hit.c, ly = lens.layers[l], p = lens.pos0 + t;
  showTip(ev, `${ly.stream} · position ${p} ${JSON.stringify(analysis.tokens[p].text)}\n` +
    `top: ${JSON.stringify(tokenText(ly.top_id[t]))} p=${ly.top_prob[t].toPrecision(3)}\n` +
    (ly.next_rank[t] === null ? '' : `actual next: rank ${ly.next_rank[t]}, p=${ly.next_prob[t].toPrecision(3)}\n`) +
    `KL to final: ${ly.kl[t].toFixed(3)} nats`);
}

let attnGeo = null;
async function attention(layer) {
  if (!cache.attention.has(layer)) {
    const r = await api('/v1/explore/attention', { text: analysedText, layer });
    cache.attention.set(layer, { H: r.n_head, T: r.n_tokens, p: decodeF32(r.pattern_f32) });
  }
  return cache.attention.get(layer);
}

async function renderAttention() {
  const sel = $('attn-layer');
  if (sel.options.length !== model.n_layer) {
    clear(sel);
    for (let l = 0; l < model.n_layer; l++) sel.add(new Option(`${l}`, `${l}`));
  }
  const layer = Math.min(state.layer, model.n_layer - 1);
  sel.value = String(layer);
  const a = await attention(layer), T = a.T, head = Math.min(state.head, a.H - 1);
  const box = $('attn-heads');
  clear(box);
  for (let h = 0; h < a.H; h++) {
    const c = document.createElement('canvas');
    c.width = T;
    c.height = T;
    c.style.width = c.style.height = '56px';
    c.title = `layer ${layer} head ${h}`;
    c.dataset.head = h;
    if (h === head) c.classList.add('chosen');
    const g = c.getContext('2d'), img = g.createImageData(T, T);
    for (let i = 0; i < T * T; i++) {
      const hex = sequentialColour(Math.sqrt(a.p[h * T * T + i])), n = parseInt(hex.slice(1), 16);
      img.data.set([n >> 16, (n >> 8) & 255, n & 255, 255], i * 4);
    }
    g.putImageData(img, 0, 0);
    c.addEventListener('click', () => { state.head = h; saveState(); renderAttention(); });
    box.appendChild(c);
  }
  const rows = [];
  for (let i = 0; i < T; i++) rows.push(Array.from(a.p.subarray(head * T * T + i * T, head * T * T + (i + 1) * T), Math.sqrt));
  const labels = analysis.tokens.map((t) => visibleToken(t.text));
  attnGeo = heatmap($('attn-canvas'), rows, { rowLabels: labels, colLabels: labels, cell: Math.max(4, Math.min(24, Math.floor(600 / T))), theme: state.theme });
  $('attn-info').textContent = `head ${head}: rows are destinations (queries), columns sources (keys)`;
  rampLegend($('attn-legend'), { label: 'attention weight (square-root scale)', lo: '0', hi: '1' });
}

function attnTip(ev) {
  const hit = attnGeo && cellAt($('attn-canvas'), attnGeo, ev);
  for (const s of $('tokens').querySelectorAll('.hl-dst, .hl-src')) s.classList.remove('hl-dst', 'hl-src');
  if (!hit) return hideTip();
  const a = cache.attention.get(Math.min(state.layer, model.n_layer - 1)), T = a.T;
  const v = a.p[Math.min(state.head, a.H - 1) * T * T + hit.r * T + hit.c];
  const spans = $('tokens').querySelectorAll('.tok');
  spans[hit.r]?.classList.add('hl-dst');
  spans[hit.c]?.classList.add('hl-src');
  showTip(ev, `${JSON.stringify(analysis.tokens[hit.r].text)} (${hit.r}) attends to ${JSON.stringify(analysis.tokens[hit.c].text)} (${hit.c}): ${v.toFixed(4)}`);
}

// ---- steering ----
function steerRequest() {
  const op = $('hook-op').value, point = $('hook-point').value, positions = $('hook-pos').value.trim();
  const strength = Number($('hook-strength').value);
  if (op === 'add')
    return { hooks: [], direction: { point, plus: $('dir-plus').value, minus: $('dir-minus').value, strength, ...(positions ? { positions } : {}) } };
  return { hooks: [hookSpec({ point, positions, op, strength, token: $('hook-token').value })] };
}

function showSpec() {
  const op = $('hook-op').value;
  for (const e of document.querySelectorAll('.op-set')) e.hidden = op !== 'set';
  for (const e of document.querySelectorAll('.op-add')) e.hidden = op !== 'add';
  $('hook-point').disabled = op === 'set';
  try {
    const r = steerRequest();
    $('hook-spec').textContent = r.hooks.length ? r.hooks[0]
      : `${r.direction.point}${r.direction.positions ? '@' + r.direction.positions : ''}:add:(${JSON.stringify(r.direction.plus)} − ${JSON.stringify(r.direction.minus)})*${r.direction.strength}`;
  } catch (e) { $('hook-spec').textContent = String(e.message); }
}

async function renderSteer(apply) {
  if (apply) {
    showSpec();
    const r = steerRequest();
    state.hooks = r.hooks;
    state.direction = r.direction ? JSON.stringify(r.direction) : '';
    saveState();
  }
  if (!state.hooks.length && !state.direction) return;
  const extra = { hooks: state.hooks, ...(state.direction ? { direction: JSON.parse(state.direction) } : {}) };
  const steered = await api('/v1/explore/analyze', { text: analysedText, top_k: 10, ...extra });
  const [contDef, contSt] = [
    await api('/v1/explore/generate', { text: analysedText, max_new_tokens: 12 }),
    await api('/v1/explore/generate', { text: analysedText, max_new_tokens: 12, ...extra }),
  ];
  const last = (a) => a.tokens[a.tokens.length - 1].next.top.slice(0, 10);
  const bars = (top) => top.map((c) => ({ id: c.id, label: JSON.stringify(c.text), values: [Math.exp(c.logprob)] }));
  barChart($('steer-default'), bars(last(analysis)), { max: 1, classes: ['bar-raw'] });
  barChart($('steer-steered'), bars(last(steered)), { max: 1, classes: ['bar-post'] });
  $('cont-default').textContent = analysedText + '▏' + contDef.text;
  $('cont-steered').textContent = analysedText + '▏' + contSt.text;
  const box = $('steer-delta');
  clear(box);
  steered.tokens.forEach((tok, t) => {
    const s = document.createElement('span');
    s.className = 'tok';
    s.dataset.pos = t;
    s.dataset.id = tok.id;
    s.dataset.steeredLogprob = tok.logprob === null ? '' : String(tok.logprob);
    const d = tok.logprob === null ? 0 : tok.logprob - analysis.tokens[t].logprob;
    s.dataset.delta = String(d);
    const x = Math.max(-1, Math.min(1, d / 5));
    s.style.background = x >= 0 ? `rgba(0, 114, 178, ${x})` : `rgba(213, 94, 0, ${-x})`;
    s.title = `Δ log-prob ${d.toFixed(4)}`;
    s.textContent = visibleToken(tok.text);
    box.appendChild(s);
  });
}

// The steering controls from the state (a shared link): the direction, or a
// hook spec of the forms the panel builds.
function syncSteerControls() {
  let m;
  if (state.direction) {
    try {
      const dir = JSON.parse(state.direction);
      $('hook-op').value = 'add';
      $('hook-point').value = dir.point;
      $('dir-plus').value = dir.plus;
      $('dir-minus').value = dir.minus;
      $('hook-strength').value = dir.strength;
      $('hook-pos').value = dir.positions || '';
    } catch (e) { state.direction = ''; }
  } else if (state.hooks.length && (m = /^lm_head(?:@([^:]*))?:set:(.*)=max([+-][^=]*)$/.exec(state.hooks[0]))) {
    $('hook-op').value = 'set';
    [$('hook-pos').value, $('hook-token').value, $('hook-strength').value] = [m[1] || '', m[2], Number(m[3])];
  } else if (state.hooks.length && (m = /^([\w.]+)(?:@([^:]*))?:(zero|scale:(.*))$/.exec(state.hooks[0]))) {
    $('hook-op').value = m[3] === 'zero' ? 'zero' : 'scale';
    $('hook-point').value = m[1];
    $('hook-pos').value = m[2] || '';
    if (m[4]) $('hook-strength').value = m[4];
  }
}

// ---- the notebook's figures ----
const figZoom = new Map();
const figPick = new Map();
async function renderFigures() {
  const pos = selectedPos(), row = await logitsRow(pos), V = row.length;
  const ids = Float32Array.from({ length: V }, (_, i) => i);
  const mark = pos + 1 < analysis.n_tokens ? analysis.tokens[pos + 1].id : cache.order.get(pos)[0];
  const p = softmax(row, 1), lp = logSoftmax(row);
  const what = pos + 1 < analysis.n_tokens ? 'the actual next token' : 'the argmax';
  const figs = {
    logits: [ids, row, `raw logits after position ${pos} (● ${what})`, 'token id', 'logit'],
    softmax: [ids, p, 'softmax', 'token id', 'probability'],
    logsoftmax: [ids, lp, 'log-softmax', 'token id', 'log-probability'],
    scatter: [row, p, 'logit vs probability', 'logit', 'probability'],
  };
  for (const c of document.querySelectorAll('.figures canvas')) {
    const [xs, ys, title, xl, yl] = figs[c.dataset.kind], z = figZoom.get(c.id) || {};
    figPick.set(c.id, { xs, ys, plot: scatter(c, xs, ys, { x0: z.lo, x1: z.hi, mark, title, xLabel: xl, yLabel: yl, theme: state.theme }) });
  }
}

function wireFigures() {
  for (const c of document.querySelectorAll('.figures canvas')) {
    c.addEventListener('wheel', (ev) => {
      const f = figPick.get(c.id);
      if (!f) return;
      ev.preventDefault();
      const { lo, hi } = f.plot.view, x = f.plot.xAt(ev), k = ev.deltaY < 0 ? 0.7 : 1 / 0.7;
      figZoom.set(c.id, { lo: x - (x - lo) * k, hi: x + (hi - x) * k });
      renderFigures();
    }, { passive: false });
    c.addEventListener('dblclick', () => { figZoom.delete(c.id); renderFigures(); });
    c.addEventListener('mousemove', (ev) => {
      const f = figPick.get(c.id);
      const i = f ? f.plot.pick(ev) : -1;
      if (i < 0) return hideTip();
      const id = c.dataset.kind === 'scatter' ? i : f.xs[i];
      showTip(ev, `${JSON.stringify(tokenText(id))} (id ${id})\nx ${Number(f.xs[i]).toPrecision(5)} · y ${Number(f.ys[i]).toPrecision(5)}`);
    });
    c.addEventListener('mouseleave', hideTip);
  }
}

// ---- export ----
function download(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// The current view as an SVG document (canvases embedded as images).
function viewSVG() {
  const sec = document.querySelector(`section.view[data-view="${state.view}"]`);
  const svgs = state.view === 'next' ? [$('next-chart')] : state.view === 'steer' ? [$('steer-default'), $('steer-steered')] : [];
  const canvases = svgs.length ? [] : [...sec.querySelectorAll('canvas')].filter((c) => c.width > 100);
  const parts = [...svgs, ...canvases];
  let W = 0, H = 0;
  for (const p of parts) { W = Math.max(W, Number(p.getAttribute('width')) || p.width); H += Number(p.getAttribute('height')) || p.height; }
  const out = svgEl('svg', { xmlns: 'http://www.w3.org/2000/svg', width: W, height: H });
  svgEl('rect', { width: W, height: H, fill: getComputedStyle(document.body).backgroundColor }, out);
  let y = 0;
  for (const p of parts) {
    const h = Number(p.getAttribute('height')) || p.height;
    if (p instanceof HTMLCanvasElement) {
      svgEl('image', { x: 0, y, width: p.width, height: p.height, href: p.toDataURL('image/png') }, out);
    } else {
      const g = svgEl('g', { transform: `translate(0, ${y})` }, out);
      for (const ch of p.childNodes) g.appendChild(ch.cloneNode(true));
      for (const r of g.querySelectorAll('rect[class]')) r.setAttribute('fill', getComputedStyle(document.body).getPropertyValue(r.classList.contains('bar-raw') ? '--raw' : '--post').trim());
      for (const t of g.querySelectorAll('text')) t.setAttribute('fill', getComputedStyle(document.body).color);
    }
    y += h;
  }
  return new XMLSerializer().serializeToString(out);
}

function exportPNG() {
  const svg = viewSVG(), img = new Image();
  img.onload = () => {
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    c.getContext('2d').drawImage(img, 0, 0);
    c.toBlob((b) => download(`logitscope-${state.view}.png`, b));
  };
  img.src = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
}

function viewData() {
  const pos = selectedPos();
  const d = { state, analysis };
  if (state.view === 'next' && cache.logits.has(pos)) {
    const row = cache.logits.get(pos), post = softmax(processLogits(row, { ...state, order: cache.order.get(pos) }), 1);
    d.next = cache.order.get(pos).slice(0, 50).map((id) => ({ id, text: tokenText(id), logit: row[id], post: post[id] }));
  }
  if (state.view === 'lens') d.lens = cache.lensShown;
  return d;
}

// ---- wiring ----
function syncControls() {
  $('text').value = state.text;
  $('colour').value = state.colour;
  $('thresholds').value = state.thresholds;
  $('temperature').value = state.temperature;
  $('top-k').value = state.topK;
  $('top-p').value = state.topP;
  $('seed').value = state.seed;
  $('lens-metric').value = state.metric;
  $('temperature-out').textContent = state.temperature;
  $('top-k-out').textContent = state.topK || 'off';
  $('top-p-out').textContent = state.topP;
  document.documentElement.dataset.theme = state.theme;
  $('theme').textContent = state.theme === 'dark' ? 'Light' : 'Dark';
}

async function main() {
  syncControls();
  wireTokens();
  wireFigures();
  $('analyze').addEventListener('click', analyze);
  $('text').addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) analyze(); });
  $('colour').addEventListener('change', () => { state.colour = $('colour').value; saveState(); renderTokens(); });
  $('thresholds').addEventListener('change', () => {
    if (!parseThresholds($('thresholds').value)) return showError(new Error('buckets: give increasing whole numbers such as 1,10,100,1000'));
    clearError();
    state.thresholds = $('thresholds').value;
    saveState();
    renderTokens();
  });
  for (const [id, key] of [['temperature', 'temperature'], ['top-k', 'topK'], ['top-p', 'topP']])
    $(id).addEventListener('input', () => {
      state[key] = Number($(id).value);
      $(`${id}-out`).textContent = key === 'topK' && !state[key] ? 'off' : state[key];
      saveState();
      drawNext();
    });
  $('seed').addEventListener('change', () => { state.seed = Math.max(0, Math.floor(Number($('seed').value) || 0)); saveState(); });
  $('greedy').addEventListener('click', () => extend(false));
  $('sample').addEventListener('click', () => extend(true));
  for (const b of $('tabs').querySelectorAll('button'))
    b.addEventListener('click', () => { state.view = b.dataset.view; saveState(); renderView(); });
  $('lens-metric').addEventListener('change', () => { state.metric = $('lens-metric').value; saveState(); renderLens(); });
  for (const [id, dir] of [['lens-prev', -1], ['lens-next', 1]])
    $(id).addEventListener('click', () => {
      const { W, N, pos0 } = lensWindow();
      lensPos0 = Math.max(0, Math.min(pos0 + dir * W, Math.floor((N - 1) / W) * W));
      renderLens().catch(showError);
    });
  $('lens-canvas').addEventListener('mousemove', lensTip);
  $('lens-canvas').addEventListener('mouseleave', hideTip);
  $('attn-layer').addEventListener('change', () => { state.layer = Number($('attn-layer').value); saveState(); renderAttention().catch(showError); });
  $('attn-canvas').addEventListener('mousemove', attnTip);
  $('attn-canvas').addEventListener('mouseleave', attnTip);
  for (const id of ['hook-op', 'hook-point', 'hook-pos', 'hook-strength', 'hook-token', 'dir-plus', 'dir-minus'])
    for (const ev of ['input', 'change']) $(id).addEventListener(ev, showSpec);
  $('steer').addEventListener('click', () => { clearError(); renderSteer(true).catch(showError); });
  $('steer-clear').addEventListener('click', () => {
    state.hooks = [];
    state.direction = '';
    saveState();
    for (const id of ['steer-default', 'steer-steered', 'steer-delta']) clear($(id));
    $('cont-default').textContent = $('cont-steered').textContent = '';
  });
  $('theme').addEventListener('click', () => {
    state.theme = state.theme === 'dark' ? 'light' : 'dark';
    saveState();
    syncControls();
    renderView();
  });
  $('export-json').addEventListener('click', () => download(`logitscope-${state.view}.json`,
    new Blob([JSON.stringify(viewData(), null, 1)], { type: 'application/json' })));
  $('export-svg').addEventListener('click', () => download(`logitscope-${state.view}.svg`,
    new Blob([viewSVG()], { type: 'image/svg+xml' })));
  $('export-png').addEventListener('click', exportPNG);
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY_STORE, $('api-key').value);
    $('api-key').value = '';
    $('key-form').hidden = true;
    clearError();
    if (model) analyze();
    else start();
  });
  if (!['next', 'lens', 'attention', 'steer', 'figures'].includes(state.view)) state.view = 'next';
  await start();
}

// What needs the server: the model's sizes, then the analysis of the URL's text.
async function start() {
  try {
    model = await api('/v1/explore/model');
  } catch (e) {
    showError(e);
    return;
  }
  $('model-info').textContent = `${model.model} · ${model.n_layer} layers · ${model.n_head} heads · context ${model.n_ctx}`;
  const hp = $('hook-point');
  for (const name of model.hook_points) if (!/hook_logits|attn_scores|hook_pattern/.test(name)) hp.add(new Option(name, name));
  hp.value = model.hook_points.includes(`blocks.${Math.floor(model.n_layer / 2)}.hook_resid_post`)
    ? `blocks.${Math.floor(model.n_layer / 2)}.hook_resid_post` : hp.options[0].value;
  syncSteerControls();
  showSpec();
  api('/v1/explore/vocab').then((v) => { vocab = v.tokens; }).catch(() => {});
  document.body.dataset.ready = '1';
  if (state.text) await analyze();
  else renderView();
}

main();
