// charts.mjs - the page's drawings, by hand: SVG bar charts, canvas heatmaps
// and scatter plots (no plotting library: nothing is fetched from outside).
import { sequentialColour } from './logic.mjs';

const SVG = 'http://www.w3.org/2000/svg';

export function svgEl(name, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

// Horizontal bars: rows [{label, values: [v0, v1?], title}], values in
// [0, max]; one bar per value, classes from `classes`. onClick(row) when
// given makes each row clickable (role=button, keyboard too).
export function barChart(svg, rows, { classes = ['bar-raw', 'bar-post'], max = null, onClick = null,
  format = (v) => v.toFixed(3) } = {}) {
  clear(svg);
  const W = Number(svg.getAttribute('width')), rowH = 20, labelW = 150, valueW = 120;
  const H = Math.max(40, rows.length * rowH + 10);
  svg.setAttribute('height', H);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const m = max ?? Math.max(1e-12, ...rows.flatMap((r) => r.values));
  const nb = Math.max(1, ...rows.map((r) => r.values.length)), bh = (rowH - 4) / nb;
  rows.forEach((r, i) => {
    const g = svgEl('g', { transform: `translate(0, ${5 + i * rowH})` }, svg);
    if (onClick) {
      g.setAttribute('class', 'clickable');
      g.setAttribute('role', 'button');
      g.setAttribute('tabindex', '0');
      g.dataset.id = r.id;
      g.addEventListener('click', () => onClick(r));
      g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') onClick(r); });
    }
    svgEl('rect', { x: 0, y: 0, width: W, height: rowH, fill: 'transparent' }, g);
    const t = svgEl('text', { x: labelW - 6, y: rowH / 2 + 4, 'text-anchor': 'end' }, g);
    t.textContent = r.label;
    r.values.forEach((v, k) => {
      const w = Math.max(0, (W - labelW - valueW) * (v / m));
      svgEl('rect', { x: labelW, y: 2 + k * bh, width: w, height: bh - 1, class: classes[k] }, g);
    });
    const vt = svgEl('text', { x: W - valueW + 4, y: rowH / 2 + 4 }, g);
    vt.textContent = r.values.map(format).join(' / ');
    if (r.title) svgEl('title', {}, g).textContent = r.title;
  });
}

// A heatmap of values[r][c] in [0, 1] (NaN grey) on a canvas, cell by cell,
// with row and column labels; returns the geometry for hit tests.
export function heatmap(canvas, values, { rowLabels = [], colLabels = [], cell = 14, left = 150,
  top = 8, bottom = 60, colour = sequentialColour, cellText = null, theme = 'light' } = {}) {
  const R = values.length, C = R ? values[0].length : 0;
  canvas.width = left + C * cell + 10;
  canvas.height = top + R * cell + bottom;
  const g = canvas.getContext('2d');
  g.fillStyle = theme === 'dark' ? '#161616' : '#ffffff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < C; c++) {
      g.fillStyle = colour(values[r][c]);
      g.fillRect(left + c * cell, top + r * cell, cell, cell);
      if (cellText && cell >= 28) {
        const s = cellText(r, c);
        if (s) {
          g.fillStyle = values[r][c] > 0.6 ? '#000' : '#fff';
          g.font = '9px monospace';
          g.fillText(s.slice(0, Math.floor(cell / 6)), left + c * cell + 1, top + r * cell + cell / 2 + 3);
        }
      }
    }
  g.fillStyle = theme === 'dark' ? '#e8e8e8' : '#1b1b1b';
  g.font = '11px sans-serif';
  g.textAlign = 'right';
  rowLabels.forEach((s, r) => g.fillText(s, left - 4, top + r * cell + cell / 2 + 4));
  g.save();
  g.textAlign = 'right';
  colLabels.forEach((s, c) => {
    g.save();
    g.translate(left + c * cell + cell / 2 + 3, top + R * cell + 4);
    g.rotate(-Math.PI / 2.5);
    g.fillText(s.slice(0, 12), 0, 0);
    g.restore();
  });
  g.restore();
  return { left, top, cell, R, C };
}

// The cell under a mouse event, or null.
export function cellAt(canvas, geo, ev) {
  const b = canvas.getBoundingClientRect();
  const x = (ev.clientX - b.left) * (canvas.width / b.width), y = (ev.clientY - b.top) * (canvas.height / b.height);
  const c = Math.floor((x - geo.left) / geo.cell), r = Math.floor((y - geo.top) / geo.cell);
  return r >= 0 && c >= 0 && r < geo.R && c < geo.C ? { r, c } : null;
}

