// Hand-written SVG charts (no dependencies): line charts with min–max whiskers, and per-VM timelines.

const FONT = 'font-family="Helvetica,Arial,sans-serif"';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} ${attrs}>${esc(s)}</text>`;
}

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return step * mag;
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(3)}`;
}

export interface Point {
  x: number;
  y: number;
  lo?: number;
  hi?: number;
}

export interface Series {
  name: string;
  color?: string;
  dash?: boolean;
  points: Point[];
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Log-2 x axis (VM counts, RAM sizes). */
  xLog2?: boolean;
  series: Series[];
  /** Horizontal reference line (e.g. a goal). */
  hline?: { y: number; label: string };
}

function renderPanel(p: Panel, ox: number, oy: number, w: number, h: number): string {
  const m = { l: 62, r: 14, t: 28, b: 44 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const pts = p.series.flatMap((s) => s.points).filter((q) => Number.isFinite(q.y));
  const out: string[] = [];
  out.push(text(ox + m.l, oy + 18, p.title, 'font-size="13" font-weight="bold"'));
  if (!pts.length) {
    out.push(text(ox + m.l + 10, oy + m.t + 20, 'no data', 'font-size="12"'));
    return out.join('\n');
  }
  const fx = (x: number) => (p.xLog2 ? Math.log2(x) : x);
  const xsRaw = [...new Set(pts.map((q) => q.x))].sort((a, b) => a - b);
  let xmin = fx(xsRaw[0] as number);
  let xmax = fx(xsRaw[xsRaw.length - 1] as number);
  if (xmin === xmax) {
    xmin -= 1;
    xmax += 1;
  }
  const pad = (xmax - xmin) * 0.04;
  xmin -= pad;
  xmax += pad;
  const yvals = pts.flatMap((q) => [q.y, q.hi ?? q.y]).concat(p.hline ? [p.hline.y] : []);
  const ymaxRaw = Math.max(...yvals) * 1.08 || 1;
  const ystep = niceStep(ymaxRaw, 5);
  const ymax = Math.ceil(ymaxRaw / ystep) * ystep;
  const X = (x: number) => ox + m.l + ((fx(x) - xmin) / (xmax - xmin)) * pw;
  const Y = (y: number) => oy + m.t + ph - (y / ymax) * ph;

  // Grid and axes.
  for (let y = 0; y <= ymax + 1e-9; y += ystep) {
    out.push(`<line x1="${ox + m.l}" y1="${Y(y).toFixed(1)}" x2="${ox + m.l + pw}" y2="${Y(y).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(text(ox + m.l - 6, Y(y) + 4, tickLabel(y), 'font-size="10" text-anchor="end" fill="#444"'));
  }
  let lastLabelX = -Infinity;
  for (const x of xsRaw) {
    out.push(`<line x1="${X(x).toFixed(1)}" y1="${oy + m.t + ph}" x2="${X(x).toFixed(1)}" y2="${oy + m.t + ph + 4}" stroke="#444"/>`);
    if (X(x) - lastLabelX < 26) continue; // too close to the previous label
    lastLabelX = X(x);
    out.push(text(X(x), oy + m.t + ph + 16, tickLabel(x), 'font-size="10" text-anchor="middle" fill="#444"'));
  }
  out.push(`<rect x="${ox + m.l}" y="${oy + m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(text(ox + m.l + pw / 2, oy + h - 8, p.xLabel, 'font-size="11" text-anchor="middle"'));
  out.push(
    `<text transform="translate(${ox + 14},${oy + m.t + ph / 2}) rotate(-90)" ${FONT} font-size="11" text-anchor="middle">${esc(p.yLabel)}</text>`,
  );
  if (p.hline) {
    out.push(`<line x1="${ox + m.l}" y1="${Y(p.hline.y).toFixed(1)}" x2="${ox + m.l + pw}" y2="${Y(p.hline.y).toFixed(1)}" stroke="#999" stroke-dasharray="6,3"/>`);
    out.push(text(ox + m.l + pw - 4, Y(p.hline.y) - 4, p.hline.label, 'font-size="10" text-anchor="end" fill="#666"'));
  }

  // Series: whiskers (min–max), line through medians, dots.
  p.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const sp = s.points.filter((q) => Number.isFinite(q.y)).sort((a, b) => a.x - b.x);
    for (const q of sp) {
      if (q.lo !== undefined && q.hi !== undefined && q.hi > q.lo) {
        const x = X(q.x);
        out.push(`<line x1="${x.toFixed(1)}" y1="${Y(q.lo).toFixed(1)}" x2="${x.toFixed(1)}" y2="${Y(q.hi).toFixed(1)}" stroke="${color}" stroke-opacity="0.55"/>`);
        for (const y of [q.lo, q.hi]) out.push(`<line x1="${(x - 3).toFixed(1)}" y1="${Y(y).toFixed(1)}" x2="${(x + 3).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="${color}" stroke-opacity="0.55"/>`);
      }
    }
    if (sp.length > 1) {
      const d = sp.map((q, j) => `${j ? 'L' : 'M'}${X(q.x).toFixed(1)},${Y(q.y).toFixed(1)}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${s.dash ? ' stroke-dasharray="5,3"' : ''}/>`);
    }
    for (const q of sp) out.push(`<circle cx="${X(q.x).toFixed(1)}" cy="${Y(q.y).toFixed(1)}" r="2.8" fill="${color}"/>`);
  });

  // Legend (top left inside the plot).
  p.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const lx = ox + m.l + 8;
    const ly = oy + m.t + 12 + i * 14;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 16}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5,3"' : ''}/>`);
    out.push(text(lx + 20, ly, s.name, 'font-size="10" fill="#222"'));
  });
  return out.join('\n');
}

