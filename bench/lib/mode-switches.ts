/** Sums of kgents_dependency_mode_switches_total by component and mode entered, from /metrics text. */
export function modeSwitches(metricsText: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('kgents_dependency_mode_switches_total{')) continue;
    const component = /component="([^"]*)"/.exec(line)?.[1] ?? '?';
    const to = /[{,]to="([^"]*)"/.exec(line)?.[1] ?? '?';
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const key = `${component} -> ${to}`;
    sums.set(key, (sums.get(key) ?? 0) + (Number.isFinite(value) ? value : 0));
  }
  return sums;
}
