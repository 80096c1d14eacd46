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
  private readonly sources = new Map<string, { source: () => ComponentStatus; optional: boolean }>();

  /**
   * `optional`: a component the operator may leave unconfigured (the OpenMeter exporter); its
   * `disabled` state is reported but does not make the service degraded. Anything else not `ok` does.
   */
  register(name: string, source: () => ComponentStatus, options: { optional?: boolean } = {}): void {
    this.sources.set(name, { source, optional: options.optional === true });
  }

  snapshot(): { status: 'ok' | 'degraded'; components: Record<string, ComponentStatus> } {
    const components: Record<string, ComponentStatus> = {};
    let healthy = true;
    for (const [name, { source, optional }] of this.sources) {
      let state: ComponentStatus;
      try {
        state = source();
      } catch (err) {
        state = { status: 'down', error: err instanceof Error ? err.message : String(err) };
      }
      components[name] = state;
      if (state.status !== 'ok' && !(optional && state.status === 'disabled')) healthy = false;
    }
    return { status: healthy ? 'ok' : 'degraded', components };
  }
}
