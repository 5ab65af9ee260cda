// Exponential ElGamal on ristretto255, the additively homomorphic encryption of the sum mode:
// Enc(v) = (r G, v G + r Y) under Y = x G. Only the key holder encrypts here (the sender, over its
// own values), so v G + r Y = (v + r x) G and each ciphertext costs two fixed-base multiplications.
// docs/psi.md compares it with Paillier.
import type { PsiGroup } from './group.js';
import { runBatch, type KernelExecutor } from './kernel.js';
import { MalusError } from '../errors/index.js';

export const CIPHERTEXT_BYTES = 64;

export interface ElGamalKey {
  readonly secret: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function elgamalKey(group: PsiGroup): ElGamalKey {
  const secret = group.randomScalar();
  return { secret, publicKey: group.mulBase(secret) };
}

/** Ciphertexts of `values` (each below 2^252), packed n x 64 (C1 || C2), by the holder of the key. */
export async function encryptOwn(group: PsiGroup, executor: KernelExecutor, key: ElGamalKey, values: readonly bigint[]): Promise<Uint8Array> {
  const scalars = new Uint8Array(values.length * 64);
  for (const [i, value] of values.entries()) {
    const r = group.randomScalar();
    scalars.set(r, i * 64);
    scalars.set(group.addScalars(group.scalarFromInteger(value), group.mulScalars(r, key.secret)), i * 64 + 32);
  }
  const result = await runBatch(executor, 'base', new Uint8Array(0), scalars);
  scalars.fill(0);
  // v + r x = 0 has probability 2^-252; a fresh run is the remedy.
  if ('failedAt' in result) throw new MalusError('internal', 'an ElGamal encryption hit the zero scalar; run again');
  return result.output;
}

/** The component-wise sum of two ciphertexts, which encrypts the sum of their values. */
export function addCiphertexts(group: PsiGroup, a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(CIPHERTEXT_BYTES);
  out.set(group.add(a.subarray(0, 32), b.subarray(0, 32)), 0);
  out.set(group.add(a.subarray(32, 64), b.subarray(32, 64)), 32);
  return out;
}

/** Adds an encryption of zero with fresh randomness s, so the result is unlinkable to its terms. */
export function rerandomize(group: PsiGroup, publicKey: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const s = group.randomScalar();
  const zero = new Uint8Array(CIPHERTEXT_BYTES);
  zero.set(group.mulBase(s), 0);
  zero.set(group.mul(s, publicKey, 'the public key'), 32);
  s.fill(0);
  return addCiphertexts(group, ciphertext, zero);
}

/** x C1: with it, the holder of C2 recovers C2 - x C1 = v G and nothing else. */
export function decryptionShare(group: PsiGroup, secret: Uint8Array, c1: Uint8Array, where: string): Uint8Array {
  return group.mul(secret, c1, where);
}
