import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { sha256 } from '../crypto/index.js';
import { concatBytes, lp, text } from './bytes.js';
import { PROTOCOL, type Run } from './params.js';

// Every key of a run comes from HKDF-SHA256 with a salt bound to the run's parameter digest and an
// info string naming its purpose and parties: one key per purpose, per pair, per run.

function salt(run: Run): Uint8Array {
  return sha256(concatBytes([text(`${PROTOCOL} salt`), text(run.params.collaboration), text(run.params.roundId), lp(run.digest)]));
}

function derive(run: Run, secret: Uint8Array, info: readonly Uint8Array[]): Uint8Array {
  return hkdf(nobleSha256, secret, salt(run), concatBytes([text(PROTOCOL), ...info]), 32);
}

/** s_uv: the key of the pairwise mask u and v share, from X25519(s_sk_u, s_pk_v); symmetric in u, v. */
export function pairwiseMaskKey(run: Run, shared: Uint8Array, u: string, v: string): Uint8Array {
  const [low, high] = u < v ? [u, v] : [v, u];
  return derive(run, shared, [text('pairwise mask'), text(low), text(high)]);
}

/** The key of u's self mask, from its seed b_u. */
export function selfMaskKey(run: Run, seed: Uint8Array, u: string): Uint8Array {
  return derive(run, seed, [text('self mask'), text(u)]);
}

/** The AEAD key for the shares `from` sends `to`, from X25519(c_sk_from, c_pk_to); one per direction. */
export function shareBoxKey(run: Run, shared: Uint8Array, from: string, to: string): Uint8Array {
  return derive(run, shared, [text('share box'), text(from), text(to)]);
}

/** The context a party's secret commitment binds: the run, the party and which secret. */
export function commitmentContext(run: Run, owner: string, secret: 'mask key' | 'self-mask seed'): Uint8Array {
  return concatBytes([text(PROTOCOL), lp(run.digest), text(owner), text(secret)]);
}
