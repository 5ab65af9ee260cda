// ristretto255 (RFC 9496) through libsodium-wrappers-sumo, the fastest well-kept implementation we
// found in Node (about 8x noble's pure JS for a scalar multiplication; bench/psi.bench.ts measures
// it). Every point that arrives from the other party is checked here before anything else uses it.
import sodium from 'libsodium-wrappers-sumo';
import { MalusError } from '../errors/index.js';
import { dstPrime, expandMessageXmd } from './xmd.js';

export type Sodium = typeof sodium;

export const ELEMENT_BYTES = 32;
export const SCALAR_BYTES = 32;
const IDENTITY = new Uint8Array(ELEMENT_BYTES);

/** A hash-to-group function bound to one domain separation tag (the DST_prime is computed once). */
export type HashToGroup = (message: Uint8Array) => Uint8Array;

/** The group operations the protocol needs, bound to a ready libsodium. */
export interface PsiGroup {
  readonly sodium: Sodium;
  readonly identity: Uint8Array;
  /** hash_to_ristretto255, RFC 9380 Appendix B: expand_message_xmd(SHA-512) to 64 bytes, then the RFC 9496 §4.3.4 map. */
  readonly hasher: (dst: Uint8Array) => HashToGroup;
  /** The 64 uniform bytes hash_to_ristretto255 maps; the heavy map runs in the kernel (kernel.ts). */
  readonly uniformer: (dst: Uint8Array) => (message: Uint8Array) => Uint8Array;
  readonly sha512: (message: Uint8Array) => Uint8Array;
  /** A uniform scalar in [1, L). */
  readonly randomScalar: () => Uint8Array;
  readonly invertScalar: (scalar: Uint8Array) => Uint8Array;
  readonly negateScalar: (scalar: Uint8Array) => Uint8Array;
  readonly addScalars: (a: Uint8Array, b: Uint8Array) => Uint8Array;
  readonly mulScalars: (a: Uint8Array, b: Uint8Array) => Uint8Array;
  /** A 64-byte little-endian integer reduced mod L (HashToScalar in RFC 9497). */
  readonly reduceScalar: (wide: Uint8Array) => Uint8Array;
  /** A non-negative integer below L as a 32-byte little-endian scalar. */
  readonly scalarFromInteger: (value: bigint) => Uint8Array;
  /** scalar * element; `where` names the element in the error if it is invalid or the product is the identity. */
  readonly mul: (scalar: Uint8Array, element: Uint8Array, where?: string) => Uint8Array;
  readonly mulBase: (scalar: Uint8Array) => Uint8Array;
  readonly add: (p: Uint8Array, q: Uint8Array, where?: string) => Uint8Array;
  readonly sub: (p: Uint8Array, q: Uint8Array, where?: string) => Uint8Array;
  /** A canonical encoding of a group element (the identity included). */
  readonly isCanonical: (element: Uint8Array) => boolean;
  /** A canonical encoding of an element other than the identity: what every honest message holds. */
  readonly isElement: (element: Uint8Array) => boolean;
  /** Throws a MalusError naming `where` unless `element` is a canonical, non-identity element. */
  readonly checkElement: (element: Uint8Array, where: string) => void;
}

let loading: Promise<PsiGroup> | undefined;

/** The group, once libsodium has loaded (the first call waits for it; later calls share it). */
export function psiGroup(): Promise<PsiGroup> {
  loading ??= sodium.ready.then(() => makeGroup(sodium));
  return loading;
}

export function invalidElement(where: string, detail = 'is not a valid ristretto255 element (invalid or non-canonical encoding, or the identity)'): MalusError {
  const message = `${where} ${detail}`;
  return new MalusError('invalid-input', message, { issues: [{ path: where, message: detail }] });
}

function isIdentity(element: Uint8Array): boolean {
  let acc = 0;
  for (const byte of element) acc |= byte;
  return acc === 0;
}

