import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { ROOT } from './stack.js';

/** The parts of V8's .cpuprofile JSON (node --cpu-prof) this summary reads. */
export interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number; readonly columnNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileRow {
  readonly name: string;
  readonly ms: number;
  /** Share of busy (non-idle) time, %. */
  readonly pct: number;
  /** CPU µs per request served in the window, when the request count is known. */
  readonly usPerReq?: number;
}

export interface ProfileWindow {
  /** Only samples taken at or after this CLOCK_MONOTONIC time, µs (process.hrtime.bigint() / 1000). */
  readonly fromUs?: number;
  /** ... and before this one. */
  readonly toUs?: number;
}

export interface SummaryOptions extends ProfileWindow {
  /** Rows per section (default 25). */
  readonly limit?: number;
  /** Requests the process served in the window: adds CPU µs per request to every row. */
  readonly requests?: number;
  /** A title for the printed summary. */
  readonly label?: string;
}

export interface ProfileSummary {
  readonly file: string;
  readonly label?: string;
  readonly requests?: number;
  /** Busy CPU µs per request, when the request count is known. */
  readonly busyUsPerReq?: number;
  /** Samples outside the window (start-up, warm-up, shutdown), ms. */
  readonly excludedMs: number;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  /** Self time per function (name + location). */
  readonly topSelf: readonly ProfileRow[];
  /** Self time per area (package, our source directory, Node internals, GC); every area. */
  readonly selfByArea: readonly ProfileRow[];
  /** Time with the area anywhere on the stack (so rows overlap and do not add up to 100%). */
  readonly inclusiveByArea: readonly ProfileRow[];
  /** Time with the function anywhere on the stack, for our own code (src/). */
  readonly inclusiveOwn: readonly ProfileRow[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  return path.startsWith('/') ? relative(ROOT, path) : path;
}

/** Which bucket a frame's time belongs to: an npm package, a directory of ours, node internals, V8. */
export function areaOf(frame: CpuProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (idle), (program), (root)
    return '(native)';
  }
  if (url.startsWith('node:')) {
    // node:internal/streams/writable -> node:internal/streams; node:_http_server stays as it is.
    const parts = url.split('/');
    return parts.length > 2 ? parts.slice(0, -1).join('/') : url;
  }
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '?');
    return `pkg ${pkg}`;
  }
  const rel = shortUrl(url);
  const parts = rel.split('/');
  // dist/src/http/app.js -> src/http
  const start = parts[0] === 'dist' ? 1 : 0;
  return parts.slice(start, start + 2).join('/');
}

