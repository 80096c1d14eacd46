/** A rollout that could not begin (no stack, an instance down, kubectl cannot read the deployment, keys refused): nothing was changed. */
export class RolloutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RolloutError';
  }
}
