/**
 * Prometheus, alerts, dashboards, logs and traces: the rules pass `promtool check rules` and their
 * unit tests (`promtool test rules`), every alert has a runbook section and a firing and a quiet
 * test, every metric an alert or dashboard queries is exposed by something Prometheus scrapes, every
 * scrape job finds its targets in the manifests, and the collectors' addresses and memory limits fit.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_VARS } from '../../src/config/schema.js';
import {
  OVERLAYS, type K8sObject, type RunningService, apiDeployments, configMap, container, containerEnv, exposedMetricNames, find, memoryBytes,
  podSpecOf, readRepoFile, readYaml, render, repoPath, run, selectorMatches, startService, tool, workloads,
} from './helpers.js';
import { NATS_EXPORTER_METRICS } from './nats-exporter-metrics.js';
import { BACKUP_METRICS } from '../../src/ops/backup/metrics-file.js';
import { PENDING_API_METRICS, PENDING_CLI, pendingNames } from './pending.js';
import { metricNames, selectors } from './promql.js';

const NS = 'kgents-observability';
const RULES_FILE = ['deploy', 'base', 'observability', 'prometheus', 'rules', 'kgents-alerts.yml'] as const;
const RULE_TESTS = ['test', 'deploy', 'promtool', 'kgents-alerts.test.yml'] as const;

interface AlertRule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
interface RuleFile { groups: { name: string; rules: AlertRule[] }[] }
interface RuleTests { rule_files: string[]; tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] }
interface RelabelConfig { source_labels?: string[]; regex?: string; action?: string; target_label?: string }
interface ScrapeConfig {
  job_name: string;
  honor_labels?: boolean;
  kubernetes_sd_configs?: { role: string; namespaces?: { names: string[] } }[];
  static_configs?: { targets: string[] }[];
  relabel_configs?: RelabelConfig[];
}
interface PrometheusConfig { rule_files: string[]; scrape_configs: ScrapeConfig[]; alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] } }
interface DashboardTarget { expr?: string; datasource?: { type: string; uid: string } }
interface DashboardPanel { type: string; title: string; datasource?: { type: string; uid: string }; targets?: DashboardTarget[]; panels?: DashboardPanel[] }
interface Dashboard { uid: string; panels: DashboardPanel[] }

function alerts(): AlertRule[] {
  return readYaml<RuleFile>(...RULES_FILE).groups.flatMap((g) => g.rules).filter((r) => r.alert);
}

function dashboardPanels(): DashboardPanel[] {
  const dash = JSON.parse(readRepoFile('deploy', 'base', 'observability', 'grafana', 'dashboards', 'kgents-api.json')) as Dashboard;
  return dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression an alert or a dashboard evaluates, with where it comes from. */
function promqlExpressions(): { where: string; expr: string }[] {
  const out = alerts().map((a) => ({ where: `alert ${a.alert ?? ''}`, expr: a.expr }));
  for (const p of dashboardPanels()) {
    for (const t of p.targets ?? []) {
      const ds = t.datasource ?? p.datasource;
      if (ds?.type === 'prometheus' && t.expr) out.push({ where: `dashboard panel "${p.title}"`, expr: t.expr });
    }
  }
  return out;
}

function prometheusConfig(objects: readonly K8sObject[]): PrometheusConfig {
  return parse(configMap(objects, 'prometheus-config', NS).data?.['prometheus.yml'] ?? '') as PrometheusConfig;
}

/** Metrics the backup job pushes: from `kgents backup --metrics-file` and from run-backup.sh itself. */
const BACKUP_CLI_METRICS = ['kgents_backup_last_success_timestamp_seconds', 'kgents_backup_last_size_bytes', 'kgents_backup_last_duration_seconds'];
const BACKUP_SCRIPT_METRICS = ['kgents_backup_last_failure_timestamp_seconds', 'kgents_backup_last_exit_code'];
/** Series Prometheus makes itself. */
const PROMETHEUS_SYNTHETIC = new Set(['up']);

