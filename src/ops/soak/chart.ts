import type { SoakAnalysis } from './analysis.js';

/** Escapes text for XML content and attribute values. */
export function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/** A step of 1, 2 or 5 times a power of ten giving about `count` ticks up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const n = raw / power;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * power;
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v) || 1))));
}

interface Panel {
  readonly top: number;
  readonly height: number;
  readonly yMax: number;
  readonly yLabel: string;
}

export interface ChartOptions {
  readonly title: string;
  /** The p95 limit (ms) to draw as a line, if any. */
  readonly p95LimitMs?: number;
}

/**
 * An SVG chart of a soak: heap floor (and RSS peak) per instance over time, with the fitted trend
 * after the warm-up, above the p95 (and p99) latency per window. Hand-written SVG 1.1, no dependencies.
 */
export function soakChart(a: SoakAnalysis, options: ChartOptions): string {
  const width = 960;
  const left = 72;
  const right = 24;
  const plotW = width - left - right;
  const endS = Math.max(a.window_s, ...a.windows.map((w) => w.end_s));
  const unit = endS <= 180 ? { div: 1, name: 's' } : endS <= 3 * 3600 ? { div: 60, name: 'min' } : { div: 3600, name: 'h' };
  const x = (s: number): number => left + (s / endS) * plotW;
  const mid = (w: { start_s: number; end_s: number }): number => (w.start_s + w.end_s) / 2;
  const instances = a.memory.map((m) => m.instance);

  const memValues = a.windows.flatMap((w) => Object.values(w.instances).flatMap((i) => [i.heap_floor_mb, i.rss_max_mb])).filter((v): v is number => v !== null);
  const latValues = a.windows.flatMap((w) => [w.p95_ms, w.p99_ms]).filter((v): v is number => v !== null);
  const mem: Panel = { top: 64, height: 220, yMax: Math.max(1, ...memValues) * 1.08, yLabel: 'memory (MB)' };
  const lat: Panel = { top: 350, height: 170, yMax: Math.max(1, ...latValues, options.p95LimitMs ?? 0) * 1.08, yLabel: 'latency (ms)' };
  const y = (p: Panel, v: number): number => p.top + p.height - (v / p.yMax) * p.height;
  const height = lat.top + lat.height + 62;

  const parts: string[] = [];
  parts.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${left}" y="24" font-size="15" font-weight="bold">${xml(options.title)}</text>`);

  const axes = (p: Panel, title: string): void => {
    parts.push(`<text x="${left}" y="${p.top - 10}" font-weight="bold">${xml(title)}</text>`);
    const step = niceStep(p.yMax);
    for (let v = 0; v <= p.yMax + 1e-9; v += step) {
      const yy = y(p, v).toFixed(1);
      parts.push(`<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#e5e5e5"/>`);
      parts.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${xml(fmt(v))}</text>`);
    }
    const xStep = niceStep(endS / unit.div, 8) * unit.div;
    for (let s = 0; s <= endS + 1e-9; s += xStep) {
      const xx = x(s).toFixed(1);
      parts.push(`<line x1="${xx}" y1="${p.top}" x2="${xx}" y2="${p.top + p.height}" stroke="#f0f0f0"/>`);
      parts.push(`<text x="${xx}" y="${p.top + p.height + 16}" text-anchor="middle">${xml(fmt(s / unit.div))}</text>`);
    }
    parts.push(`<rect x="${left}" y="${p.top}" width="${plotW}" height="${p.height}" fill="none" stroke="#999999"/>`);
    parts.push(`<text transform="translate(16 ${p.top + p.height / 2}) rotate(-90)" text-anchor="middle">${xml(p.yLabel)}</text>`);
  };
  const polyline = (p: Panel, pts: readonly [number, number | null][], attrs: string): void => {
    // Breaks the line where a window has no value.
    let run: string[] = [];
    const flush = (): void => {
      if (run.length === 1) parts.push(`<circle cx="${run[0]?.split(',')[0] ?? 0}" cy="${run[0]?.split(',')[1] ?? 0}" r="2" ${attrs.replace(/stroke=/, 'fill=')}/>`);
      else if (run.length > 1) parts.push(`<polyline fill="none" ${attrs} points="${run.join(' ')}"/>`);
      run = [];
    };
    for (const [s, v] of pts) {
      if (v === null) flush();
      else run.push(`${x(s).toFixed(1)},${y(p, v).toFixed(1)}`);
    }
    flush();
  };
  const legend = (p: Panel, items: readonly { label: string; attrs: string }[]): void => {
    let lx = left + 10;
    for (const item of items) {
      const ly = p.top + 14;
      parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" ${item.attrs}/>`);
      parts.push(`<text x="${lx + 27}" y="${ly}" dominant-baseline="middle">${xml(item.label)}</text>`);
      lx += 36 + item.label.length * 6.6;
    }
  };

  // Memory panel.
  axes(mem, `Memory per window: heap floor, retained floor (without the young generation), RSS peak; ${a.memory_verdict}`);
  if (a.warmup_s > 0) {
    parts.push(`<rect x="${left}" y="${mem.top}" width="${(x(a.warmup_s) - left).toFixed(1)}" height="${mem.height}" fill="#f6f6f6"/>`);
    parts.push(`<text x="${(left + x(a.warmup_s)) / 2}" y="${mem.top + mem.height - 6}" text-anchor="middle" fill="#888888">warm-up</text>`);
  }
  const memLegend: { label: string; attrs: string }[] = [];
  instances.forEach((name, i) => {
    const color = COLORS[i % COLORS.length] ?? '#000000';
    polyline(mem, a.windows.map((w) => [mid(w), w.instances[name]?.rss_max_mb ?? null]), `stroke="${color}" stroke-width="1" stroke-dasharray="4 3" stroke-opacity="0.6"`);
    polyline(mem, a.windows.map((w) => [mid(w), w.instances[name]?.heap_floor_mb ?? null]), `stroke="${color}" stroke-width="1"`);
    polyline(mem, a.windows.map((w) => [mid(w), w.instances[name]?.retained_floor_mb ?? null]), `stroke="${color}" stroke-width="2.5"`);
    memLegend.push({ label: `${name} retained floor`, attrs: `stroke="${color}" stroke-width="2.5"` });
    if (i === 0) memLegend.push({ label: 'heap floor', attrs: `stroke="${color}" stroke-width="1"` });
    const m = a.memory[i];
    if (m?.method === 'post-gc') {
      for (const w of a.windows) {
        const v = w.instances[name]?.post_gc_floor_mb;
        if (v !== null && v !== undefined) parts.push(`<circle cx="${x(mid(w)).toFixed(1)}" cy="${y(mem, v).toFixed(1)}" r="3" fill="none" stroke="${color}"/>`);
      }
    }
    if (m?.fit) {
      parts.push(`<line x1="${x(m.fit.from_s).toFixed(1)}" y1="${y(mem, m.fit.from_mb).toFixed(1)}" x2="${x(m.fit.to_s).toFixed(1)}" y2="${y(mem, m.fit.to_mb).toFixed(1)}" stroke="#000000" stroke-width="1.5" stroke-dasharray="2 2"/>`);
    }
  });
  memLegend.push({ label: 'RSS peak', attrs: 'stroke="#666666" stroke-width="1" stroke-dasharray="4 3"' });
  if (a.memory.some((m) => m.method === 'post-gc')) memLegend.push({ label: 'o after a full GC', attrs: 'stroke="none"' });
  memLegend.push({ label: 'trend after warm-up', attrs: 'stroke="#000000" stroke-width="1.5" stroke-dasharray="2 2"' });
  legend(mem, memLegend);

  // Latency panel.
  axes(lat, 'Latency per window (from the scheduled start in the open model)');
  if (options.p95LimitMs !== undefined) {
    const yy = y(lat, options.p95LimitMs).toFixed(1);
    parts.push(`<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#d62728" stroke-width="1" stroke-dasharray="6 4"/>`);
  }
  polyline(lat, a.windows.map((w) => [mid(w), w.p99_ms]), 'stroke="#ff7f0e" stroke-width="1" stroke-opacity="0.7"');
  polyline(lat, a.windows.map((w) => [mid(w), w.p95_ms]), 'stroke="#1f77b4" stroke-width="2"');
  legend(lat, [
    { label: 'p95', attrs: 'stroke="#1f77b4" stroke-width="2"' },
    { label: 'p99', attrs: 'stroke="#ff7f0e" stroke-width="1"' },
    ...(options.p95LimitMs !== undefined ? [{ label: `p95 limit ${options.p95LimitMs} ms`, attrs: 'stroke="#d62728" stroke-dasharray="6 4"' }] : []),
  ]);
  parts.push(`<text x="${left + plotW / 2}" y="${lat.top + lat.height + 40}" text-anchor="middle">time since start (${unit.name}); windows of ${fmt(a.window_s)} s</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