export function frameName(frame: CpuProfileNode['callFrame']): string {
  const fn = frame.functionName || '(anonymous)';
  if (frame.url === '') return fn;
  return `${fn} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
}

function rows(map: Map<string, number>, busyMs: number, limit: number, requests?: number): ProfileRow[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, us]) => ({
      name,
      ms: Math.round(us / 100) / 10,
      pct: busyMs > 0 ? Math.round((us / 1000 / busyMs) * 1000) / 10 : 0,
      ...(requests !== undefined && requests > 0 && { usPerReq: Math.round((us / requests) * 100) / 100 }),
    }));
}

/**
 * Reads a .cpuprofile and attributes each sample's time delta to its frame, area and ancestors.
 * V8 stamps samples with CLOCK_MONOTONIC µs, the clock behind process.hrtime() in every process on
 * the machine, so the bench can cut the profile to its measured rounds.
 */
export function summariseCpuProfile(file: string, options: SummaryOptions = {}): ProfileSummary {
  const { limit = 25, requests } = options;
  const window: ProfileWindow = options;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }

  const self = new Map<string, number>();
  const selfArea = new Map<string, number>();
  const inclArea = new Map<string, number>();
  const inclOwn = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let excludedUs = 0;
  let t = profile.startTime;

  // timeDeltas[i] is the time between sample i-1 and sample i; attributing it to sample i is what
  // Chrome DevTools does.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (id === undefined || delta <= 0) continue;
    if ((window.fromUs !== undefined && t < window.fromUs) || (window.toUs !== undefined && t > window.toUs)) {
      excludedUs += delta;
      continue;
    }
    const node = byId.get(id);
    if (!node) continue;
    totalUs += delta;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += delta;
      continue;
    }
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + delta);
    const area = areaOf(node.callFrame);
    selfArea.set(area, (selfArea.get(area) ?? 0) + delta);

    const areas = new Set<string>();
    const own = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame) break;
      const a = areaOf(frame);
      if (!a.startsWith('(')) areas.add(a);
      if (a.startsWith('src/')) own.add(frameName(frame));
    }
    for (const a of areas) inclArea.set(a, (inclArea.get(a) ?? 0) + delta);
    for (const f of own) inclOwn.set(f, (inclOwn.get(f) ?? 0) + delta);
  }

  const busyMs = (totalUs - idleUs) / 1000;
  return {
    file,
    ...(options.label !== undefined && { label: options.label }),
    ...(requests !== undefined && requests > 0 && { requests, busyUsPerReq: Math.round(((busyMs * 1000) / requests) * 10) / 10 }),
    excludedMs: Math.round(excludedUs / 1000),
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyMs: Math.round(busyMs),
    topSelf: rows(self, busyMs, limit, requests),
    selfByArea: rows(selfArea, busyMs, Number.POSITIVE_INFINITY, requests),
    inclusiveByArea: rows(inclArea, busyMs, limit, requests),
    inclusiveOwn: rows(inclOwn, busyMs, limit, requests),
  };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const section = (title: string, list: readonly ProfileRow[]): string => [
    title,
    ...list.map((r) => `  ${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms${r.usPerReq !== undefined ? `  ${r.usPerReq.toFixed(2).padStart(7)} µs/req` : ''}  ${r.name}`),
  ].join('\n');
  return [
    `CPU profile${s.label ? ` of ${s.label}` : ''}: ${relative(process.cwd(), s.file)}`,
    `  sampled ${s.totalMs} ms: busy ${s.busyMs} ms, idle ${s.idleMs} ms (percentages below are of busy time)${s.excludedMs > 0 ? `; ${s.excludedMs} ms outside the measured rounds left out` : ''}`,
    ...(s.requests !== undefined ? [`  ${s.requests} requests in the window: ${s.busyUsPerReq} µs of busy CPU per request (profiler overhead included)`] : []),
    section('Self time by function:', s.topSelf),
    section('Self time by area:', s.selfByArea),
    section('Inclusive time by area (overlapping):', s.inclusiveByArea),
    section('Inclusive time, our code (src/):', s.inclusiveOwn),
  ].join('\n\n');
}

/**
 * Bottom-up view of one function: the distinct call stacks (innermost first, `depth` frames) that
 * led to samples in functions whose name contains `needle`, with their self time.
 */
export function callersOf(file: string, needle: string, depth = 8, limit = 10, window: ProfileWindow = {}): ProfileRow[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const stacks = new Map<string, number>();
  let busyUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (id === undefined || delta <= 0) continue;
    if ((window.fromUs !== undefined && t < window.fromUs) || (window.toUs !== undefined && t > window.toUs)) continue;
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    busyUs += delta;
    if (!frameName(node.callFrame).includes(needle)) continue;
    const frames: string[] = [];
    for (let cur: number | undefined = id; cur !== undefined && frames.length < depth; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame || frame.functionName === '(root)') break;
      frames.push(frameName(frame));
    }
    const key = frames.join('\n      <- ');
    stacks.set(key, (stacks.get(key) ?? 0) + delta);
  }
  return rows(stacks, busyUs / 1000, limit);
}

/**
 * Self CPU µs per request by area, one profile against a baseline (the API against bare Fastify):
 * where the extra time per request goes. Both summaries need a request count.
 */
export function formatAreaComparison(subject: ProfileSummary, baseline: ProfileSummary, limit = 20): string {
  const a = new Map(subject.selfByArea.map((r) => [r.name, r.usPerReq ?? 0]));
  const b = new Map(baseline.selfByArea.map((r) => [r.name, r.usPerReq ?? 0]));
  const names = [...new Set([...a.keys(), ...b.keys()])]
    .map((name) => ({ name, a: a.get(name) ?? 0, b: b.get(name) ?? 0 }))
    .sort((x, y) => (y.a - y.b) - (x.a - x.b))
    .slice(0, limit);
  const num = (n: number): string => n.toFixed(2).padStart(8);
  return [
    `Self CPU µs per request by area: ${subject.label ?? 'subject'} vs ${baseline.label ?? 'baseline'}`,
    `  total busy: ${subject.busyUsPerReq ?? '?'} vs ${baseline.busyUsPerReq ?? '?'} µs/req`,
    `  ${'subject'.padStart(8)}  ${'baseline'.padStart(8)}  ${'extra'.padStart(8)}  area`,
    ...names.map((r) => `  ${num(r.a)}  ${num(r.b)}  ${num(r.a - r.b)}  ${r.name}`),
  ].join('\n');
}
