import type { ExportFailure, ExportResult } from './http-transport.js';
import type { FinishedSpan, SpanSink } from './span.js';

export interface SpanExporter {
  export(spans: readonly FinishedSpan[]): Promise<ExportResult>;
  /** Settles exports in flight (as aborted) and frees sockets. */
  abort(): void;
}

export interface BatchOptions {
  /** Ended spans waiting for export; more are dropped and counted. This bounds tracing's memory. */
  readonly maxQueueSize: number;
  readonly maxBatchSize: number;
  /** Longest wait before a partial batch is sent. */
  readonly scheduleDelayMs: number;
}

export type DropReason = 'queue_full' | 'export_failed' | 'rejected' | 'shutdown';

export interface BatchEvents {
  onExported(spans: number): void;
  onDropped(reason: DropReason, spans: number): void;
  onExportFailed(reason: ExportFailure, detail: string): void;
  /** The first successful export after failures. */
  onRecovered(): void;
}

/**
 * The bounded batch queue between ended spans and the collector. Ending a span is a push onto an
 * array or a counted drop: never I/O, never an await, whatever state the collector is in. One
 * export is in flight at a time; while exports fail, new attempts wait for the schedule delay, so a
 * dead collector costs one attempt per delay, not one per batch of requests.
 */
export class BatchSpanQueue implements SpanSink {
  private queue: FinishedSpan[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failing = false;
  private closed = false;
  private aborted = false;

  constructor(private readonly exporter: SpanExporter, private readonly options: BatchOptions, private readonly events: BatchEvents) {}

  get depth(): number {
    return this.queue.length;
  }

  onEnd(span: FinishedSpan): void {
    if (this.closed) {
      this.events.onDropped('shutdown', 1);
      return;
    }
    if (this.queue.length >= this.options.maxQueueSize) {
      this.events.onDropped('queue_full', 1);
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.options.maxBatchSize && !this.failing) void this.start();
    else this.schedule();
  }

  /**
   * Exports what is queued, waiting at most `deadlineMs`; what is left then is dropped and counted.
   * Spans ended afterwards are dropped. Resolves true when everything was exported.
   */
  async shutdown(deadlineMs: number): Promise<boolean> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const drained = (async () => {
      while (this.running) await this.running;
      if (this.queue.length > 0) await this.start();
    })();
    let deadline: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      drained.then(() => 'drained' as const),
      new Promise<'deadline'>((resolve) => {
        deadline = setTimeout(() => resolve('deadline'), deadlineMs);
      }),
    ]);
    clearTimeout(deadline);
    this.aborted = true;
    this.exporter.abort();
    await drained;
    const left = this.queue.length;
    if (left > 0) {
      this.queue = [];
      this.events.onDropped('shutdown', left);
    }
    return outcome === 'drained' && left === 0 && !this.failing;
  }

  private schedule(): void {
    if (this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.start();
    }, this.options.scheduleDelayMs);
    this.timer.unref();
  }

  /** Starts the export loop unless it runs; resolves when it stops. */
  private start(): Promise<void> {
    if (this.running) return this.running;
    clearTimeout(this.timer);
    this.timer = undefined;
    const running = this.exportLoop().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0 && !this.closed) this.schedule();
    });
    this.running = running;
    return running;
  }

  private async exportLoop(): Promise<void> {
    while (this.queue.length > 0 && !this.aborted) {
      const batch = this.queue.splice(0, this.options.maxBatchSize);
      const result = await this.exporter.export(batch);
      if (result.ok) {
        if (this.failing) {
          this.failing = false;
          this.events.onRecovered();
        }
        this.events.onExported(batch.length - result.rejected);
        if (result.rejected > 0) this.events.onDropped('rejected', result.rejected);
      } else {
        this.failing = true;
        this.events.onExportFailed(result.reason, result.detail);
        this.events.onDropped(result.reason === 'aborted' ? 'shutdown' : 'export_failed', batch.length);
        // A failing collector gets the next attempt after the schedule delay, not at once; at shutdown
        // the deadline decides.
        if (!this.closed) return;
      }
      // A partial batch waits for the timer, so a trickle of spans is sent in few requests.
      if (!this.closed && this.queue.length < this.options.maxBatchSize) return;
    }
  }
}
