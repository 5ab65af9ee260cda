import { z } from 'zod';
import { fromBase64Url, hpkeOpen, hpkeSeal, toBase64Url, utf8 } from '../../crypto/index.js';
import { MalusError } from '../../errors/index.js';
import { decodeEncryptionKey, type PartyKeys } from '../../identity/index.js';

// Between `dataset prepare` and `dataset upload` the data key waits in the output folder, sealed
// with HPKE to the owner's own X25519 key: the folder can be copied or backed up without exposing
// it, and only the owner's key file opens it.

export const SEALED_DATA_KEY_FORMAT = 'malus.sealed-data-key/v1';
const INFO = 'malus.dataset-key-at-rest/v1';

export const sealedDataKeySchema = z.strictObject({
  format: z.literal(SEALED_DATA_KEY_FORMAT),
  collaboration: z.string().min(1).max(64),
  dataset: z.string().min(1).max(64),
  owner: z.string().regex(/^[0-9a-f]{20}$/),
  enc: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  ciphertext: z.string().regex(/^[A-Za-z0-9_-]+$/),
});

export type SealedDataKey = z.infer<typeof sealedDataKeySchema>;

const aad = (p: { collaboration: string; dataset: string; owner: string }): Uint8Array =>
  utf8([SEALED_DATA_KEY_FORMAT, p.collaboration, p.dataset, p.owner].join('\0'));

export async function sealDataKeyForOwner(
  dataKey: Uint8Array,
  where: { collaboration: string; dataset: string },
  keys: PartyKeys,
): Promise<SealedDataKey> {
  const owner = keys.identity.id;
  const publicKey = decodeEncryptionKey(keys.identity.encryptionKey);
  if (!('key' in publicKey)) throw new MalusError('key-file-invalid', `the key file's encryption key: ${publicKey.problem}`);
  const sealed = await hpkeSeal(publicKey.key, dataKey, INFO, aad({ ...where, owner }));
  return { format: SEALED_DATA_KEY_FORMAT, ...where, owner, enc: toBase64Url(sealed.enc), ciphertext: toBase64Url(sealed.ciphertext) };
}

export async function openOwnerDataKey(sealed: SealedDataKey, keys: PartyKeys): Promise<Uint8Array> {
  if (sealed.owner !== keys.identity.id) {
    throw new MalusError('forbidden', `the data key is sealed to party ${sealed.owner}, not to ${keys.identity.id} whose key file was given`);
  }
  const enc = fromBase64Url(sealed.enc);
  const ciphertext = fromBase64Url(sealed.ciphertext);
  const key =
    enc === undefined || ciphertext === undefined ? undefined : await hpkeOpen(keys.encryptionSecret, { enc, ciphertext }, INFO, aad(sealed));
  if (key?.length !== 32) throw new MalusError('invalid-input', 'the sealed data key does not open with this key file, or was altered');
  return key;
}
