import { createCipheriv, createDecipheriv } from 'node:crypto';
import { concatBytes, lp, text } from './bytes.js';
import { ELEMENT_BYTES } from './field.js';
import { PROTOCOL, type Run } from './params.js';
import { refusal } from './reasons.js';

// The sealed pair of shares one party sends another through the server: ChaCha20-Poly1305 under a
// key derived for this run and this direction only (so a fixed nonce is safe), with the run and
// both ids as associated data, so the server can neither read a box nor pass it off as another's.

const NONCE = new Uint8Array(12);
const TAG_BYTES = 16;
const PLAIN_BYTES = 2 * ELEMENT_BYTES;
export const BOX_BYTES = PLAIN_BYTES + TAG_BYTES;

export interface SharePair {
  /** u's share of its mask key s_sk_u, for the recipient. */
  readonly keyShare: Uint8Array;
  /** u's share of its self-mask seed b_u, for the recipient. */
  readonly seedShare: Uint8Array;
}

function associatedData(run: Run, from: string, to: string): Uint8Array {
  return concatBytes([text(`${PROTOCOL} share box`), lp(run.digest), text(from), text(to)]);
}

export function sealShares(run: Run, key: Uint8Array, from: string, to: string, pair: SharePair): Uint8Array {
  if (pair.keyShare.length !== ELEMENT_BYTES || pair.seedShare.length !== ELEMENT_BYTES) throw new RangeError('a share is 33 bytes');
  const cipher = createCipheriv('chacha20-poly1305', key, NONCE, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(run, from, to), { plaintextLength: PLAIN_BYTES });
  const sealed = Buffer.concat([cipher.update(concatBytes([pair.keyShare, pair.seedShare])), cipher.final(), cipher.getAuthTag()]);
  return new Uint8Array(sealed);
}

export function openShares(run: Run, key: Uint8Array, from: string, to: string, box: Uint8Array): SharePair {
  const undecryptable = refusal('decryption-failed', 'secagg-undecryptable', `the shares ${from} sent ${to} do not open`);
  if (box.length !== BOX_BYTES) throw undecryptable;
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, NONCE, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(run, from, to), { plaintextLength: PLAIN_BYTES });
    decipher.setAuthTag(box.subarray(PLAIN_BYTES));
    const plain = Buffer.concat([decipher.update(box.subarray(0, PLAIN_BYTES)), decipher.final()]);
    return { keyShare: new Uint8Array(plain.subarray(0, ELEMENT_BYTES)), seedShare: new Uint8Array(plain.subarray(ELEMENT_BYTES)) };
  } catch {
    throw undecryptable;
  }
}
