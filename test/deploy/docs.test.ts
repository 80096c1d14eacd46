/**
 * docs/deployment.md says how to deploy, verify, roll back and switch blue/green with commands
 * that name objects the manifests really have, states the schema version the tests use, and says
 * plainly what could not be run.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { OVERLAYS, SCHEMA_KUBERNETES_VERSION, find, readRepoFile, render } from './helpers.js';

const doc = (): string => readRepoFile('docs', 'deployment.md');

test('has the sections the issue asks for, with commands', () => {
  for (const heading of ['## 4. Deploy', '## 5. Verify', '## Roll back', '## Blue/green', '## NATS durability', '## Redis eviction', '## Backups', '## What could not be verified']) {
    assert.ok(doc().includes(heading), `missing "${heading}"`);
  }
  for (const overlay of OVERLAYS) assert.ok(doc().includes(`deploy/overlays/${overlay}`), `no command for ${overlay}`);
  for (const cmd of ['kubectl kustomize deploy/overlays/production', 'kubectl apply -f', 'rollout status', 'rollout undo deployment/kgents-api', 'helm upgrade --install kong', 'docker build']) {
    assert.ok(doc().includes(cmd), `no "${cmd}"`);
  }
  assert.match(doc(), /Not run here\./);
  assert.match(doc(), /no Kubernetes\s+cluster/);
});

test('states the schema version and package versions the tests really use', () => {
  const pkg = JSON.parse(readRepoFile('package.json')) as { devDependencies: Record<string, string> };
  assert.match(doc(), new RegExp(`\\*\\*Kubernetes\\s+${SCHEMA_KUBERNETES_VERSION.replace(/\./g, '\\.')}\\*\\*`));
  assert.ok(doc().includes(`\`kubernetes-models\` **${pkg.devDependencies['kubernetes-models'] ?? '?'}**`), 'kubernetes-models version');
  assert.ok(doc().includes(`\`@kubernetes-models/gateway-api\` **${pkg.devDependencies['@kubernetes-models/gateway-api'] ?? '?'}**`), 'gateway-api models version');
});

test('the blue/green and rollback commands name objects the blue/green overlay has', () => {
  const objects = render('production-blue-green');
  for (const m of doc().matchAll(/kubectl -n (kgents-[a-z]+) (?:set image|scale|rollout status|patch) (deployment|service|hpa)\/([a-z0-9-]+)/g)) {
    const kind = { deployment: 'Deployment', service: 'Service', hpa: 'HorizontalPodAutoscaler' }[m[2] as 'deployment' | 'service' | 'hpa'];
    const name = m[3] ?? '';
    if (name === 'kgents-api' && kind === 'Deployment') {
      find(render('production'), kind, name, m[1]);
      continue;
    }
    find(objects, kind, name, m[1]);
  }
  assert.ok(doc().includes('set image deployment/kgents-api-green api='), 'the container is called api');
});

test('the image tags of the documented images are the ones in the manifests', () => {
  const images = new Set(render('production').flatMap((o) => JSON.stringify(o).match(/"image":"([^"]+)"/g) ?? []).map((s) => s.slice(9, -1)));
  for (const image of images) assert.ok(doc().includes(image), `docs/deployment.md does not list ${image}`);
});
