/** One dependency's state as /health/saas shows it; extra fields are component-specific. */
export interface ComponentStatus {
  readonly status: 'ok' | 'degraded' | 'down' | 'disabled';
  readonly [field: string]: unknown;
}

/**
 * Components report their state synchronously from what they already know (connection events,
 * background probes). /health/saas therefore never waits on a dependency and answers in
 * microseconds even when one hangs.
 */
export class HealthRegistry {
  private readonly sources = new Map<string, () => ComponentStatus>();

  register(name: string, source: () => ComponentStatus): void {
    this.sources.set(name, source);
  }

  snapshot(): { status: 'ok' | 'degraded'; components: Record<string, ComponentStatus> } {
    const components: Record<string, ComponentStatus> = {};
    let healthy = true;
    for (const [name, source] of this.sources) {
      let state: ComponentStatus;
      try {
        state = source();
      } catch (err) {
        state = { status: 'down', error: err instanceof Error ? err.message : String(err) };
      }
      components[name] = state;
      if (state.status !== 'ok') healthy = false;
    }
    return { status: healthy ? 'ok' : 'degraded', components };
  }
}
