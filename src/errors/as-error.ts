/** What was thrown, as an Error: a promise is rejected, and a callback told, with an Error only. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
