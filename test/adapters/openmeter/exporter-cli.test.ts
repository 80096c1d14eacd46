import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { UsageError } from '../../../src/cli/command.js';
import { exporterCommand, exporterReport, runExporterService, type ExporterReport } from '../../../src/cli/commands/exporter.js';
import { loadConfig } from '../../../src/config/load.js';
import type { UsageExporter } from '../../../src/adapters/openmeter/exporter.js';
import { API_KEY, FAST, captureLogger, publishEvents, startEnv, waitFor } from './fixtures.js';

/** Runs `fn` with process.stdout/stderr writes captured. */
async function captureOutput<T>(fn: () => Promise<T>): Promise<{ result: T; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const stdoutWrite = process.stdout.write.bind(process.stdout);
  const stderrWrite = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
  process.stderr.write = ((chunk: string | Uint8Array) => err.push(String(chunk)) > 0);
  try {
    const result = await fn();
    return { result, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
  }
}

void test('kgents exporter without OPENMETER_URL exits 2 with a clear message', async () => {
  const config = loadConfig({}, { NATS_URLS: 'nats://127.0.0.1:1' });
  const { result, stderr } = await captureOutput(() => runExporterService(config, { until: new AbortController().signal, log: captureLogger() }));
  assert.equal(result, 2);
  assert.match(stderr, /OPENMETER_URL is not set/);
  assert.match(stderr, /events simply stay in the USAGE stream/);
});

void test('kgents exporter creates the streams, exports until told to stop, and status reports lag 0', async () => {
  const env = await startEnv();
  // aborted in finally too: a failed assertion must not leave the service running (the file would time out)
  const controller = new AbortController();
  let service: Promise<number> | undefined;
  try {
    // a fresh server: the command itself must create the streams
    await env.jsm.streams.delete('USAGE');
    const config = loadConfig({}, { NATS_URLS: env.server.url, OPENMETER_URL: env.standIn.url, OPENMETER_API_KEY: API_KEY, EXPORTER_BATCH_SIZE: '50' });
    let exporter: UsageExporter | undefined;
    const log = captureLogger();
    service = runExporterService(config, { until: controller.signal, log, exporter: FAST, onStarted: (e) => { exporter = e; } });
    await waitFor('exporter started', () => exporter !== undefined);
    const events = await publishEvents(env.js, 120);
    await waitFor('all exported', () => env.standIn.received().length === 120);
    await waitFor('lag 0', async () => (await exporterReport(env.nats, config.OPENMETER_URL))?.lag === 0);

    const saved = { NATS_URLS: process.env.NATS_URLS, OPENMETER_URL: process.env.OPENMETER_URL };
    process.env.NATS_URLS = env.server.url;
    process.env.OPENMETER_URL = `http://user:pw@127.0.0.1:9/`;
    try {
      const json = await captureOutput(() => exporterCommand.run(['status', '--json']));
      assert.equal(json.result, 0);
      const report = JSON.parse(json.stdout) as ExporterReport;
      assert.equal(report.consumer_exists, true);
      assert.equal(report.lag, 0);
      assert.equal(report.usage_messages, 120);
      assert.equal(report.acked_through_seq, 120);
      assert.equal(report.dead_lettered, 0);
      assert.equal(report.openmeter_url, 'http://***@127.0.0.1:9/api/v1/events', 'credentials in the URL are not printed');
      const text = await captureOutput(() => exporterCommand.run(['status']));
      assert.equal(text.result, 0);
      assert.match(text.stdout, /lag\s+0 message\(s\) not yet exported/);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }

    controller.abort();
    assert.equal(await service, 0);
    assert.ok(log.lines.some((l) => l.msg === 'OpenMeter exporter stopped'));
    assert.deepEqual(new Set(env.standIn.received().map((e) => e.id)), new Set(events.map((e) => e.id)));
    assert.ok(!JSON.stringify(log.lines).includes(API_KEY), 'the API key is never logged');
  } finally {
    controller.abort();
    await service?.catch(() => undefined);
    await env.cleanup();
  }
});

void test('kgents exporter rejects unknown subcommands and arguments as usage errors', async () => {
  await assert.rejects(exporterCommand.run(['bogus']), UsageError);
  await assert.rejects(exporterCommand.run(['status', '--nope']), UsageError);
  await assert.rejects(exporterCommand.run(['run', 'extra']), UsageError);
  assert.match(exporterCommand.usage, /kgents exporter status/);
});
