/**
 * A load-generator process: receives one LoadJob over IPC, runs autocannon, sends back a
 * LoadSummary and exits. Started by bench/lib/load.ts with child_process.fork, so the generator's
 * event loop is neither the bench driver's nor the server's.
 */
import autocannon from 'autocannon';
import type { LoadJob, LoadSummary, WorkerMessage } from './lib/load-types.js';
import { SampleRecorder, percentileOfSorted, round } from './lib/stats.js';

function isLoadJob(value: unknown): value is LoadJob {
  if (typeof value !== 'object' || value === null) return false;
  const job = value as Partial<LoadJob>;
  return typeof job.url === 'string' && (job.method === 'GET' || job.method === 'POST')
    && typeof job.connections === 'number' && typeof job.durationS === 'number' && typeof job.timeoutS === 'number';
}

function runJob(job: LoadJob): Promise<LoadSummary> {
  return new Promise((resolve, reject) => {
    const samples = new SampleRecorder();
    const cpuBefore = process.cpuUsage();
    const wallBefore = process.hrtime.bigint();
    const instance = autocannon({
      url: job.url,
      method: job.method,
      headers: { ...job.headers },
      ...(job.body !== undefined && { body: job.body }),
      connections: job.connections,
      pipelining: 1,
      duration: job.durationS,
      timeout: job.timeoutS,
    }, (err: unknown, result: autocannon.Result) => {
      if (err) {
        reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
        return;
      }
      const cpu = process.cpuUsage(cpuBefore);
      const wallUs = Number(process.hrtime.bigint() - wallBefore) / 1000;
      const sorted = samples.sorted();
      let sum = 0;
      for (const v of sorted) sum += v;
      const statusCounts: Record<string, number> = {};
      for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCounts[code] = stat.count ?? 0;
      const ms = (v: number): number => round(v, 3);
      resolve({
        generator: 'autocannon',
        rps: round(result.requests.total / result.duration, 1),
        rpsAutocannon: round(result.requests.average, 1),
        requests: result.requests.total,
        samples: sorted.length,
        durationS: result.duration,
        latency: {
          p50: ms(percentileOfSorted(sorted, 50)),
          p90: ms(percentileOfSorted(sorted, 90)),
          p97_5: ms(percentileOfSorted(sorted, 97.5)),
          p99: ms(percentileOfSorted(sorted, 99)),
          p99_9: ms(percentileOfSorted(sorted, 99.9)),
          max: ms(sorted.length > 0 ? (sorted[sorted.length - 1] ?? 0) : Number.NaN),
          mean: ms(sorted.length > 0 ? sum / sorted.length : Number.NaN),
        },
        latencyAutocannon: { p50: result.latency.p50, p97_5: result.latency.p97_5, p99: result.latency.p99 },
        status2xx: result['2xx'],
        non2xx: result.non2xx,
        statusCounts,
        errors: result.errors,
        timeouts: result.timeouts,
        generatorCpuPct: round(((cpu.user + cpu.system) / wallUs) * 100, 1),
      });
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => samples.record(responseTime));
  });
}

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) {
      process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

process.once('message', (raw: unknown) => {
  const work = isLoadJob(raw)
    ? runJob(raw).then((summary): WorkerMessage => ({ kind: 'result', summary }))
    : Promise.resolve<WorkerMessage>({ kind: 'error', message: 'load worker: malformed job' });
  void work
    .catch((err: unknown): WorkerMessage => ({ kind: 'error', message: err instanceof Error ? err.message : String(err) }))
    .then(send)
    .then(() => process.exit(0));
});