// A scatter plot of points (x[i], y[i]) on a canvas, x limited to [x0, x1];
// `mark` (an index) drawn larger in the accent colour. Returns a function
// mapping a mouse event to the nearest point index (within 6 px) or -1.
export function scatter(canvas, xs, ys, { x0 = null, x1 = null, mark = -1, title = '', xLabel = '', yLabel = '',
  theme = 'light' } = {}) {
  const g = canvas.getContext('2d'), W = canvas.width, H = canvas.height;
  const L = 52, R = 10, T = 22, B = 30;
  const n = xs.length;
  const lo = x0 ?? Math.min(...sample(xs)), hi = x1 ?? Math.max(...sample(xs));
  let ylo = Infinity, yhi = -Infinity;
  for (let i = 0; i < n; i++)
    if (xs[i] >= lo && xs[i] <= hi && Number.isFinite(ys[i])) {
      if (ys[i] < ylo) ylo = ys[i];
      if (ys[i] > yhi) yhi = ys[i];
    }
  if (!(yhi > ylo)) { yhi = ylo + 1; }
  const fg = theme === 'dark' ? '#e8e8e8' : '#1b1b1b';
  g.fillStyle = theme === 'dark' ? '#161616' : '#ffffff';
  g.fillRect(0, 0, W, H);
  const px = (x) => L + ((x - lo) / (hi - lo || 1)) * (W - L - R);
  const py = (y) => T + (1 - (y - ylo) / (yhi - ylo)) * (H - T - B);
  g.fillStyle = theme === 'dark' ? '#56B4E9' : '#0072B2';
  for (let i = 0; i < n; i++) {
    if (xs[i] < lo || xs[i] > hi || !Number.isFinite(ys[i])) continue;
    g.fillRect(px(xs[i]) - 0.5, py(ys[i]) - 0.5, 1.5, 1.5);
  }
  if (mark >= 0) {
    g.fillStyle = '#D55E00';
    g.beginPath();
    g.arc(px(xs[mark]), py(ys[mark]), 4, 0, 2 * Math.PI);
    g.fill();
  }
  g.strokeStyle = fg;
  g.strokeRect(L, T, W - L - R, H - T - B);
  g.fillStyle = fg;
  g.font = '11px sans-serif';
  g.textAlign = 'left';
  g.fillText(title, L, 14);
  g.textAlign = 'center';
  g.fillText(xLabel, (L + W - R) / 2, H - 4);
  g.fillText(fmt(lo), L, H - 16);
  g.fillText(fmt(hi), W - R - 10, H - 16);
  g.textAlign = 'right';
  g.fillText(fmt(yhi), L - 3, T + 8);
  g.fillText(fmt(ylo), L - 3, H - B);
  g.save();
  g.translate(12, (T + H - B) / 2);
  g.rotate(-Math.PI / 2);
  g.textAlign = 'center';
  g.fillText(yLabel, 0, 0);
  g.restore();
  const view = { lo, hi, L, R, W };
  return {
    view,
    pick(ev) {
      const b = canvas.getBoundingClientRect();
      const mx = (ev.clientX - b.left) * (W / b.width), my = (ev.clientY - b.top) * (H / b.height);
      let best = -1, bd = 36;
      for (let i = 0; i < n; i++) {
        if (xs[i] < lo || xs[i] > hi || !Number.isFinite(ys[i])) continue;
        const d = (px(xs[i]) - mx) ** 2 + (py(ys[i]) - my) ** 2;
        if (d < bd) { bd = d; best = i; }
      }
      return best;
    },
    xAt(ev) {
      const b = canvas.getBoundingClientRect();
      const mx = (ev.clientX - b.left) * (W / b.width);
      return lo + ((mx - L) / (W - L - R)) * (hi - lo);
    },
  };
}

function sample(xs) {
  // min/max of a large typed array without spreading it whole
  let lo = Infinity, hi = -Infinity;
  for (const x of xs) if (Number.isFinite(x)) { if (x < lo) lo = x; if (x > hi) hi = x; }
  return [lo, hi];
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(Math.round(v * 1000) / 1000);
}

// A colour ramp legend: a small canvas from lo to hi.
export function rampLegend(container, { lo, hi, label, colour = sequentialColour }) {
  clear(container);
  const c = document.createElement('canvas');
  c.width = 160;
  c.height = 12;
  const g = c.getContext('2d');
  for (let x = 0; x < 160; x++) { g.fillStyle = colour(x / 159); g.fillRect(x, 0, 1, 12); }
  const a = document.createElement('span'), b = document.createElement('span');
  a.textContent = `${label}: ${lo}`;
  b.textContent = String(hi);
  container.append(a, c, b);
}
