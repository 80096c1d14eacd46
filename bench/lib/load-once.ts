import autocannon from 'autocannon';
import type { Stack } from './stack.js';
import type { Target } from './targets.js';

/** The pid of the process that answers a target (bench/instructions.ts and bench/perf.ts watch it). */
export function serverPid(stack: Stack, server: Target['server']): number {
  const pid = stack.pids[server];
  if (pid === undefined) throw new Error(`no pid for the ${server} server`);
  return pid;
}

/**
 * One autocannon load of a target from this process, for a number of requests or seconds;
 * resolves with the requests answered. Fails on any error or non-2xx answer.
 */
export function loadOnce(target: Target, stack: Stack, connections: number, until: { readonly amount: number } | { readonly durationS: number }): Promise<number> {
  const job = target.job(stack);
  return new Promise((resolve, reject) => {
    autocannon({
      url: job.url, method: job.method, headers: { ...job.headers }, ...(job.body !== undefined && { body: job.body }),
      connections, pipelining: 1, timeout: 60,
      ...('amount' in until ? { amount: until.amount } : { duration: until.durationS }),
    }, (err: unknown, result: autocannon.Result) => {
      if (err) reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
      else if (result.non2xx > 0 || result.errors > 0) reject(new Error(`${target.name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`));
      else resolve(result.requests.total);
    });
  });
}
