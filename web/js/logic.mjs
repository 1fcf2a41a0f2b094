// logic.mjs - the page's pure logic, without the DOM (tests/web/logic.test.mjs
// runs it under `node --test`): rank buckets, colour scales, softmax with
// temperature, the top-k and top-p cuts as transformers applies them, the
// URL state, and decoding the server's base64 float32 arrays.

// Rank buckets, GLTR's: top 1, 10, 100, 1000, and the rest. `thresholds` are
// the upper bounds (exclusive) of the first buckets in rank order (0 = top).
export const DEFAULT_THRESHOLDS = [1, 10, 100, 1000];

export function rankBucket(rank, thresholds = DEFAULT_THRESHOLDS) {
  if (rank === null || rank === undefined) return -1; // the first token: nothing predicted it
  for (let i = 0; i < thresholds.length; i++) if (rank < thresholds[i]) return i;
  return thresholds.length;
}

// Parses "1,10,100,1000": increasing positive whole numbers, else null.
export function parseThresholds(s) {
  const parts = String(s).split(',').map((x) => x.trim());
  if (!parts.length || parts.some((x) => !/^\d+$/.test(x))) return null;
  const t = parts.map(Number);
  for (let i = 0; i < t.length; i++) if (t[i] < 1 || (i && t[i] <= t[i - 1])) return null;
  return t;
}

// Okabe-Ito, a colour-blind-safe qualitative palette, for the buckets.
export const BUCKET_COLOURS = ['#009E73', '#56B4E9', '#F0E442', '#E69F00', '#D55E00'];

// Colours for t in [0, 1] from a sequential colour-blind-safe ramp (viridis'
// stops, interpolated in RGB).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
export function sequentialColour(t) {
  if (!Number.isFinite(t)) return '#888888';
  t = Math.min(1, Math.max(0, t));
  const x = t * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
}

// Black or white text on a background colour "#rrggbb", by its luminance.
export function textOn(hex) {
  const n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255;
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#000000' : '#ffffff';
}

// Softmax of logits / temperature in double precision (temperature 0:
// everything on the first argmax). -Infinity entries get 0.
export function softmax(logits, temperature = 1) {
  const n = logits.length, out = new Float64Array(n);
  if (temperature === 0) {
    let a = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[a]) a = i;
    out[a] = 1;
    return out;
  }
  let m = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > m) m = logits[i];
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = logits[i] === -Infinity ? 0 : Math.exp((logits[i] - m) / temperature);
    out[i] = e;
    s += e;
  }
  for (let i = 0; i < n; i++) out[i] /= s;
  return out;
}

// log-softmax in double precision.
export function logSoftmax(logits) {
  let m = -Infinity;
  for (const x of logits) if (x > m) m = x;
  let s = 0;
  for (const x of logits) s += Math.exp(x - m);
  const lse = m + Math.log(s), out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

// Entropy in nats of a probability vector.
export function entropy(p) {
  let h = 0;
  for (const x of p) if (x > 0) h -= x * Math.log(x);
  return h;
}

// Indices sorted by value, descending (stable: the lower index first on ties).
export function argsortDesc(x) {
  const idx = Array.from(x, (_, i) => i);
  idx.sort((a, b) => x[b] - x[a] || a - b);
  return idx;
}

// The logits transformers' warpers leave (temperature, then top-k, then
// top-p; removed tokens -Infinity), as lsc_sampler_apply does with
// do_sample: top-k keeps the k highest and the ties of the k-th; top-p keeps
// the smallest set of highest tokens whose probability reaches top_p (at
// least one). `order` (optional) is argsortDesc(logits), to spare the sorts
// when a slider moves.
export function processLogits(logits, { temperature = 1, topK = 0, topP = 1, order = null } = {}) {
  const n = logits.length, out = new Float64Array(n);
  const t = temperature > 0 ? temperature : 1;
  for (let i = 0; i < n; i++) out[i] = logits[i] / t;
  if (temperature === 0) {
    let a = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[a]) a = i;
    out.fill(-Infinity);
    out[a] = 0;
    return out;
  }
  if (topK > 0 && topK < n) {
    const kth = (order || argsortDesc(out))[topK - 1], v = out[kth];
    for (let i = 0; i < n; i++) if (out[i] < v) out[i] = -Infinity;
  }
  if (topP < 1) {
    // transformers: sort ascending, drop the prefix whose cumulative
    // probability is <= 1 - top_p, always keep the last (highest)
    const p = softmax(out, 1), desc = order || argsortDesc(out);
    let cum = 0;
    for (let j = desc.length - 1; j > 0; j--) { // ascending
      cum += p[desc[j]];
      if (cum <= 1 - topP) out[desc[j]] = -Infinity;
      else break;
    }
  }
  return out;
}

