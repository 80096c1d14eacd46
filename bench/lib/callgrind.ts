/**
 * Reading valgrind's callgrind output for bench/instructions.ts: the instruction total of a dump,
 * and instructions by function, with V8's generated code named through the perf map that Node
 * writes under --perf-basic-prof (callgrind only knows such code by its address).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** One line of /tmp/perf-<pid>.map: `<start hex> <size hex> <name>`. */
export interface PerfMapEntry {
  readonly start: number;
  readonly end: number;
  readonly name: string;
}

export function parsePerfMap(text: string): PerfMapEntry[] {
  const entries: PerfMapEntry[] = [];
  for (const line of text.split('\n')) {
    const match = /^([0-9a-fA-F]+) ([0-9a-fA-F]+) (.+)$/.exec(line);
    if (!match?.[1] || !match[2] || !match[3]) continue;
    const start = Number.parseInt(match[1], 16);
    entries.push({ start, end: start + Number.parseInt(match[2], 16), name: match[3] });
  }
  return entries;
}

/**
 * The name of the code at an address: the last map entry that covers it, because V8 reuses the
 * space of collected code and appends the new code's entry.
 */
export function resolveAddress(entries: readonly PerfMapEntry[], address: number): string | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i];
    if (e && e.start <= address && address < e.end) return e.name;
  }
  return undefined;
}

/**
 * The instruction total of a callgrind output file: its `totals:` line (the sum of its cost lines),
 * else `summary:`. Not `summary:` first: valgrind 3.19 writes a wrapped-around summary in the first
 * dump after instrumentation was switched off and on again.
 */
export function callgrindTotal(text: string): number {
  const match = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!match?.[1]) throw new Error('no "totals:" or "summary:" line in the callgrind output');
  return Number(match[1]);
}

/**
 * Instructions by function (self cost) from `callgrind_annotate` output. Functions without a
 * symbol (`???:0x...`, V8's generated code) are named from the perf map (`JS *routeHandler
 * .../route.js:465:25`; `*` optimised, `~` interpreted or baseline) or, failing that, "(generated
 * code, unnamed)"; others keep their symbol without the file and the object.
 */
export function parseAnnotate(text: string, perfMap: readonly PerfMapEntry[]): Map<string, number> {
  const costs = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+)$/.exec(line);
    if (!match?.[1] || !match[2] || match[2].includes('PROGRAM TOTALS')) continue;
    const name = functionName(match[2], perfMap);
    costs.set(name, (costs.get(name) ?? 0) + Number(match[1].replaceAll(',', '')));
  }
  return costs;
}

function functionName(raw: string, perfMap: readonly PerfMapEntry[]): string {
  const address = /^\?\?\?:0x([0-9a-fA-F]+)/.exec(raw);
  if (address?.[1]) {
    const name = resolveAddress(perfMap, Number.parseInt(address[1], 16));
    return name === undefined ? '(generated code, unnamed)' : `JS ${name.replace(/^JS:/, '')}`;
  }
  // `file:function [object]`: the function, without the file (often ???) and the object.
  const withoutObject = raw.replace(/\s+\[[^\]]*\]$/, '');
  const colon = withoutObject.indexOf(':');
  return colon >= 0 && !withoutObject.slice(0, colon).includes('(') ? withoutObject.slice(colon + 1) : withoutObject;
}

/** Instructions by function in one callgrind output file (runs valgrind's callgrind_annotate). */
export async function functionCosts(file: string, perfMap: readonly PerfMapEntry[]): Promise<Map<string, number>> {
  const { stdout } = await execFileP('callgrind_annotate', ['--threshold=100', file], { maxBuffer: 256 * 1024 * 1024 });
  return parseAnnotate(stdout, perfMap);
}

/** a - b, function by function. */
export function subtractCosts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of new Set([...a.keys(), ...b.keys()])) out.set(name, (a.get(name) ?? 0) - (b.get(name) ?? 0));
  return out;
}
