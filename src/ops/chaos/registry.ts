/** Every `kgents chaos` scenario, in the order `kgents chaos all` runs them. Add yours here (see scenario.ts). */
import type { Scenario } from './scenario.js';
import { apiKill } from './scenarios/api-kill.js';
import { natsKill, natsKillMeta } from './scenarios/nats-kill.js';
import { networkPartition } from './scenarios/network-partition.js';
import { memoryPressure } from './scenarios/memory-pressure.js';
import { observabilityDown } from './scenarios/observability-down.js';
import { redisDown } from './scenarios/redis-down.js';

export const SCENARIOS: readonly Scenario[] = [
  apiKill,
  natsKill,
  natsKillMeta,
  networkPartition,
  memoryPressure,
  redisDown,
  observabilityDown,
];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