/** Panels side by side (wrapping after `cols`), under one title. */
export function figure(title: string, panels: Panel[], opts: { cols?: number; panelW?: number; panelH?: number; note?: string } = {}): string {
  const cols = Math.min(opts.cols ?? 2, panels.length || 1);
  const pw = opts.panelW ?? 440;
  const ph = opts.panelH ?? 300;
  const rows = Math.ceil(panels.length / cols);
  const top = 30;
  const bottom = opts.note ? 22 : 6;
  const W = cols * pw;
  const H = top + rows * ph + bottom;
  const body = panels.map((p, i) => renderPanel(p, (i % cols) * pw, top + Math.floor(i / cols) * ph, pw, ph));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    text(10, 20, title, 'font-size="15" font-weight="bold"'),
    ...body,
    ...(opts.note ? [text(10, H - 7, opts.note, 'font-size="10" fill="#555"')] : []),
    '</svg>',
  ].join('\n');
}

export interface TimelineBar {
  start: number;
  end: number;
  kind: string;
}

export interface TimelineGroup {
  title: string;
  /** Time zero of this group (epoch ms): its first pause. */
  t0: number;
  rows: Array<{ label: string; bars: TimelineBar[]; marks: Array<{ at: number; kind: 'pause' | 'resume' }> }>;
  /** Orchestrator phases, drawn as a band above the rows. */
  phases?: Array<{ name: string; start: number; end: number }>;
}

/** Per-VM timelines of one checkpoint each, on one shared time scale (ms after each group's first pause). */
export function timeline(title: string, groups: TimelineGroup[], colors: Record<string, { color: string; label: string }>, note?: string): string {
  const W = 900;
  const left = 110;
  const right = 20;
  const rowH = 16;
  const bandH = 16;
  const groupGap = 34;
  const pw = W - left - right;
  let tmin = 0;
  let tmax = 1;
  for (const g of groups) {
    for (const r of g.rows) for (const b of r.bars) tmax = Math.max(tmax, b.end - g.t0);
    for (const p of g.phases ?? []) {
      tmin = Math.min(tmin, p.start - g.t0);
      tmax = Math.max(tmax, p.end - g.t0);
    }
  }
  tmin = Math.max(tmin, -0.15 * tmax);
  const X = (t: number) => left + ((Math.max(tmin, t) - tmin) / (tmax - tmin)) * pw;
  const out: string[] = [];
  let y = 46;
  for (const g of groups) {
    out.push(text(10, y, g.title, 'font-size="12" font-weight="bold"'));
    y += 8;
    if (g.phases?.length) {
      g.phases.forEach((p, i) => {
        const x1 = X(p.start - g.t0);
        const x2 = Math.max(x1 + 1, X(p.end - g.t0));
        out.push(`<rect x="${x1.toFixed(1)}" y="${y}" width="${(x2 - x1).toFixed(1)}" height="${bandH - 2}" fill="${i % 2 ? '#dfe7f1' : '#c7d6e8'}" stroke="white"/>`);
        if (x2 - x1 > 28) out.push(text((x1 + x2) / 2, y + 11, p.name, 'font-size="9" text-anchor="middle" fill="#234"'));
      });
      out.push(text(left - 6, y + 11, 'phases', 'font-size="10" text-anchor="end" fill="#444"'));
      y += bandH;
    }
    for (const r of g.rows) {
      out.push(text(left - 6, y + 12, r.label, 'font-size="10" text-anchor="end" fill="#222"'));
      for (const b of r.bars) {
        const x1 = X(b.start - g.t0);
        const x2 = Math.max(x1 + 0.8, X(b.end - g.t0));
        out.push(`<rect x="${x1.toFixed(1)}" y="${y + 2}" width="${(x2 - x1).toFixed(1)}" height="${rowH - 4}" fill="${colors[b.kind]?.color ?? '#999'}"/>`);
      }
      for (const mk of r.marks) {
        const x = X(mk.at - g.t0);
        out.push(`<line x1="${x.toFixed(1)}" y1="${y}" x2="${x.toFixed(1)}" y2="${y + rowH}" stroke="${mk.kind === 'pause' ? '#000' : '#0a0'}" stroke-width="1.5"/>`);
      }
      y += rowH;
    }
    y += groupGap;
  }
  // Time axis.
  const axisY = y - groupGap + 8;
  const step = niceStep(tmax - tmin, 10);
  for (let t = Math.ceil(tmin / step) * step; t <= tmax + 1e-9; t += step) {
    out.push(`<line x1="${X(t).toFixed(1)}" y1="50" x2="${X(t).toFixed(1)}" y2="${axisY}" stroke="#eee"/>`);
    out.push(text(X(t), axisY + 12, tickLabel(t), 'font-size="10" text-anchor="middle" fill="#444"'));
  }
  out.push(text(left + pw / 2, axisY + 26, 'ms after the first pause', 'font-size="11" text-anchor="middle"'));
  let lx = left;
  const legendY = axisY + 44;
  for (const { color, label } of Object.values(colors)) {
    out.push(`<rect x="${lx}" y="${legendY - 9}" width="12" height="10" fill="${color}"/>`);
    out.push(text(lx + 16, legendY, label, 'font-size="10"'));
    lx += 24 + label.length * 5.6;
  }
  out.push(`<line x1="${lx}" y1="${legendY - 10}" x2="${lx}" y2="${legendY + 1}" stroke="#000" stroke-width="1.5"/>`);
  out.push(text(lx + 5, legendY, 'pause', 'font-size="10"'));
  lx += 44;
  out.push(`<line x1="${lx}" y1="${legendY - 10}" x2="${lx}" y2="${legendY + 1}" stroke="#0a0" stroke-width="1.5"/>`);
  out.push(text(lx + 5, legendY, 'resume', 'font-size="10"'));
  const H = legendY + (note ? 22 : 10);
  if (note) out.push(text(10, H - 6, note, 'font-size="10" fill="#555"'));
  // Grid lines go under everything else.
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    text(10, 18, title, 'font-size="15" font-weight="bold"'),
    ...out.filter((s) => s.includes('stroke="#eee"')),
    ...out.filter((s) => !s.includes('stroke="#eee"')),
    '</svg>',
  ].join('\n');
}

