/**
 * The agents tier: the NATS configuration loads in a real nats-server, the Redis configuration in
 * a real redis-server (and keeps noeviction), the StatefulSet and backup CronJob have the settings
 * the platform relies on, and the backup script reports success and failure to a Pushgateway.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { commands } from '../../src/cli/commands/index.js';
import {
  OVERLAYS, type K8sObject, configMap, container, find, memoryBytes, podSpecOf, readRepoFile, render, repoPath, run, tool,
} from './helpers.js';
import { PENDING_CLI, pendingNames } from './pending.js';

const NS = 'kgents-agents';

describe('NATS', () => {
  test('nats.conf loads in nats-server (-t); options newer than the local server are named and stripped first', (t) => {
    const conf = configMap(render('production'), 'nats-config', NS).data?.['nats.conf'] ?? '';
    assert.equal(conf, readRepoFile('deploy', 'base', 'agents', 'nats', 'nats.conf'));
    const bin = tool('nats-server');
    const version = /v?(\d+)\.(\d+)\.(\d+)/.exec(run(bin, ['--version']).stdout + run(bin, ['--version']).stderr);
    assert.ok(version);
    const minor = Number(version[1]) * 100 + Number(version[2]);
    // The image runs 2.11; Debian's nats-server (which CI installs) is 2.9, which predates these.
    const since210 = ['sync_interval'];
    let checked = conf;
    if (minor < 210) {
      t.diagnostic(`local nats-server ${version[0]} predates 2.10: checking without ${since210.join(', ')} (the image is 2.11)`);
      checked = conf.split('\n').filter((l) => !since210.some((k) => l.trim().startsWith(`${k}:`))).join('\n');
    }
    const dir = mkdtempSync(join(tmpdir(), 'kgents-nats-conf-'));
    try {
      const file = join(dir, 'nats.conf');
      writeFileSync(file, checked);
      const res = run(bin, ['-t', '-c', file], { env: { ...process.env, SERVER_NAME: 'nats-0' } });
      assert.equal(res.status, 0, res.stdout + res.stderr);
      // The check is real: a misspelt field fails it.
      writeFileSync(file, checked.replace('store_dir', 'store_dirr'));
      assert.notEqual(run(bin, ['-t', '-c', file], { env: { ...process.env, SERVER_NAME: 'nats-0' } }).status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('JetStream flushes every second (not the 2-minute default), the choice is documented, routes name every server', () => {
    const conf = readRepoFile('deploy', 'base', 'agents', 'nats', 'nats.conf');
    assert.match(conf, /^\s*sync_interval: 1s$/m);
    assert.match(readRepoFile('docs', 'deployment.md'), /sync_interval: 1s/);
    const sts = find(render('production'), 'StatefulSet', 'nats', NS).spec as { replicas: number; serviceName: string };
    for (let i = 0; i < sts.replicas; i++) assert.ok(conf.includes(`nats://nats-${i}.${sts.serviceName}.${NS}.svc.cluster.local:6222`), `route to nats-${i}`);
  });

  for (const overlay of OVERLAYS) {
    test(`${overlay}: StatefulSet of 3 on PVCs, a 2.10+/2.11 image, js-enabled-only readiness, exporter sidecar, PDB minAvailable 2`, () => {
      const objects = render(overlay);
      const sts = find(objects, 'StatefulSet', 'nats', NS);
      const spec = sts.spec as { replicas: number; volumeClaimTemplates: { metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }[] };
      assert.equal(spec.replicas, 3);
      const nats = container(podSpecOf(sts), 'nats');
      assert.match(nats.image, /^nats:2\.1[01]\.\d+(-alpine)?$/);
      assert.equal(nats.readinessProbe?.httpGet?.path, '/healthz?js-enabled-only=true');
      assert.ok(nats.volumeMounts?.some((m) => m.mountPath === '/data' && spec.volumeClaimTemplates.some((v) => v.metadata.name === m.name)), 'JetStream store on a PVC');
      const storeLimit = /max_file_store: (\d+)GB/.exec(readRepoFile('deploy', 'base', 'agents', 'nats', 'nats.conf'))?.[1];
      assert.ok(Number(storeLimit) * 1e9 < memoryBytes(spec.volumeClaimTemplates[0]?.spec.resources.requests.storage ?? '0'), 'max_file_store below the PVC size');
      const exporter = container(podSpecOf(sts), 'exporter');
      assert.ok(exporter.args?.includes('-healthz') && exporter.args.includes('-varz') && exporter.args.includes('-jsz=all'));
      assert.equal((find(objects, 'PodDisruptionBudget', 'nats', NS).spec as { minAvailable: number }).minAvailable, 2);
    });
  }
});

describe('Redis', () => {
  test('redis.conf loads in a real redis-server and keeps noeviction, with maxmemory below the container limit', async () => {
    const conf = configMap(render('production'), 'redis-config', NS).data?.['redis.conf'] ?? '';
    const limit = memoryBytes(container(podSpecOf(find(render('production'), 'StatefulSet', 'redis', NS)), 'redis').resources?.limits?.memory ?? '0');
    const dir = mkdtempSync(join(tmpdir(), 'kgents-redis-conf-'));
    let child: ChildProcess | undefined;
    try {
      const file = join(dir, 'redis.conf');
      // The file as deployed, but for its data directory (/data is the pod's volume, and Redis
      // changes into it while reading the file); the overrides after it move it onto loopback.
      assert.match(conf, /^dir \/data$/m);
      writeFileSync(file, conf.replace(/^dir \/data$/m, `dir ${dir}`));
      const port = 20000 + Math.floor(Math.random() * 20000);
      child = spawn(tool('redis-server'), [file, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--requirepass', 'test-password'], { stdio: 'pipe' });
      let out = '';
      child.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
      child.stderr?.on('data', (b: Buffer) => { out += b.toString(); });
      const cli = (...args: string[]): string => run('redis-cli', ['-p', String(port), '-a', 'test-password', '--no-auth-warning', ...args]).stdout.trim();
      for (let i = 0; i < 100 && cli('ping') !== 'PONG'; i++) await sleep(50);
      assert.equal(cli('ping'), 'PONG', out);
      assert.equal(cli('config', 'get', 'maxmemory-policy').split('\n')[1], 'noeviction');
      assert.equal(cli('config', 'get', 'appendonly').split('\n')[1], 'yes');
      const maxmemory = Number(cli('config', 'get', 'maxmemory').split('\n')[1]);
      assert.ok(maxmemory > 0 && maxmemory <= 0.8 * limit, `maxmemory ${maxmemory} vs limit ${limit}`);
    } finally {
      child?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('backup', () => {
  for (const overlay of OVERLAYS) {
    test(`${overlay}: daily at 02:00 UTC, never two at once, 'kgents backup --retain 7d' onto the 5Gi PVC`, () => {
      const objects: K8sObject[] = render(overlay);
      const cron = find(objects, 'CronJob', 'kgents-backup', NS);
      const spec = cron.spec as { schedule: string; timeZone: string; concurrencyPolicy: string };
      assert.equal(spec.schedule, '0 2 * * *');
      assert.equal(spec.timeZone, 'Etc/UTC');
      assert.equal(spec.concurrencyPolicy, 'Forbid');
      const pod = podSpecOf(cron);
      const c = container(pod, 'backup');
      const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env.get('BACKUP_RETAIN'), '7d');
      const mount = c.volumeMounts?.find((m) => m.mountPath === env.get('BACKUP_DIR'));
      const claim = pod.volumes?.find((v) => v.name === mount?.name)?.persistentVolumeClaim?.claimName;
      const pvc = find(objects, 'PersistentVolumeClaim', claim ?? '', NS).spec as { resources: { requests: { storage: string } } };
      assert.equal(pvc.resources.requests.storage, '5Gi');
      assert.equal(c.image, container(podSpecOf(find(objects, 'Deployment', overlay === 'production-blue-green' ? 'kgents-api-blue' : 'kgents-api', 'kgents-api')), 'api').image, 'the backup runs the API image');
    });
  }

  test('the CLI has the backup command and flags the CronJob uses, or it is listed as pending', (t) => {
    const script = readRepoFile('deploy', 'base', 'agents', 'backup', 'run-backup.sh');
    const flags = ['--to', '--retain', '--metrics-file'];
    for (const f of flags) assert.ok(script.includes(`backup ${f}`) || script.includes(` ${f} `), `run-backup.sh passes ${f}`);
    const backup = commands.find((c) => c.name === 'backup');
    if (!backup) {
      assert.ok(pendingNames(PENDING_CLI).has('backup'), '`kgents backup` does not exist and is not listed in test/deploy/pending.ts');
      return;
    }
    if (pendingNames(PENDING_CLI).has('backup')) t.diagnostic('pending.ts: `kgents backup` exists now; remove its entry');
    for (const f of flags) assert.ok(backup.usage.includes(f), `kgents backup does not document ${f}`);
  });

  describe('run-backup.sh against a stand-in kgents and a stand-in Pushgateway', () => {
    const runScript = async (backupExit: number, writeMetrics: boolean): Promise<{ status: number | null; pushes: { path: string; body: string }[]; stderr: string; leftInTmp: string[] }> => {
      const dir = mkdtempSync(join(tmpdir(), 'kgents-backup-sh-'));
      const scriptTmp = join(dir, 'tmp');
      mkdirSync(scriptTmp);
      const pushes: { path: string; body: string }[] = [];
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        let body = '';
        req.on('data', (c: Buffer) => { body += c.toString(); });
        req.on('end', () => {
          pushes.push({ path: `${req.method ?? ''} ${req.url ?? ''}`, body });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      try {
        const fake = join(dir, 'kgents');
        writeFileSync(fake, [
          '#!/bin/sh',
          '# stand-in for `kgents backup --to D --retain R --metrics-file F`',
          '[ "$1" = backup ] || exit 64',
          'while [ $# -gt 0 ]; do case "$1" in --metrics-file) f="$2"; shift;; esac; shift; done',
          writeMetrics ? 'printf "# TYPE kgents_backup_last_success_timestamp_seconds gauge\\nkgents_backup_last_success_timestamp_seconds 1700000000\\n" > "$f"' : ':',
          `exit ${backupExit}`,
        ].join('\n'));
        chmodSync(fake, 0o755);
        // Asynchronously: the stand-in Pushgateway answers from this process's event loop.
        const child = spawn('/bin/sh', [repoPath('deploy', 'base', 'agents', 'backup', 'run-backup.sh')], {
          env: {
            PATH: process.env.PATH, TMPDIR: scriptTmp, KGENTS_BIN: fake, BACKUP_DIR: join(dir, 'backups'), BACKUP_RETAIN: '7d',
            METRICS_FILE: join(dir, 'metrics', 'backup.prom'), PUSHGATEWAY_URL: `http://127.0.0.1:${port}/metrics/job/kgents-backup`,
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
        const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        return { status, pushes, stderr, leftInTmp: readdirSync(scriptTmp) };
      } finally {
        await new Promise((resolve) => server.close(resolve));
        rmSync(dir, { recursive: true, force: true });
      }
    };

    test('success: pushes the metrics file and exit code 0 with POST, exits 0', async () => {
      const r = await runScript(0, true);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.pushes.length, 1);
      assert.equal(r.pushes[0]?.path, 'POST /metrics/job/kgents-backup');
      assert.match(r.pushes[0]?.body ?? '', /^kgents_backup_last_success_timestamp_seconds 1700000000$/m);
      assert.match(r.pushes[0]?.body ?? '', /^kgents_backup_last_exit_code 0$/m);
      assert.deepEqual(r.leftInTmp, [], 'the pushed file is removed when the script ends');
    });

    test('failure: pushes the failure time and exit code, keeps the last success, exits with the backup\'s status', async () => {
      const r = await runScript(3, false);
      assert.equal(r.status, 3);
      assert.equal(r.pushes.length, 1);
      const body = r.pushes[0]?.body ?? '';
      assert.match(body, /^kgents_backup_last_failure_timestamp_seconds \d{10}$/m);
      assert.match(body, /^kgents_backup_last_exit_code 3$/m);
      assert.doesNotMatch(body, /last_success/);
      assert.deepEqual(r.leftInTmp, [], 'the pushed file is removed on failure too');
    });

    test('a backup that claims success without metrics counts as failed', async () => {
      const r = await runScript(0, false);
      assert.equal(r.status, 70);
      assert.match(r.pushes[0]?.body ?? '', /^kgents_backup_last_exit_code 70$/m);
    });
  });
});
