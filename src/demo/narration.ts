import { MalusError } from '../errors/index.js';

// Small helpers the demo's steps share.

/** A value an earlier step made; a step that runs out of order fails loudly. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new MalusError('internal', `demo step ran before ${what} existed`);
  return value;
}

/** The first 16 characters of a hash or key, for narration. */
export const short = (hex: string): string => `${hex.slice(0, 16)}…`;
