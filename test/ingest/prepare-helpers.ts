import { statSync } from 'node:fs';
import { expect } from 'vitest';
import { MalusError } from '../../src/errors/index.js';
import { prepareDataset, type PrepareParameters } from '../../src/ingest/index.js';

/** Runs prepareDataset, which must fail with a MalusError and leave no output folder behind. */
export async function prepareError(parameters: PrepareParameters): Promise<MalusError> {
  try {
    await prepareDataset(parameters);
  } catch (error) {
    expect(error).toBeInstanceOf(MalusError);
    expect(() => statSync(parameters.out)).toThrow();
    return error as MalusError;
  }
  throw new Error('prepareDataset did not fail');
}
