import { httpGet } from '../load/target.js';

/** What the chaos scenarios read from a NATS server's /jsz?streams=true. */
export interface JszView {
  /** The server that answered (its server_name), when /varz was read too. */
  readonly server?: string;
  readonly metaLeader: string | null;
  /** The USAGE stream's leader (a server name), null while there is none. */
  readonly streamLeader: string | null;
  /** Followers of the stream and whether each is current. */
  readonly replicas: readonly { readonly name: string; readonly current: boolean }[];
  readonly lastSeq: number | null;
}

interface JszBody {
  readonly meta_cluster?: { readonly leader?: unknown };
  readonly account_details?: readonly { readonly stream_detail?: readonly {
    readonly name?: unknown;
    readonly cluster?: { readonly leader?: unknown; readonly replicas?: readonly { readonly name?: unknown; readonly current?: unknown }[] };
    readonly state?: { readonly last_seq?: unknown };
  }[] }[];
}

/** Parses /jsz?streams=true (nats-server 2.9+) for one stream; throws on something that is not JSON. */
export function parseJsz(body: string, stream = 'USAGE'): JszView {
  const parsed = JSON.parse(body) as JszBody;
  const detail = (parsed.account_details ?? []).flatMap((a) => a.stream_detail ?? []).find((s) => s.name === stream);
  const leader = detail?.cluster?.leader;
  const meta = parsed.meta_cluster?.leader;
  const last = detail?.state?.last_seq;
  return {
    metaLeader: typeof meta === 'string' && meta !== '' ? meta : null,
    streamLeader: typeof leader === 'string' && leader !== '' ? leader : null,
    replicas: (detail?.cluster?.replicas ?? []).map((r) => ({ name: typeof r.name === 'string' ? r.name : '?', current: r.current === true })),
    lastSeq: typeof last === 'number' ? last : null,
  };
}

/** A NATS node of the local stack, by its monitor port. */
export interface MonitorNode {
  readonly id: string;
  readonly monitorUrl: string;
}

/** The server_name of a node (from /varz), undefined when it does not answer. */
export async function serverName(monitorUrl: string): Promise<string | undefined> {
  const r = await httpGet(`${monitorUrl}/varz`, { timeoutMs: 2000 });
  if (!r.ok || r.status !== 200 || !r.body) return undefined;
  try {
    const name = (JSON.parse(r.body) as { server_name?: unknown }).server_name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** /jsz?streams=true of one node; undefined when it does not answer. */
export async function readJsz(monitorUrl: string): Promise<JszView | undefined> {
  const r = await httpGet(`${monitorUrl}/jsz?streams=true`, { timeoutMs: 2000 });
  if (!r.ok || r.status !== 200 || !r.body) return undefined;
  try {
    return parseJsz(r.body);
  } catch {
    return undefined;
  }
}

/**
 * Asks every node (skipping `exclude`, e.g. a killed one) and returns the stream leader's own view
 * when it answered: only the leader knows whether each follower is current (a follower reports its
 * peers as not current). Otherwise the first view naming a leader, else any view. Also returns the
 * server names of the nodes that answered, mapped to their ids.
 */
export async function clusterView(nodes: readonly MonitorNode[], exclude: readonly string[] = []): Promise<{ view: JszView | undefined; names: Map<string, string> }> {
  const names = new Map<string, string>();
  const views: JszView[] = [];
  await Promise.all(nodes.filter((n) => !exclude.includes(n.id)).map(async (node) => {
    const [name, v] = await Promise.all([serverName(node.monitorUrl), readJsz(node.monitorUrl)]);
    if (name !== undefined) names.set(name, node.id);
    if (v) views.push({ ...v, ...(name !== undefined && { server: name }) });
  }));
  return { view: pickView(views), names };
}

/** The leader's own view if present, else one that names a leader, else any. */
export function pickView(views: readonly JszView[]): JszView | undefined {
  return views.find((v) => v.streamLeader !== null && v.server === v.streamLeader) ?? views.find((v) => v.streamLeader !== null) ?? views[0];
}
