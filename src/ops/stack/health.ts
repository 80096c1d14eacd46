import { request as httpRequest } from 'node:http';
import { pingRedis } from '../../adapters/local/redis-server.js';
import { StackClient } from './control.js';
import { liveness, type Liveness } from './processes.js';
import { httpStatus } from './stack.js';
import type { PartState, StackState } from './state.js';

export interface PartHealth {
  readonly id: string;
  readonly kind: PartState['kind'] | 'supervisor' | 'balancer';
  readonly pid: number | null;
  /** From /proc: alive, paused (SIGSTOP), gone, or other (the pid now belongs to another process). */
  readonly process: Liveness | 'none';
  readonly healthy: boolean;
  /** What was checked and what it answered, e.g. `/ready 200, /health/saas ok`. */
  readonly detail: string;
  readonly status: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly restarts: number;
  readonly uptime_s: number | null;
  readonly in_rotation?: boolean;
  readonly instance_id?: string;
  readonly log?: string;
}

export interface StackHealth {
  readonly dir: string;
  /** healthy: every part answers; unhealthy: something does not; stopped: nothing runs. */
  readonly status: 'healthy' | 'unhealthy' | 'stopped';
  readonly url: string;
  /** Where the part list came from: the supervisor's control endpoint (live) or stack.json. */
  readonly source: 'control' | 'file';
  readonly parts: readonly PartHealth[];
  readonly balancer?: StackState['balancer'];
}

interface JsonAnswer { readonly status: number; readonly body: unknown; readonly backend: string | undefined }

function getJson(url: string, timeoutMs = 2000): Promise<JsonAnswer> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body, backend: res.headers['x-kgents-backend'] as string | undefined });
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: undefined, backend: undefined }));
    req.end();
  });
}

function saasStatus(answer: JsonAnswer): string {
  const status = (answer.body as { status?: unknown } | undefined)?.status;
  return typeof status === 'string' ? status : answer.status === 0 ? 'no answer' : `HTTP ${answer.status}`;
}

function uptime(startedAt: string | null): number | null {
  return startedAt ? Math.max(0, Math.round((Date.now() - Date.parse(startedAt)) / 1000)) : null;
}

async function checkPart(part: PartState): Promise<PartHealth> {
  const proc: PartHealth['process'] = part.process ? liveness(part.process) : 'none';
  const base = {
    id: part.id, kind: part.kind, pid: part.process?.pid ?? null, process: proc, status: part.status, ports: part.ports,
    restarts: part.restarts, uptime_s: proc === 'alive' || proc === 'paused' ? uptime(part.started_at) : null, log: part.log,
    ...(part.instance_id !== undefined && { instance_id: part.instance_id }), ...(part.in_rotation !== undefined && { in_rotation: part.in_rotation }),
  };
  if (proc !== 'alive') {
    const why = proc === 'paused' ? 'process paused (SIGSTOP)' : proc === 'other' ? 'recorded pid now belongs to another process' : `no process (${part.status})`;
    return { ...base, healthy: false, detail: why };
  }
  switch (part.kind) {
    case 'nats': {
      const s = await httpStatus(part.ports.monitor ?? 0, '/healthz', 1500);
      return { ...base, healthy: s === 200, detail: `/healthz ${s || 'no answer'}` };
    }
    case 'redis': {
      const ok = await pingRedis(part.ports.client ?? 0, 1000);
      return { ...base, healthy: ok, detail: ok ? 'PING PONG' : 'no PONG' };
    }
    case 'api': {
      const port = part.ports.http ?? 0;
      const [ready, saas] = await Promise.all([httpStatus(port, '/ready', 1500), getJson(`http://127.0.0.1:${port}/health/saas`)]);
      const s = saasStatus(saas);
      return { ...base, healthy: ready === 200 && s === 'ok', detail: `/ready ${ready || 'no answer'}, /health/saas ${s}` };
    }
  }
}

/**
 * Checks every part of a stack on its own (process alive per /proc, NATS /healthz, Redis PING,
 * API /ready and /health/saas, the balancer's /health/saas), using the supervisor's live state when
 * its control endpoint answers and stack.json otherwise.
 */
export async function checkStack(state: StackState): Promise<StackHealth> {
  let live: StackState | undefined;
  let source: StackHealth['source'] = 'file';
  const supervisorProc = liveness(state.supervisor);
  if (supervisorProc === 'alive' && state.control.url) {
    try {
      live = await new StackClient(state.control.url, state.control.token).state();
      source = 'control';
    } catch {
      live = undefined;
    }
  }
  const current = live ?? state;
  const parts = await Promise.all(current.parts.map(checkPart));
  const anyRunning = supervisorProc === 'alive' || supervisorProc === 'paused' || parts.some((p) => p.process === 'alive' || p.process === 'paused');
  const supervisor: PartHealth = {
    id: 'supervisor', kind: 'supervisor', pid: state.supervisor.pid, process: supervisorProc, status: current.status,
    healthy: supervisorProc === 'alive' && source === 'control', ports: {}, restarts: 0,
    uptime_s: supervisorProc === 'alive' ? uptime(current.started_at) : null, log: `${state.dir}/logs/supervisor.log`,
    detail: supervisorProc !== 'alive' ? (supervisorProc === 'gone' ? 'not running' : `process ${supervisorProc}`) : source === 'control' ? `control endpoint answers (${current.status})` : 'control endpoint does not answer',
  };
  let balancer: PartHealth | undefined;
  if (current.url) {
    const answer = supervisorProc === 'gone' ? { status: 0, body: undefined, backend: undefined } : await getJson(`${current.url}/health/saas`);
    const s = saasStatus(answer);
    balancer = {
      id: 'balancer', kind: 'balancer', pid: state.supervisor.pid, process: supervisorProc, status: current.status, healthy: s === 'ok',
      ports: { http: current.port }, restarts: 0, uptime_s: supervisor.uptime_s,
      detail: `${current.url}/health/saas ${s}${answer.backend ? ` via ${answer.backend}` : ''}`,
    };
  }
  const all = [supervisor, ...(balancer ? [balancer] : []), ...parts];
  const status: StackHealth['status'] = !anyRunning ? 'stopped' : all.every((p) => p.healthy) && current.status === 'running' ? 'healthy' : 'unhealthy';
  return { dir: state.dir, status, url: current.url, source, parts: all, ...(live?.balancer && { balancer: live.balancer }) };
}
