/** A part id that does not exist; the control endpoint answers 404. */
export class UnknownPartError extends Error {
  constructor(id: string, known: readonly string[]) {
    super(`no part "${id.slice(0, 40)}" (parts: ${known.join(', ')})`);
    this.name = 'UnknownPartError';
  }
}

/** The request does not fit the part's (or the stack's) current state; the control endpoint answers 409. */
export class PartStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartStateError';
  }
}
