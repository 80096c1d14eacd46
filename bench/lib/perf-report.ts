/**
 * Reading `perf report --stdio` output (Linux perf, cpu-clock samples) of a bench server: self
 * shares by symbol, grouped into areas, and the total CPU time sampled. Pure functions, tested
 * on fixed text (test/bench/perf-report.test.ts).
 */

export interface PerfSymbol {
  /** Percent of all samples in the report. */
  readonly percent: number;
  readonly dso: string;
  readonly symbol: string;
}

/** `# Event count (approx.): N`: for cpu-clock, nanoseconds of CPU time sampled. */
export function eventCount(report: string): number {
  const m = /^# Event count \(approx\.\): (\d+)/m.exec(report);
  if (!m?.[1]) throw new Error('perf report has no event count (no samples?)');
  return Number(m[1]);
}

/** Percent of all samples by thread id, from `perf report --no-children --sort pid -g none` (`  94.23%  9169:node`). */
export function threadShares(report: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of report.split('\n')) {
    const m = /^\s+(\d+(?:\.\d+)?)%(?:\s+\d+(?:\.\d+)?%)?\s+(\d+):\S/.exec(line);
    if (m?.[1] && m[2]) out.set(Number(m[2]), (out.get(Number(m[2])) ?? 0) + Number(m[1]));
  }
  return out;
}

/**
 * Rows of `perf report --no-children --sort dso,sym -g none`: `  3.58%  node  [.] v8::internal::X`.
 * A dso name may hold spaces (`[JIT] tid 123`); the symbol follows `[.]` (user) or `[k]` (kernel).
 */
export function selfSymbols(report: string): PerfSymbol[] {
  const rows: PerfSymbol[] = [];
  for (const line of report.split('\n')) {
    const m = /^\s+(\d+(?:\.\d+)?)%\s+(.+?)\s+\[([.k])\]\s+(.*)$/.exec(line);
    if (!m?.[1] || !m[2] || !m[3] || m[4] === undefined) continue;
    rows.push({ percent: Number(m[1]), dso: m[2].trim(), symbol: `${m[3] === 'k' ? '[k] ' : ''}${m[4].trim()}` });
  }
  return rows;
}

/** Rows of `perf report --children --sort sym -g none`: `  14.51%  0.30%  [k] do_syscall_64` (children first). */
export function inclusiveSymbols(report: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of report.split('\n')) {
    const m = /^\s+(\d+(?:\.\d+)?)%\s+\d+(?:\.\d+)?%\s+\[([.k])\]\s+(.*)$/.exec(line);
    if (!m?.[1] || !m[2] || m[3] === undefined) continue;
    const symbol = `${m[2] === 'k' ? '[k] ' : ''}${m[3].trim()}`;
    out.set(symbol, Math.max(out.get(symbol) ?? 0, Number(m[1])));
  }
  return out;
}

const GC = /^v8::internal::\S*(Heap|Scaveng|Sweep|Marking|MarkCompact|Evacuat|SemiSpace|NewSpace|PagedSpace|GCTracer|GlobalHandles|RememberedSet|SlotSet|MemoryAllocator|MemoryReducer)|^(void|heap::base::SlotCallbackResult|auto) v8::internal::\S*(Scaveng|BodyDescriptor|Marking|Heap)|^heap::base::|^Builtins_RecordWrite/;

/** The area a sampled symbol belongs to: where in the stack its time went. */
export function areaOf(row: Pick<PerfSymbol, 'dso' | 'symbol'>): string {
  const { dso, symbol } = row;
  if (symbol.startsWith('[k] ')) return 'kernel';
  if (dso.startsWith('[JIT]') || dso.startsWith('perf-')) {
    // Node's --perf-basic-prof names: `JS:*name file:///.../dist/src/http/app.js:1:2`, `JS:^name node:events:1:2`, `RegExp:...`.
    if (symbol.startsWith('RegExp:')) return 'regexp (generated)';
    const src = /\/dist\/(src|bench)\/([^/]+)\//.exec(symbol);
    if (src) return `${src[1]}/${src[2]}`;
    const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(symbol);
    if (pkg) return `pkg ${pkg[1]}`;
    const core = / node:([a-z_]+)/.exec(symbol);
    if (core) return `node:${core[1] === 'internal' ? 'internal' : core[1]}`;
    return 'JIT (other)';
  }
  if (/^libc[.-]|^libstdc\+\+|^libm[.-]|^ld-linux/.test(dso)) return 'libc (malloc, memcpy)';
  if (dso === '[vdso]') return 'vdso (clock)';
  if (GC.test(symbol)) return 'V8 garbage collector';
  if (symbol.includes('JsonStringifier') || symbol.includes('JsonStringify')) return 'V8 JSON.stringify';
  if (symbol.includes('JsonParser') || symbol.includes('JsonParse')) return 'V8 JSON.parse';
  if (/^v8::internal::compiler::|TurbofanCompilationJob|OptimizingCompileDispatcher|Maglev|baseline::/.test(symbol)) return 'V8 compiler';
  if (symbol.startsWith('Builtins_')) return 'V8 builtins';
  if (symbol.startsWith('llhttp') || symbol.startsWith('uv_') || symbol.startsWith('uv__')) return 'libuv, llhttp';
  if (symbol.startsWith('node::')) return 'Node C++';
  if (/^(v8::|void v8::|auto v8::|std::|unsigned long v8::|bool v8::|int v8::)/.test(symbol)) return 'V8 runtime';
  if (/sha256|EVP_|SHA256|OPENSSL|CRYPTO_/.test(symbol)) return 'OpenSSL';
  return `other (${dso})`;
}

/** Percent of samples by area, largest first. */
export function byArea(rows: readonly PerfSymbol[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const row of rows) {
    const area = areaOf(row);
    out.set(area, (out.get(area) ?? 0) + row.percent);
  }
  return new Map([...out].sort((a, b) => b[1] - a[1]));
}
