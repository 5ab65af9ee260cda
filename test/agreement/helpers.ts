import { expect } from 'vitest';
import { exampleAgreement, type Agreement } from '../../src/agreement/index.js';
import { MalusError, type ErrorCode } from '../../src/errors/index.js';
import { generatePartyKeys, type PartyKeys } from '../../src/identity/index.js';

export const VALID_FROM = new Date('2026-01-01T00:00:00Z');
/** The example's window lasts 90 days. */
export const VALID_UNTIL = new Date('2026-04-01T00:00:00Z');

export interface ExampleKeys {
  readonly advertiser: PartyKeys;
  readonly publisher: PartyKeys;
  readonly operator: PartyKeys;
}

export function makeKeys(): ExampleKeys {
  return {
    advertiser: generatePartyKeys('Advertiser'),
    publisher: generatePartyKeys('Publisher'),
    operator: generatePartyKeys('Operator'),
  };
}

export function identities(keys: ExampleKeys) {
  return { advertiser: keys.advertiser.identity, publisher: keys.publisher.identity, operator: keys.operator.identity };
}

export function makeAgreement(keys: ExampleKeys, validFrom = VALID_FROM): Agreement {
  return exampleAgreement(identities(keys), { validFrom });
}

/** A deep, freely mutable copy. */
export function mutable(agreement: Agreement): any {
  return structuredClone(agreement);
}

/** Runs fn, which must throw a MalusError with this code and exactly this message. */
export function expectMalusError(fn: () => unknown, code: ErrorCode, message: string): MalusError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MalusError);
  const error = caught as MalusError;
  expect({ code: error.code, message: error.message }).toEqual({ code, message });
  return error;
}