function makeGroup(lib: Sodium): PsiGroup {
  const sha512 = (message: Uint8Array): Uint8Array => lib.crypto_hash_sha512(message);
  const isCanonical = (element: Uint8Array): boolean => element.length === ELEMENT_BYTES && lib.crypto_core_ristretto255_is_valid_point(element);
  const isElement = (element: Uint8Array): boolean => isCanonical(element) && !isIdentity(element);
  const uniformer = (dst: Uint8Array): ((message: Uint8Array) => Uint8Array) => {
    const tagPrime = dstPrime(dst);
    return (message) => expandMessageXmd(sha512, message, tagPrime, 64);
  };
  const scalar = (value: Uint8Array, what: string): Uint8Array => {
    if (value.length !== SCALAR_BYTES) throw new MalusError('internal', `${what} must be ${SCALAR_BYTES} bytes`);
    return value;
  };

  return Object.freeze({
    sodium: lib,
    identity: IDENTITY,
    hasher(dst: Uint8Array): HashToGroup {
      const uniform = uniformer(dst);
      return (message) => lib.crypto_core_ristretto255_from_hash(uniform(message));
    },
    uniformer,
    sha512,
    randomScalar: () => lib.crypto_core_ristretto255_scalar_random(),
    invertScalar: (s: Uint8Array) => lib.crypto_core_ristretto255_scalar_invert(scalar(s, 'a scalar')),
    negateScalar: (s: Uint8Array) => lib.crypto_core_ristretto255_scalar_negate(scalar(s, 'a scalar')),
    addScalars: (a: Uint8Array, b: Uint8Array) => lib.crypto_core_ristretto255_scalar_add(scalar(a, 'a scalar'), scalar(b, 'a scalar')),
    mulScalars: (a: Uint8Array, b: Uint8Array) => lib.crypto_core_ristretto255_scalar_mul(scalar(a, 'a scalar'), scalar(b, 'a scalar')),
    reduceScalar(wide: Uint8Array): Uint8Array {
      if (wide.length !== 64) throw new MalusError('internal', 'a wide scalar must be 64 bytes');
      return lib.crypto_core_ristretto255_scalar_reduce(wide);
    },
    scalarFromInteger(value: bigint): Uint8Array {
      // 2^252 < L: every integer below 2^252 is its own residue.
      if (value < 0n || value >= 1n << 252n) throw new MalusError('internal', 'a small scalar must be in [0, 2^252)');
      const out = new Uint8Array(SCALAR_BYTES);
      let rest = value;
      for (let i = 0; i < SCALAR_BYTES && rest > 0n; i++) {
        out[i] = Number(rest & 0xffn);
        rest >>= 8n;
      }
      return out;
    },
    mul(s: Uint8Array, element: Uint8Array, where = 'an element'): Uint8Array {
      // libsodium refuses an invalid encoding and an identity result alike; L is prime, so for a
      // non-zero scalar that means the input was invalid or the identity.
      if (element.length !== ELEMENT_BYTES) throw invalidElement(where);
      try {
        return lib.crypto_scalarmult_ristretto255(scalar(s, 'a scalar'), element);
      } catch {
        throw invalidElement(where);
      }
    },
    mulBase(s: Uint8Array): Uint8Array {
      try {
        return lib.crypto_scalarmult_ristretto255_base(scalar(s, 'a scalar'));
      } catch {
        throw new MalusError('internal', 'a base multiplication by the zero scalar');
      }
    },
    add(p: Uint8Array, q: Uint8Array, where = 'an element'): Uint8Array {
      if (!isCanonical(p) || !isCanonical(q)) throw invalidElement(where, 'is not a canonical ristretto255 encoding');
      return lib.crypto_core_ristretto255_add(p, q);
    },
    sub(p: Uint8Array, q: Uint8Array, where = 'an element'): Uint8Array {
      if (!isCanonical(p) || !isCanonical(q)) throw invalidElement(where, 'is not a canonical ristretto255 encoding');
      return lib.crypto_core_ristretto255_sub(p, q);
    },
    isCanonical,
    isElement,
    checkElement(element: Uint8Array, where: string): void {
      if (!isElement(element)) throw invalidElement(where);
    },
  });
}
