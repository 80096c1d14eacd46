import type { ProgressState } from './runner.js';

function fmtMs(v: number): string {
  if (Number.isNaN(v)) return '-';
  return v >= 100 ? `${Math.round(v)}ms` : `${v.toFixed(1)}ms`;
}

/** `[ 12s/60s]  198.7 req/s  p95 3.2ms  errors 0 (0.00%)  in-flight 3  late 0` */
export function progressLine(p: ProgressState, label = ''): string {
  const width = String(Math.round(p.plannedS)).length;
  const errorRate = p.requests === 0 ? 0 : (p.failed / p.requests) * 100;
  const parts = [
    `[${String(Math.round(p.elapsedS)).padStart(width)}s/${Math.round(p.plannedS)}s]`,
    `${p.rps.toFixed(1).padStart(7)} req/s`,
    `p95 ${fmtMs(p.p95)}`,
    `errors ${p.failed} (${errorRate.toFixed(2)}%)`,
    `in-flight ${p.inFlight}`,
  ];
  if (p.vus > 0) parts.push(`vus ${p.vus}`);
  if (p.late > 0 || p.dropped > 0) parts.push(`late ${p.late}${p.dropped > 0 ? ` dropped ${p.dropped}` : ''}`);
  return `${label}${parts.join('  ')}`;
}

export interface ProgressOptions {
  readonly stream: NodeJS.WriteStream;
  /** Refresh period when the stream is a terminal (one line rewritten in place); default 1 s. */
  readonly ttyEveryMs?: number;
  /** Period of plain lines otherwise; default 10 s. */
  readonly plainEveryMs?: number;
  readonly label?: string;
  /** Extra text appended (soak: memory). */
  readonly extra?: () => string;
}

/** Prints the progress line: rewritten in place on a terminal, every few seconds as plain lines otherwise. */
export class ProgressPrinter {
  private timer: NodeJS.Timeout | undefined;
  private lastLength = 0;

  constructor(private readonly read: () => ProgressState, private readonly options: ProgressOptions) {}

  start(): void {
    const tty = this.options.stream.isTTY;
    const every = tty ? this.options.ttyEveryMs ?? 1000 : this.options.plainEveryMs ?? 10_000;
    this.timer = setInterval(() => this.print(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.options.stream.isTTY && this.lastLength > 0) this.options.stream.write('\n');
    this.lastLength = 0;
  }

  private print(): void {
    const extra = this.options.extra?.() ?? '';
    const line = progressLine(this.read(), this.options.label ?? '') + (extra ? `  ${extra}` : '');
    if (this.options.stream.isTTY) {
      const columns = this.options.stream.columns || 120;
      const shown = line.length >= columns ? line.slice(0, columns - 1) : line;
      this.options.stream.write(`\r${shown}\x1b[K`);
      this.lastLength = shown.length;
    } else {
      this.options.stream.write(`${line}\n`);
    }
  }
}
