import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { listArchives, MANIFEST } from './archive.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "7d", "36h", "90m", "2w" -> milliseconds; undefined when the text is not such a duration. */
export function parseRetain(text: string): number | undefined {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0);
  return ms > 0 ? ms : undefined;
}

export interface PruneResult {
  readonly deleted: string[];
  readonly kept: string[];
}

/**
 * Deletes this tool's archives in `dir` started more than `retainMs` before `now`: finished ones
 * only when their manifest says `kgents backup` made them, abandoned `.partial` ones by name. Never
 * deletes `keep` (the archive just written) nor anything else in the directory.
 */
export async function pruneArchives(dir: string, retainMs: number, now: Date, keep?: string): Promise<PruneResult> {
  const deleted: string[] = [];
  const kept: string[] = [];
  const cutoff = now.getTime() - retainMs;
  for (const a of await listArchives(dir)) {
    if (a.name === keep || a.time.getTime() >= cutoff) {
      if (!a.partial) kept.push(a.name);
      continue;
    }
    if (!a.partial && !(await madeByThisTool(a.path))) continue;
    await rm(a.path, { recursive: true, force: true });
    deleted.push(a.name);
  }
  return { deleted, kept };
}

async function madeByThisTool(path: string): Promise<boolean> {
  try {
    const m = JSON.parse(await readFile(join(path, MANIFEST), 'utf8')) as { tool?: unknown };
    return m.tool === 'kgents backup';
  } catch {
    return false;
  }
}
