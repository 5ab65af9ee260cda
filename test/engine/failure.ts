import { MalusError } from '../../src/errors/index.js';

/** The MalusError a promise rejects with; anything else (or success) fails the test. */
export async function failure(promise: Promise<unknown>): Promise<MalusError> {
  const outcome = await promise.then(
    () => new Error('expected a failure'),
    (error: unknown) => error,
  );
  if (!(outcome instanceof MalusError)) throw outcome;
  return outcome;
}
