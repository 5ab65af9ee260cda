import { isEd25519PublicKey, sha256 } from '../crypto/index.js';
import { MalusError, type Issue } from '../errors/index.js';
import { PARTY_ID_PATTERN, partyIdFor } from '../identity/index.js';
import { concatBytes, list, lp, text, u32 } from './bytes.js';

// The parameters of one secure-aggregation run, checked twice: on their own (they must make sense
// and leave headroom so a sum cannot wrap) and against the set the agreement allows (fail closed:
// the caller states every bound).

export const PROTOCOL = 'malus.secagg/v1';
/** Masked values live in Z_{2^32}; the quantized sum of every party must fit in a signed int32. */
export const MODULUS_BITS = 32;
const INT32_MAX = 2 ** 31 - 1;
/** A hard cap whatever the agreement says: 2^26 entries is a 256 MiB masked vector. */
export const MAX_VECTOR_LENGTH = 2 ** 26;
/** The most parties a run may have (and so the longest list a message may carry). */
export const MAX_PARTIES = 10_000;
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface SecAggParty {
  /** The party id, derived from its Ed25519 identity key (src/identity). */
  readonly id: string;
  /** The raw 32-byte Ed25519 identity key the party signs its round messages with. */
  readonly signingKey: Uint8Array;
}

export interface SecAggParams {
  readonly collaboration: string;
  /** Names this aggregation (a training round, a reporting period): unique per run, never reused. */
  readonly roundId: string;
  readonly parties: readonly SecAggParty[];
  /** t: shares needed to reconstruct, and the fewest parties that may remain at any round. */
  readonly threshold: number;
  readonly vectorLength: number;
  /** Each input entry is clipped to [-clip, clip] before quantization. */
  readonly clip: number;
  /** Fixed point: an entry x becomes round(x · scale). */
  readonly scale: number;
}

export interface Range {
  readonly min: number;
  readonly max: number;
}

/** What the agreement allows; a run outside any of these ranges is refused. */
export interface SecAggAllowed {
  readonly vectorLength: Range;
  readonly threshold: Range;
  readonly clip: Range;
  readonly scale: Range;
}

/** A checked run: the parameters plus what every round needs derived from them once. */
export interface Run {
  readonly params: SecAggParams;
  /** Party ids in ascending order; the x-coordinate of a party's shares is its position plus one. */
  readonly ids: readonly string[];
  readonly xOf: ReadonlyMap<string, number>;
  readonly keyOf: ReadonlyMap<string, Uint8Array>;
  /** round(clip · scale): the largest magnitude of a quantized entry. */
  readonly bound: number;
  /** SHA-256 of the canonical parameters: every party's advertisement carries it. */
  readonly digest: Uint8Array;
}

function f64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, value);
  return out;
}

function paramsDigest(params: SecAggParams, ids: readonly string[], keyOf: ReadonlyMap<string, Uint8Array>): Uint8Array {
  return sha256(concatBytes([
    text(`${PROTOCOL} params`),
    text(params.collaboration),
    text(params.roundId),
    list(ids, (id) => concatBytes([text(id), lp(keyOf.get(id) ?? new Uint8Array())])),
    u32(params.threshold),
    u32(params.vectorLength),
    f64(params.clip),
    f64(params.scale),
  ]));
}

function checkOwn(params: SecAggParams): Issue[] {
  const issues: Issue[] = [];
  const bad = (path: string, message: string): void => {
    issues.push({ path, message });
  };
  if (!ID_PATTERN.test(params.collaboration)) bad('collaboration', 'expected 1 to 128 letters, digits or ._:-');
  if (!ID_PATTERN.test(params.roundId)) bad('roundId', 'expected 1 to 128 letters, digits or ._:-');
  const seen = new Set<string>();
  for (const [i, party] of params.parties.entries()) {
    if (!PARTY_ID_PATTERN.test(party.id)) bad(`parties[${i}].id`, 'expected a party id (20 lower-case hex characters)');
    else if (seen.has(party.id)) bad(`parties[${i}].id`, `party ${party.id} appears twice`);
    seen.add(party.id);
    if (!isEd25519PublicKey(party.signingKey)) bad(`parties[${i}].signingKey`, 'not a valid Ed25519 public key');
    else if (partyIdFor(party.signingKey) !== party.id) bad(`parties[${i}].id`, 'does not derive from signingKey');
  }
  const n = params.parties.length;
  if (n < 2 || n > MAX_PARTIES) bad('parties', `expected 2 to ${MAX_PARTIES} parties`);
  const t = params.threshold;
  if (!Number.isInteger(t) || t < 2 || t > n) bad('threshold', `expected an integer from 2 to the number of parties (${n})`);
  const length = params.vectorLength;
  if (!Number.isInteger(length) || length < 1 || length > MAX_VECTOR_LENGTH) bad('vectorLength', `expected an integer from 1 to ${MAX_VECTOR_LENGTH}`);
  if (!Number.isFinite(params.clip) || params.clip <= 0) bad('clip', 'expected a positive finite number');
  if (!Number.isFinite(params.scale) || params.scale <= 0) bad('scale', 'expected a positive finite number');
  if (issues.length === 0) {
    const bound = Math.round(params.clip * params.scale);
    if (bound < 1) bad('scale', 'clip · scale rounds to 0: every input would quantize to 0');
    // Headroom: n values in [-bound, bound] sum into [-n·bound, n·bound], which must fit in int32.
    else if (n * bound > INT32_MAX) bad('clip', `${n} parties · round(clip · scale) = ${n * bound} leaves no headroom in 2^32 (at most ${INT32_MAX})`);
  }
  return issues;
}

function checkAllowed(params: SecAggParams, allowed: SecAggAllowed): Issue[] {
  const issues: Issue[] = [];
  for (const field of ['vectorLength', 'threshold', 'clip', 'scale'] as const) {
    const range = allowed[field];
    const value = params[field];
    if (!(value >= range.min && value <= range.max)) {
      issues.push({ path: field, message: `${value} is outside the allowed range [${range.min}, ${range.max}]` });
    }
  }
  return issues;
}

/** Checks the parameters, then that the agreement allows them; returns the run or throws. */
export function checkRun(params: SecAggParams, allowed: SecAggAllowed): Run {
  const own = checkOwn(params);
  if (own.length > 0) {
    throw new MalusError('invalid-input', 'secure aggregation parameters are invalid', {
      issues: own,
      reasons: [{ code: 'secagg-params', message: 'secure aggregation parameters are invalid' }],
    });
  }
  const outside = checkAllowed(params, allowed);
  if (outside.length > 0) {
    throw new MalusError('computation-not-allowed', 'the agreement does not allow these secure aggregation parameters', {
      issues: outside,
      reasons: [{ code: 'secagg-not-allowed', message: 'the agreement does not allow these secure aggregation parameters' }],
    });
  }
  const ids = params.parties.map((p) => p.id).sort();
  const keyOf = new Map(params.parties.map((p) => [p.id, p.signingKey] as const));
  return {
    params,
    ids,
    xOf: new Map(ids.map((id, i) => [id, i + 1] as const)),
    keyOf,
    bound: Math.round(params.clip * params.scale),
    digest: paramsDigest(params, ids, keyOf),
  };
}

/** Bonawitz et al.'s honest-majority choice, ⌊n/2⌋ + 1; an agreement may ask for more. */
export function recommendedThreshold(parties: number): number {
  return Math.floor(parties / 2) + 1;
}
