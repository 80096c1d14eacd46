/**
 * The gateway: Gateway API routes (Kong) reach only paths the API serves, never /metrics, never
 * strip or rewrite the credential, and the Kong plugins (size limit, correlation id) agree with
 * the API's own body limit and request-id header.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { testApp, type TestApp } from '../harness/app.js';
import { OVERLAYS, type K8sObject, apiDeployments, container, containerEnv, find, podSpecOf, render } from './helpers.js';
import { PENDING_ROUTES, pendingNames } from './pending.js';

interface PathMatch { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string }
interface RouteRule {
  matches?: { path?: PathMatch; method?: string; headers?: unknown[] }[];
  filters?: { type: string; requestHeaderModifier?: { remove?: string[]; set?: { name: string }[] }; urlRewrite?: unknown }[];
  backendRefs?: { name: string; port: number; namespace?: string }[];
}
interface RouteSpec { parentRefs: { name: string; namespace?: string; sectionName?: string }[]; rules: RouteRule[] }

const CREDENTIAL_HEADERS = ['x-api-key', 'authorization', 'stripe-signature'];

function routes(objects: readonly K8sObject[]): K8sObject[] {
  return objects.filter((o) => o.kind === 'HTTPRoute');
}

/** Whether a request path would be sent to the API by these rules. */
function routed(objects: readonly K8sObject[], method: string, path: string): boolean {
  return routes(objects).some((r) => (r.spec as RouteSpec).rules.some((rule) => rule.backendRefs?.length && (rule.matches ?? [{}]).some((m) => {
    if (m.method && m.method !== method) return false;
    const p = m.path ?? { type: 'PathPrefix', value: '/' };
    if (p.type === 'Exact') return path === p.value;
    if (p.type === 'PathPrefix') {
      const prefix = p.value.replace(/\/$/, '');
      return prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
    }
    return false;
  })));
}

