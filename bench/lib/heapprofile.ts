import { readFileSync } from 'node:fs';
import { areaOf, frameName, type CpuProfileNode } from './cpuprofile.js';

/** V8's sampling heap profile (HeapProfiler.stopSampling): a call tree with bytes allocated in each frame. */
interface HeapProfileNode {
  readonly callFrame: CpuProfileNode['callFrame'];
  /** Estimated bytes allocated by this frame itself (V8 scales the samples). */
  readonly selfSize: number;
  readonly children: readonly HeapProfileNode[];
}

export interface AllocRow {
  readonly name: string;
  readonly bytesPerRequest: number;
}

export interface AllocSummary {
  readonly requests: number;
  readonly bytesPerRequest: number;
  readonly selfByFunction: readonly AllocRow[];
  readonly selfByArea: readonly AllocRow[];
  /** Bytes allocated with the function anywhere on the stack, for our own code (src/). */
  readonly inclusiveOwn: readonly AllocRow[];
}

function add(map: Map<string, number>, key: string, bytes: number): void {
  map.set(key, (map.get(key) ?? 0) + bytes);
}

function top(map: ReadonlyMap<string, number>, requests: number, limit: number): AllocRow[] {
  return [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, bytes]) => ({ name, bytesPerRequest: bytes / requests }));
}

/** Sums one or more profiles of the same server (one per measured run) into bytes per request. */
export function summariseHeapProfiles(files: readonly string[], requests: number, limit = 25): AllocSummary {
  const selfFn = new Map<string, number>();
  const selfArea = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  // onStack: our frames above this node, so a recursive function counts its subtree once.
  for (const file of files) {
    const root = (JSON.parse(readFileSync(file, 'utf8')) as { head: HeapProfileNode }).head;
    const walk = (node: HeapProfileNode, onStack: ReadonlySet<string>): number => {
      const name = frameName(node.callFrame);
      const area = areaOf(node.callFrame);
      total += node.selfSize;
      add(selfFn, name, node.selfSize);
      add(selfArea, area, node.selfSize);
      const own = area.startsWith('src/') && !onStack.has(name);
      const below = own ? new Set([...onStack, name]) : onStack;
      let subtree = node.selfSize;
      for (const child of node.children) subtree += walk(child, below);
      if (own) add(inclusive, name, subtree);
      return subtree;
    };
    walk(root, new Set());
  }
  const n = Math.max(1, requests);
  return {
    requests,
    bytesPerRequest: total / n,
    selfByFunction: top(selfFn, n, limit),
    selfByArea: top(selfArea, n, limit),
    inclusiveOwn: top(inclusive, n, limit),
  };
}

export function formatAllocSummary(label: string, s: AllocSummary, what = 'allocated'): string {
  const kb = (bytes: number): string => (bytes / 1024).toFixed(2).padStart(8);
  const section = (title: string, rows: readonly AllocRow[]): string => `${title}:\n${rows.map((r) => `  ${kb(r.bytesPerRequest)} KiB/req  ${r.name}`).join('\n')}`;
  return [
    `${label}: ${(s.bytesPerRequest / 1024).toFixed(2)} KiB ${what} per request (${s.requests.toLocaleString('en-US')} requests sampled)`,
    section('By function (self)', s.selfByFunction),
    section('By area (self)', s.selfByArea),
    section('Our code (inclusive)', s.inclusiveOwn),
  ].join('\n\n');
}
