/**
 * The Dockerfile, checked without a Docker engine (none runs here): multi-stage, Node 24, only
 * production dependencies in the final stage, a numeric non-root user, a HEALTHCHECK on a path the
 * service serves, and an entry point that exists in the build output and matches the manifests.
 * The production-only claim is checked for real: every package the compiled service imports is a
 * production dependency.
 */
import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { apiDeployments, container, find, podSpecOf, readRepoFile, render, repoPath } from './helpers.js';

interface Instruction { readonly op: string; readonly args: string }

function instructions(): Instruction[] {
  const text = readRepoFile('Dockerfile').replace(/\\\n/g, ' ');
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => {
    const [op = '', ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(' ') };
  });
}

function stages(): Instruction[][] {
  const out: Instruction[][] = [];
  for (const i of instructions()) {
    if (i.op === 'FROM') out.push([]);
    out.at(-1)?.push(i);
  }
  return out;
}

test('multi-stage on Node 24 LTS; the final stage copies the compiled service and production-only node_modules', () => {
  const all = instructions();
  const nodeImage = all.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='))?.args.split('=')[1] ?? '';
  assert.match(nodeImage, /^node:24(\.\d+)*-bookworm-slim$/);
  const s = stages();
  assert.ok(s.length >= 2, 'multi-stage');
  const final = s.at(-1) ?? [];
  assert.match(final[0]?.args ?? '', /^\$\{NODE_IMAGE\}/);
  const deps = s.find((st) => st.some((i) => i.op === 'RUN' && i.args.includes('npm ci --omit=dev')));
  assert.ok(deps, 'a stage installs with npm ci --omit=dev');
  const depsName = /AS (\w+)/i.exec(deps[0]?.args ?? '')?.[1];
  assert.ok(final.some((i) => i.op === 'COPY' && i.args.includes(`--from=${depsName ?? ''}`) && i.args.includes('node_modules')));
  assert.ok(!final.some((i) => i.op === 'RUN' && /npm (ci|install)(?!.*--omit=dev)/.test(i.args)), 'no full install in the final stage');
});

test('runs as a numeric non-root user, the one the Kubernetes manifests name', () => {
  const final = stages().at(-1) ?? [];
  const user = final.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
  const m = /^(\d+):(\d+)$/.exec(user);
  assert.ok(m && Number(m[1]) > 0, `USER ${user}`);
  for (const d of apiDeployments(render('production'))) assert.equal(podSpecOf(d).securityContext?.runAsUser, Number(m[1]));
  assert.equal(podSpecOf(find(render('production'), 'CronJob', 'kgents-backup', 'kgents-agents')).securityContext?.runAsUser, Number(m[1]));
});

test('HEALTHCHECK calls /health on PORT, and PORT/EXPOSE match the manifests', () => {
  const final = stages().at(-1) ?? [];
  const hc = final.find((i) => i.op === 'HEALTHCHECK')?.args ?? '';
  assert.match(hc, /CMD \["node", "-e", ".*\/health/);
  assert.ok(final.some((i) => i.op === 'EXPOSE' && i.args === '8000'));
  const api = container(podSpecOf(apiDeployments(render('production'))[0] ?? find(render('production'), 'Deployment', 'kgents-api')), 'api');
  assert.equal(api.ports?.[0]?.containerPort, 8000);
  assert.deepEqual(api.args, ['serve']);
});

test('the entry point exists in the build output, and the backup script calls the same path', () => {
  const final = stages().at(-1) ?? [];
  const entry = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
  const workdir = final.filter((i) => i.op === 'WORKDIR').at(-1)?.args ?? '';
  assert.deepEqual(entry, ['node', 'dist/src/cli/main.js']);
  assert.ok(statSync(repoPath('dist', 'src', 'cli', 'main.js')).isFile());
  assert.ok(readRepoFile('deploy', 'base', 'agents', 'backup', 'run-backup.sh').includes(`node ${workdir}/dist/src/cli/main.js`));
  assert.deepEqual(JSON.parse(final.find((i) => i.op === 'CMD')?.args ?? '[]'), ['serve']);
});

test('.dockerignore sends only the sources the build stage copies', () => {
  const ignore = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*', 'ignore everything by default');
  const copied = stages().flatMap((s) => s.filter((i) => i.op === 'COPY' && !i.args.includes('--from')))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  for (const c of copied) assert.ok(ignore.includes(`!${c}`) || ignore.includes(`!${c}/`), `${c} is copied but excluded by .dockerignore`);
});

test('every package the compiled service imports is a production dependency (so --omit=dev is enough)', () => {
  const pkg = JSON.parse(readRepoFile('package.json')) as { dependencies: Record<string, string> };
  const builtins = new Set(builtinModules);
  const missing = new Set<string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.js')) {
        const text = readFileSync(full, 'utf8');
        for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
          const spec = m[1] ?? m[2] ?? '';
          if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec);
          if (!pkg.dependencies[name]) missing.add(`${name} (${full.slice(repoPath().length)})`);
        }
      }
    }
  };
  walk(repoPath('dist', 'src'));
  assert.deepEqual([...missing], [], 'imported by the service but not in "dependencies"');
});