for (const overlay of OVERLAYS) {
  describe(`gateway in ${overlay}`, () => {
    const objects = (): K8sObject[] => render(overlay);

    test('Kong implements the GatewayClass; routes attach to listeners that admit their namespace and point at the API Service', () => {
      const gc = find(objects(), 'GatewayClass', 'kong').spec as { controllerName: string };
      assert.equal(gc.controllerName, 'konghq.com/kic-gateway-controller');
      const gw = find(objects(), 'Gateway', 'kgents', 'kgents-gateway').spec as {
        gatewayClassName: string; listeners: { name: string; protocol: string; allowedRoutes: { namespaces: { from: string; selector: { matchLabels: Record<string, string> } } } }[];
      };
      assert.equal(gw.gatewayClassName, 'kong');
      for (const r of routes(objects())) {
        const ns = find(objects(), 'Namespace', r.metadata.namespace ?? '');
        for (const parent of (r.spec as RouteSpec).parentRefs) {
          assert.equal(parent.name, 'kgents');
          assert.equal(parent.namespace, 'kgents-gateway');
          const listener = gw.listeners.find((l) => l.name === parent.sectionName);
          assert.ok(listener, `${r.metadata.name}: no listener ${parent.sectionName ?? ''}`);
          for (const [k, v] of Object.entries(listener.allowedRoutes.namespaces.selector.matchLabels)) assert.equal(ns.metadata.labels?.[k], v, `${r.metadata.name}: listener does not admit its namespace`);
        }
        for (const rule of (r.spec as RouteSpec).rules) {
          for (const b of rule.backendRefs ?? []) {
            const svc = find(objects(), 'Service', b.name, b.namespace ?? r.metadata.namespace).spec as { ports: { port: number }[] };
            assert.ok(svc.ports.some((p) => p.port === b.port), `${r.metadata.name}: Service ${b.name} has no port ${b.port}`);
          }
        }
      }
      const https = gw.listeners.find((l) => l.protocol === 'HTTPS');
      assert.ok(https, 'an HTTPS listener');
      const plain = routes(objects()).filter((r) => (r.spec as RouteSpec).parentRefs.some((p) => p.sectionName === 'http'));
      for (const r of plain) {
        for (const rule of (r.spec as RouteSpec).rules) {
          assert.equal(rule.backendRefs, undefined, 'plain HTTP only redirects');
          assert.ok(rule.filters?.some((f) => f.type === 'RequestRedirect'));
        }
      }
    });

    test('the routes are exactly /v1/*, /health*, /ready and POST /webhooks/stripe; /metrics stays internal', () => {
      const yes: [string, string][] = [['GET', '/v1/agentese/resolve'], ['POST', '/v1/agentese/invoke'], ['GET', '/health'], ['GET', '/health/saas'], ['GET', '/ready'], ['POST', '/webhooks/stripe']];
      const no: [string, string][] = [['GET', '/metrics'], ['GET', '/'], ['GET', '/v10'], ['GET', '/webhooks/stripe'], ['POST', '/webhooks/other'], ['GET', '/healthz'], ['GET', '/ready/x']];
      for (const [m, p] of yes) assert.ok(routed(objects(), m, p), `${m} ${p} should reach the API`);
      for (const [m, p] of no) assert.ok(!routed(objects(), m, p), `${m} ${p} must not be routed`);
    });

    test('nothing at the gateway authenticates, rate-limits, or touches the credential headers', () => {
      for (const r of routes(objects())) {
        assert.equal(r.metadata.annotations?.['konghq.com/strip-path'] ?? 'false', 'false');
        for (const rule of (r.spec as RouteSpec).rules) {
          for (const f of rule.filters ?? []) {
            assert.notEqual(f.type, 'URLRewrite', 'paths reach the API as sent');
            const mod = f.requestHeaderModifier;
            const touched = [...(mod?.remove ?? []), ...(mod?.set ?? []).map((s) => s.name)].map((h) => h.toLowerCase());
            for (const h of CREDENTIAL_HEADERS) assert.ok(!touched.includes(h), `${r.metadata.name} modifies ${h}`);
          }
        }
        const attached = (r.metadata.annotations?.['konghq.com/plugins'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        for (const name of attached) find(objects(), 'KongPlugin', name, r.metadata.namespace);
      }
      for (const p of objects().filter((o) => o.kind === 'KongPlugin' || o.kind === 'KongClusterPlugin')) {
        const plugin = String(p.plugin);
        assert.ok(!/auth|jwt|oauth|acl|hmac|ldap|openid|rate-limit|request-transformer/.test(plugin), `KongPlugin ${p.metadata.name}: ${plugin} belongs in the API, not the gateway`);
        assert.ok(!JSON.stringify(p.config ?? {}).includes('hide_credentials'), 'no hide_credentials');
      }
    });

    test('the request-size limit admits every body the API accepts; the correlation id is the API\'s X-Request-Id', () => {
      const size = find(objects(), 'KongPlugin', 'kgents-request-size-limit', 'kgents-api') as K8sObject & { config: { allowed_payload_size: number; size_unit: string } };
      assert.equal(size.config.size_unit, 'kilobytes');
      for (const d of apiDeployments(objects())) {
        const body = Number(containerEnv(objects(), 'kgents-api', container(podSpecOf(d), 'api')).get('BODY_LIMIT_BYTES'));
        assert.ok(size.config.allowed_payload_size * 1024 >= body, `gateway limit ${size.config.allowed_payload_size} KiB below BODY_LIMIT_BYTES ${body}`);
      }
      const corr = find(objects(), 'KongPlugin', 'kgents-correlation-id', 'kgents-api') as K8sObject & { config: { header_name: string; generator: string } };
      assert.equal(corr.config.header_name.toLowerCase(), 'x-request-id');
      assert.equal(corr.config.generator, 'uuid');
    });
  });
}

describe('the routed paths against the API itself', () => {
  let t: TestApp | undefined;
  before(async () => {
    t = await testApp();
  });
  after(async () => {
    await t?.close();
  });

  test('every routed path is served (pending routes listed in test/deploy/pending.ts), and /metrics exists for Prometheus', async (ctx) => {
    assert.ok(t);
    const pending = pendingNames(PENDING_ROUTES);
    const probes: [string, string, number[]][] = [
      ['GET', '/v1/agentese/resolve?path=world.house', [401]],
      ['GET', '/health', [200]],
      ['GET', '/health/saas', [200]],
      ['GET', '/ready', [200]],
      ['POST', '/webhooks/stripe', []],
      ['GET', '/metrics', [200]],
    ];
    for (const [method, url, expected] of probes) {
      const res = await t.app.inject({ method: method as 'GET' | 'POST', url, headers: { 'content-type': 'application/json' }, payload: method === 'POST' ? '{}' : undefined });
      const key = `${method} ${url.split('?')[0] ?? ''}`;
      if (pending.has(key)) {
        if (res.statusCode !== 404) ctx.diagnostic(`pending.ts: ${key} is served now (${res.statusCode}); remove its entry`);
        continue;
      }
      assert.notEqual(res.statusCode, 404, `${key} is routed by the gateway but the API does not serve it`);
      if (expected.length > 0) assert.ok(expected.includes(res.statusCode), `${key}: ${res.statusCode}`);
    }
  });

  test('a UUID from Kong\'s correlation-id plugin is accepted and echoed by the API', async () => {
    assert.ok(t);
    const id = randomUUID();
    const res = await t.app.inject({ url: '/health', headers: { 'x-request-id': id } });
    assert.equal(res.headers['x-request-id'], id);
  });
});