// The distribution the sampler draws from, for the sliders.
export function samplingDistribution(logits, opts) {
  return softmax(processLogits(logits, opts), 1);
}

// KL(p || q) in nats for two probability vectors.
export function kl(p, q) {
  let d = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) d += p[i] * (Math.log(p[i]) - Math.log(q[i]));
  return d;
}

// base64 of little-endian float32 bytes -> Float32Array.
export function decodeF32(b64) {
  const bin = typeof atob === 'function' ? atob(b64) : Buffer.from(b64, 'base64').toString('binary');
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer, 0, bytes.length >> 2);
}

// A token's text with its whitespace made visible: a space as '·', a tab
// as '→', a newline as '↵' (followed by a real line break in the page).
export function visibleToken(s) {
  return s.replace(/ /g, '\u00b7').replace(/\t/g, '\u2192').replace(/\r/g, '\u240d')
    .replace(/\n/g, '\u21b5');
}

// The page's state in its URL: what is shared and scriptable.
export const DEFAULT_STATE = {
  text: '', pos: -1, view: 'next', colour: 'rank', thresholds: '1,10,100,1000',
  temperature: 1, topK: 0, topP: 1, seed: 0, metric: 'prob', layer: 0, head: 0, hooks: [],
  direction: '', theme: 'light',
};

const NUMERIC = ['pos', 'temperature', 'topK', 'topP', 'seed', 'layer', 'head'];

// The state as a query string (defaults left out, hooks repeated).
export function stateToQuery(state) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (!(k in DEFAULT_STATE)) continue;
    if (k === 'hooks') {
      for (const h of v) q.append('hook', h);
    } else if (v !== DEFAULT_STATE[k]) {
      q.set(k, String(v));
    }
  }
  return q.toString();
}

// The state from a query string; unknown keys ignored, malformed numbers
// replaced by their defaults.
export function queryToState(query) {
  const q = new URLSearchParams(query), s = { ...DEFAULT_STATE, hooks: [] };
  for (const k of Object.keys(DEFAULT_STATE)) {
    if (k === 'hooks') {
      s.hooks = q.getAll('hook');
    } else if (q.has(k)) {
      const v = q.get(k);
      if (NUMERIC.includes(k)) {
        const x = Number(v);
        if (v.trim() !== '' && Number.isFinite(x)) s[k] = x;
      } else {
        s[k] = v;
      }
    }
  }
  return s;
}

// The hook spec the steering panel builds (the CLI's --hook syntax).
export function hookSpec({ point, positions = '', op, strength = 1, token = '' }) {
  const at = positions ? `@${positions}` : '';
  if (op === 'zero') return `${point}${at}:zero`;
  if (op === 'scale') return `${point}${at}:scale:${strength}`;
  if (op === 'set') {
    const v = strength >= 0 ? `max+${strength}` : `max${strength}`;
    return `lm_head${at}:set:${token}=${v}`;
  }
  throw new Error(`no hook spec for the operation '${op}'`);
}
