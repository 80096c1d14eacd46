import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from 'node:os';

export interface MachineInfo {
  readonly date: string;
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  /** 1/5/15-minute load averages when the bench started: other work on a shared machine shows here. */
  readonly loadAvgAtStart: readonly number[];
}

export function machineInfo(): MachineInfo {
  return {
    date: new Date().toISOString(),
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${osType()} ${release()}`,
    loadAvgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function formatMachine(m: MachineInfo): string {
  return `${m.date}  ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}, load avg ${m.loadAvgAtStart.join(' ')}`;
}

/** The commit the bench ran against, with "+dirty" when src/ has uncommitted changes (others' work in progress). */
export function gitRevision(cwd: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}
