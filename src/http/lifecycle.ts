export type LifecycleState = 'starting' | 'ready' | 'draining';

/** The instance's readiness, as /ready reports it and the shutdown sequence drives it. */
export class Lifecycle {
  private current: LifecycleState = 'starting';
  private readonly listeners: ((state: LifecycleState) => void)[] = [];

  get state(): LifecycleState {
    return this.current;
  }

  markReady(): void {
    if (this.current === 'starting') this.set('ready');
  }

  drain(): void {
    this.set('draining');
  }

  onChange(listener: (state: LifecycleState) => void): void {
    this.listeners.push(listener);
  }

  private set(state: LifecycleState): void {
    this.current = state;
    for (const l of this.listeners) l(state);
  }
}