/** Horizontal bars with min–max whiskers (one row per label), and an optional vertical reference line (a limit). */
export function bars(
  title: string,
  rows: Array<{ label: string; value: number; lo?: number; hi?: number; color?: string }>,
  unit: string,
  note?: string,
  line?: { value: number; label: string },
): string {
  const W = 760;
  const left = 250;
  const right = 70;
  const rowH = 24;
  const top = 40;
  const H = top + rows.length * rowH + 40 + (note ? 16 : 0);
  const vmax = Math.max(1, line?.value ?? 0, ...rows.map((r) => Math.max(r.value, r.hi ?? 0))) * 1.05;
  const step = niceStep(vmax, 6);
  const X = (v: number) => left + (v / (Math.ceil(vmax / step) * step)) * (W - left - right);
  const out: string[] = [];
  for (let v = 0; v <= Math.ceil(vmax / step) * step + 1e-9; v += step) {
    out.push(`<line x1="${X(v).toFixed(1)}" y1="${top - 4}" x2="${X(v).toFixed(1)}" y2="${top + rows.length * rowH}" stroke="#eee"/>`);
    out.push(text(X(v), top + rows.length * rowH + 14, tickLabel(v), 'font-size="10" text-anchor="middle" fill="#444"'));
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    out.push(text(left - 8, y + 15, r.label, 'font-size="11" text-anchor="end"'));
    out.push(`<rect x="${left}" y="${y + 4}" width="${Math.max(0.5, X(r.value) - left).toFixed(1)}" height="${rowH - 8}" fill="${r.color ?? PALETTE[0]}"/>`);
    if (r.lo !== undefined && r.hi !== undefined && r.hi > r.lo) {
      out.push(`<line x1="${X(r.lo).toFixed(1)}" y1="${y + rowH / 2}" x2="${X(r.hi).toFixed(1)}" y2="${y + rowH / 2}" stroke="#333"/>`);
    }
    out.push(text(Math.max(X(r.value), X(r.hi ?? 0)) + 6, y + 15, `${tickLabel(+r.value.toFixed(r.value < 10 ? 2 : 0))}`, 'font-size="10" fill="#222"'));
  });
  out.push(text(left + (W - left - right) / 2, top + rows.length * rowH + 30, unit, 'font-size="11" text-anchor="middle"'));
  if (line && Number.isFinite(line.value)) {
    const x = X(line.value).toFixed(1);
    out.push(`<line x1="${x}" y1="${top - 8}" x2="${x}" y2="${top + rows.length * rowH}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6,3"/>`);
    out.push(text(X(line.value) - 4, top - 10, line.label, 'font-size="10" text-anchor="end" fill="#d62728"'));
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    text(10, 20, title, 'font-size="14" font-weight="bold"'),
    ...out,
    ...(note ? [text(10, H - 6, note, 'font-size="10" fill="#555"')] : []),
    '</svg>',
  ].join('\n');
}