describe('alert rules', () => {
  test('promtool check rules passes on the rules file and on the rendered ConfigMap', () => {
    const res = run(tool('promtool'), ['check', 'rules', repoPath(...RULES_FILE)]);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    const dir = mkdtempSync(join(tmpdir(), 'kgents-rules-'));
    try {
      for (const overlay of OVERLAYS) {
        const rendered = configMap(render(overlay), 'prometheus-rules', NS).data?.['kgents-alerts.yml'];
        assert.equal(rendered, readRepoFile(...RULES_FILE), `${overlay}: the deployed rules are the file`);
        const file = join(dir, `${overlay}.yml`);
        writeFileSync(file, rendered);
        const r = run(tool('promtool'), ['check', 'rules', file]);
        assert.equal(r.status, 0, r.stdout + r.stderr);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('promtool test rules: the unit tests of every alert pass', () => {
    const res = run(tool('promtool'), ['test', 'rules', repoPath(...RULE_TESTS)]);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    assert.match(res.stdout + res.stderr, /SUCCESS/);
  });

  test('at least 8 alerts, each with a test where it fires and one where it stays quiet', () => {
    const names = alerts().map((a) => a.alert ?? '');
    assert.ok(names.length >= 8, `${names.length} alerts`);
    const required = ['KgentsCircuitOpen', 'KgentsFallbackQueueDepth', 'KgentsFallbackQueueAge', 'KgentsExporterLag', 'KgentsHighErrorRate',
      'KgentsHighLatencyP95', 'KgentsApiMemoryGrowth', 'KgentsNatsNotReady', 'KgentsBackupMissing', 'KgentsBackupFailed'];
    for (const r of required) assert.ok(names.includes(r), `missing alert ${r}`);
    const tests = readYaml<RuleTests>(...RULE_TESTS);
    assert.deepEqual(tests.rule_files, ['../../../deploy/base/observability/prometheus/rules/kgents-alerts.yml']);
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of names) {
      assert.ok(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length > 0), `${name}: no test where it fires`);
      assert.ok(cases.some((c) => c.alertname === name && (c.exp_alerts ?? []).length === 0), `${name}: no test where it stays quiet`);
    }
  });

  test('every alert has a severity, a summary and a runbook link to a section of docs/runbook-alerts.md', () => {
    const runbook = readRepoFile('docs', 'runbook-alerts.md');
    const anchors = new Set([...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((m) => (m[1] ?? '').trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    for (const a of alerts()) {
      assert.ok(['page', 'ticket'].includes(a.labels?.severity ?? ''), `${a.alert ?? ''}: severity`);
      assert.ok(a.annotations?.summary, `${a.alert ?? ''}: summary`);
      const url = a.annotations?.runbook_url ?? '';
      const anchor = (a.alert ?? '').toLowerCase();
      assert.equal(url, `docs/runbook-alerts.md#${anchor}`, `${a.alert ?? ''}: runbook_url`);
      assert.ok(anchors.has(anchor), `docs/runbook-alerts.md has no section "${a.alert ?? ''}"`);
    }
  });

  for (const overlay of OVERLAYS) {
    test(`${overlay}: KgentsApiMemoryGrowth's threshold is 90% of the API container's memory limit`, () => {
      const rule = alerts().find((a) => a.alert === 'KgentsApiMemoryGrowth');
      const threshold = Number(/>\s*(\d+)/.exec(rule?.expr ?? '')?.[1]);
      for (const d of apiDeployments(render(overlay))) {
        const limit = memoryBytes(container(podSpecOf(d), 'api').resources?.limits?.memory ?? '0');
        assert.equal(threshold, Math.floor(limit * 0.9), `${d.metadata.name}: limit ${limit}; set the rule's threshold to ${Math.floor(limit * 0.9)}`);
      }
    });
  }

  test('KgentsFallbackQueueAge fires well within USAGE_DUPLICATE_WINDOW_S (half of it at most)', () => {
    const rule = alerts().find((a) => a.alert === 'KgentsFallbackQueueAge');
    const threshold = Number(/>\s*(\d+)/.exec(rule?.expr ?? '')?.[1]);
    for (const overlay of OVERLAYS) {
      for (const d of apiDeployments(render(overlay))) {
        const env = containerEnv(render(overlay), 'kgents-api', container(podSpecOf(d), 'api'));
        const window = Number(env.get('USAGE_DUPLICATE_WINDOW_S') ?? CONFIG_VARS.USAGE_DUPLICATE_WINDOW_S.default);
        assert.ok(threshold > 0 && threshold <= window / 2, `threshold ${threshold} s vs window ${window} s`);
      }
    }
  });
});

describe('metrics the alerts and dashboards query exist', () => {
  let service: RunningService | undefined;
  let apiMetrics = new Set<string>();

  before(async () => {
    service = await startService({ INSTANCE_ID: 'deploy-metrics-test', METERING_MODE: 'durable' });
    const res = await fetch(`${service.url}/metrics`);
    apiMetrics = exposedMetricNames(await res.text());
  });

  after(async () => {
    await service?.stop();
  });

  test('each is exposed by the running API, documented by the NATS exporter, pushed by the backup job, or listed as pending', (t) => {
    const pending = pendingNames(PENDING_API_METRICS);
    const backupScript = readRepoFile('deploy', 'base', 'agents', 'backup', 'run-backup.sh');
    for (const m of BACKUP_SCRIPT_METRICS) assert.ok(backupScript.includes(m), `run-backup.sh does not push ${m}`);
    for (const m of BACKUP_CLI_METRICS) assert.ok(backupScript.includes(m), `run-backup.sh does not document ${m}`);
    const backupCliPending = pendingNames(PENDING_CLI).has('backup');
    const backupCliWrites = (name: string): boolean => (BACKUP_METRICS as readonly string[]).includes(name);
    const unknown: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of promqlExpressions()) {
      for (const name of metricNames(expr)) {
        used.add(name);
        const ok = apiMetrics.has(name) || NATS_EXPORTER_METRICS.has(name) || PROMETHEUS_SYNTHETIC.has(name) || pending.has(name)
          || BACKUP_SCRIPT_METRICS.includes(name) || (BACKUP_CLI_METRICS.includes(name) && (backupCliPending || backupCliWrites(name)));
        if (!ok) unknown.push(`${where}: ${name}`);
      }
    }
    assert.deepEqual(unknown, [], 'metrics nobody exposes (add them to test/deploy/pending.ts only if work in progress adds them)');
    for (const p of PENDING_API_METRICS) {
      if (apiMetrics.has(p.name)) t.diagnostic(`pending.ts: ${p.name} is exposed by the API now; remove its entry`);
      if (!used.has(p.name)) t.diagnostic(`pending.ts: ${p.name} is not queried by any alert or dashboard`);
    }
  });

  test('each selector names the job that scrapes its metric', () => {
    const jobs = new Set(prometheusConfig(render('production')).scrape_configs.map((s) => s.job_name));
    const jobOf = (metric: string): string | undefined => {
      if (metric.startsWith('kgents_backup_')) return 'kgents-backup';
      if (metric.startsWith('kgents_')) return 'kgents-api';
      if (NATS_EXPORTER_METRICS.has(metric)) return 'nats';
      return undefined;
    };
    for (const { where, expr } of promqlExpressions()) {
      for (const s of selectors(expr)) {
        const job = s.matchers.get('job');
        assert.ok(job, `${where}: ${s.metric} without a job matcher`);
        const expected = jobOf(s.metric);
        if (expected) assert.equal(job, expected, `${where}: ${s.metric}`);
        if (job === 'kgents-backup') {
          const push = find(render('production'), 'CronJob', 'kgents-backup', 'kgents-agents');
          const env = containerEnv(render('production'), 'kgents-agents', container(podSpecOf(push), 'backup'));
          assert.match(env.get('PUSHGATEWAY_URL') ?? '', /\/metrics\/job\/kgents-backup$/);
          assert.ok(prometheusConfig(render('production')).scrape_configs.some((c) => c.job_name === 'pushgateway' && c.honor_labels === true), 'the pushed job label needs honor_labels');
        } else {
          assert.ok(jobs.has(job), `${where}: job "${job}" is not a scrape job`);
        }
      }
    }
  });
});

for (const overlay of OVERLAYS) {
  describe(`Prometheus configuration in ${overlay}`, () => {
    const objects = (): K8sObject[] => render(overlay);

    test('promtool check config passes (kubernetes_sd_configs swapped for static targets: Debian\'s promtool is built without Kubernetes discovery)', () => {
      const config = prometheusConfig(objects());
      const dir = mkdtempSync(join(tmpdir(), 'kgents-prom-'));
      try {
        mkdirSync(join(dir, 'rules'));
        writeFileSync(join(dir, 'rules', 'kgents-alerts.yml'), configMap(objects(), 'prometheus-rules', NS).data?.['kgents-alerts.yml'] ?? '');
        const local = {
          ...config,
          rule_files: [join(dir, 'rules', '*.yml')],
          scrape_configs: config.scrape_configs.map((s) => {
            if (!s.kubernetes_sd_configs) return s;
            const { kubernetes_sd_configs: _sd, ...rest } = s;
            return { ...rest, static_configs: [{ targets: ['placeholder.invalid:1'] }] };
          }),
        };
        writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(local));
        const res = run(tool('promtool'), ['check', 'config', join(dir, 'prometheus.yml')]);
        assert.equal(res.status, 0, res.stdout + res.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assert.deepEqual(config.rule_files, ['/etc/prometheus/rules/*.yml']);
      const prom = podSpecOf(find(objects(), 'Deployment', 'prometheus', NS));
      const rulesMount = container(prom, 'prometheus').volumeMounts?.find((m) => m.mountPath === '/etc/prometheus/rules');
      const rulesVolume = prom.volumes?.find((v) => v.name === rulesMount?.name);
      assert.ok(rulesVolume?.configMap?.name.startsWith('prometheus-rules'), 'the rules ConfigMap is mounted where rule_files points');
    });

    test('every scrape job finds targets in the manifests, on a port that is named and open to Prometheus', () => {
      const config = prometheusConfig(objects());
      const ws = workloads(objects());
      for (const job of config.scrape_configs) {
        for (const sd of job.kubernetes_sd_configs ?? []) {
          assert.equal(sd.role, 'pod', `${job.job_name}: role`);
          const namespaces = sd.namespaces?.names ?? [];
          const keeps = (job.relabel_configs ?? []).filter((r) => r.action === 'keep');
          const labelKeeps = keeps.filter((r) => r.source_labels?.[0]?.startsWith('__meta_kubernetes_pod_label_'));
          const portKeep = keeps.find((r) => r.source_labels?.[0] === '__meta_kubernetes_pod_container_port_name');
          assert.ok(labelKeeps.length > 0 && portKeep?.regex, `${job.job_name}: keep on a pod label and a port name`);
          const targets = ws.filter((w) => namespaces.includes(w.namespace) && labelKeeps.every((r) => {
            const label = (r.source_labels?.[0] ?? '').slice('__meta_kubernetes_pod_label_'.length);
            return Object.entries(w.labels).some(([k, v]) => k.replace(/[^a-zA-Z0-9_]/g, '_') === label && new RegExp(`^(?:${r.regex ?? '(.*)'})$`).test(v));
          }));
          assert.ok(targets.length > 0, `${job.job_name}: no workload matches`);
          for (const w of targets) {
            const port = w.spec.containers.flatMap((c) => c.ports ?? []).find((p) => new RegExp(`^(?:${portKeep.regex ?? ''})$`).test(p.name ?? ''));
            assert.ok(port, `${job.job_name}: ${w.object.metadata.name} has no port named ${portKeep.regex ?? ''}`);
          }
          assert.ok((job.relabel_configs ?? []).some((r) => r.target_label === 'pod'), `${job.job_name}: alerts group by pod`);
        }
        for (const sc of job.static_configs ?? []) {
          for (const target of sc.targets) {
            if (target.startsWith('localhost:')) continue;
            assertServiceTarget(objects(), target);
          }
        }
      }
      for (const am of config.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets))) assertServiceTarget(objects(), am);
    });
  });

  describe(`Grafana, Loki, Promtail, OTel collector and Tempo in ${overlay}`, () => {
    const objects = (): K8sObject[] => render(overlay);

    test('dashboards are provisioned: the provider path is where the dashboards ConfigMap is mounted, and every panel\'s data source exists', () => {
      const provider = parse(configMap(objects(), 'grafana-dashboard-providers', NS).data?.['dashboards.yaml'] ?? '') as { providers: { options: { path: string } }[] };
      const grafana = podSpecOf(find(objects(), 'Deployment', 'grafana', NS));
      const mounts = container(grafana, 'grafana').volumeMounts ?? [];
      const providerMount = mounts.find((m) => m.mountPath === '/etc/grafana/provisioning/dashboards');
      assert.ok(grafana.volumes?.find((v) => v.name === providerMount?.name)?.configMap?.name.startsWith('grafana-dashboard-providers'));
      for (const p of provider.providers) {
        const mount = mounts.find((m) => m.mountPath === p.options.path);
        const volume = grafana.volumes?.find((v) => v.name === mount?.name);
        assert.ok(volume?.configMap?.name.startsWith('grafana-dashboards-'), `nothing mounted at ${p.options.path}`);
        const cm = objects().find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume?.configMap?.name);
        assert.ok(Object.keys(cm?.data ?? {}).some((k) => k.endsWith('.json')), 'the dashboards ConfigMap holds the dashboard JSON');
      }
      const dsMount = mounts.find((m) => m.mountPath === '/etc/grafana/provisioning/datasources');
      assert.ok(grafana.volumes?.find((v) => v.name === dsMount?.name)?.configMap?.name.startsWith('grafana-datasources'));
      const datasources = (parse(configMap(objects(), 'grafana-datasources', NS).data?.['datasources.yaml'] ?? '') as { datasources: { uid: string; type: string; url: string }[] }).datasources;
      for (const ds of datasources) assertServiceTarget(objects(), new URL(ds.url).host);
      const uids = new Map(datasources.map((d) => [d.uid, d.type]));
      const panels = dashboardPanels().filter((p) => p.type !== 'row');
      for (const p of panels) {
        for (const ds of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) {
          if (ds) assert.equal(uids.get(ds.uid), ds.type, `panel "${p.title}": data source ${ds.uid}`);
        }
      }
      const types = new Set(panels.map((p) => p.type));
      assert.ok(types.has('logs'), 'a Loki logs panel');
      const titles = panels.map((p) => p.title.toLowerCase()).join(' | ');
      for (const topic of ['latency', 'error', 'memory', 'circuit', 'queue']) assert.ok(titles.includes(topic), `no panel about ${topic}`);
    });

    test('the logs panel queries labels Promtail sets, and Promtail pushes to the Loki Service', () => {
      const promtail = parse(configMap(objects(), 'promtail-config', NS).data?.['promtail.yaml'] ?? '') as {
        clients: { url: string }[]; scrape_configs: { relabel_configs: RelabelConfig[] }[];
      };
      const set = new Set(promtail.scrape_configs.flatMap((s) => s.relabel_configs.map((r) => r.target_label)).filter(Boolean));
      for (const p of dashboardPanels().filter((x) => x.type === 'logs')) {
        for (const t of p.targets ?? []) {
          const labels = [...(/^\{([^}]*)\}/.exec(t.expr ?? '')?.[1] ?? '').matchAll(/([a-z_]+)\s*=/g)].map((m) => m[1]);
          assert.ok(labels.length > 0);
          for (const l of labels) assert.ok(l && set.has(l), `logs panel label ${l ?? ''} is not set by Promtail`);
        }
      }
      for (const c of promtail.clients) assertServiceTarget(objects(), new URL(c.url).host);
    });

    test('the OTel collector\'s memory_limiter stays below its container limit, and it exports to the Tempo Service', () => {
      const otel = parse(configMap(objects(), 'otel-collector-config', NS).data?.['config.yaml'] ?? '') as {
        processors: { memory_limiter: { limit_mib: number; spike_limit_mib: number } };
        exporters: { otlp: { endpoint: string } };
        service: { pipelines: { traces: { processors: string[] } } };
      };
      const c = container(podSpecOf(find(objects(), 'Deployment', 'otel-collector', NS)), 'otel-collector');
      const limit = memoryBytes(c.resources?.limits?.memory ?? '0');
      const ml = otel.processors.memory_limiter;
      assert.ok(ml.limit_mib * 1024 * 1024 <= 0.85 * limit, `memory_limiter.limit_mib ${ml.limit_mib} MiB must be at most 85% of the ${limit} byte container limit`);
      assert.ok(ml.spike_limit_mib < ml.limit_mib);
      assert.equal(otel.service.pipelines.traces.processors[0], 'memory_limiter', 'memory_limiter must run first');
      const gomemlimit = c.env?.find((e) => e.name === 'GOMEMLIMIT')?.value ?? '';
      assert.ok(memoryBytes(gomemlimit.replace(/B$/, '')) < limit, 'GOMEMLIMIT below the container limit');
      assertServiceTarget(objects(), otel.exporters.otlp.endpoint);
    });

    test('Alertmanager reads its receiver URL from a mounted Secret', () => {
      const am = parse(configMap(objects(), 'alertmanager-config', NS).data?.['alertmanager.yml'] ?? '') as { receivers: { webhook_configs?: { url_file?: string }[] }[] };
      const pod = podSpecOf(find(objects(), 'Deployment', 'alertmanager', NS));
      for (const w of am.receivers.flatMap((r) => r.webhook_configs ?? [])) {
        const file = w.url_file ?? '';
        const mount = container(pod, 'alertmanager').volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
        assert.ok(mount && pod.volumes?.find((v) => v.name === mount.name)?.secret, `${file} is not in a mounted Secret`);
      }
    });
  });
}

/** "svc.ns.svc.cluster.local:port" or "svc.ns.svc:port" names a Service with that port. */
function assertServiceTarget(objects: readonly K8sObject[], target: string): void {
  const m = /^([a-z0-9-]+)\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?:(\d+)$/.exec(target);
  assert.ok(m?.[1] && m[2] && m[3], `target ${target} is not a Service address`);
  const svc = find(objects, 'Service', m[1], m[2]);
  const ports = (svc.spec as { ports: { port: number }[]; selector: Record<string, string> }).ports;
  assert.ok(ports.some((p) => p.port === Number(m[3])), `Service ${m[2]}/${m[1]} has no port ${m[3]}`);
  const selector = (svc.spec as { selector: Record<string, string> }).selector;
  assert.ok(workloads(objects).some((w) => w.namespace === m[2] && selectorMatches({ matchLabels: selector }, w.labels)), `Service ${m[1]} has no pods`);
}
