import { describe, expect, it } from 'vitest';
import { fromHex, generateEncryptionKeyPair, hpkeOpen, hpkeSeal, utf8 } from '../../src/crypto/index.js';

const hex = (text: string): Uint8Array => {
  const bytes = fromHex(text);
  if (bytes === undefined) throw new Error(`bad hex in test: ${text}`);
  return bytes;
};

// RFC 9180 Appendix A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode).
const A1 = {
  info: 'Ode on a Grecian Urn',
  skRm: '4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8',
  enc: '37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431',
  pt: '4265617574792069732074727574682c20747275746820626561757479',
  aad0: '436f756e742d30',
  ct0: 'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a',
};

describe('HPKE (RFC 9180)', () => {
  it('opens the A.1.1 vector ciphertext with the recipient key', async () => {
    const opened = await hpkeOpen(hex(A1.skRm), { enc: hex(A1.enc), ciphertext: hex(A1.ct0) }, A1.info, hex(A1.aad0), 'aes-128-gcm');
    expect(opened).toEqual(hex(A1.pt));
  });

  it('refuses the vector with a flipped ciphertext byte, another aad or another info', async () => {
    const ct = hex(A1.ct0);
    ct[3] = (ct[3] ?? 0) ^ 1;
    expect(await hpkeOpen(hex(A1.skRm), { enc: hex(A1.enc), ciphertext: ct }, A1.info, hex(A1.aad0), 'aes-128-gcm')).toBeUndefined();
    const good = { enc: hex(A1.enc), ciphertext: hex(A1.ct0) };
    expect(await hpkeOpen(hex(A1.skRm), good, A1.info, utf8('Count-1'), 'aes-128-gcm')).toBeUndefined();
    expect(await hpkeOpen(hex(A1.skRm), good, 'Ode on a Grecian Vase', hex(A1.aad0), 'aes-128-gcm')).toBeUndefined();
  });

  it('seals with AES-256-GCM to a Malus X25519 key and opens only with that key, info and aad', async () => {
    const recipient = generateEncryptionKeyPair();
    const sealed = await hpkeSeal(recipient.publicKey, utf8('a data key'), 'malus.test/v1', utf8('context'));
    expect(sealed.enc).toHaveLength(32);
    expect(sealed.ciphertext).toHaveLength('a data key'.length + 16);
    expect(await hpkeOpen(recipient.secretKey, sealed, 'malus.test/v1', utf8('context'))).toEqual(utf8('a data key'));
    expect(await hpkeOpen(generateEncryptionKeyPair().secretKey, sealed, 'malus.test/v1', utf8('context'))).toBeUndefined();
    expect(await hpkeOpen(recipient.secretKey, sealed, 'malus.other/v1', utf8('context'))).toBeUndefined();
    expect(await hpkeOpen(recipient.secretKey, sealed, 'malus.test/v1', utf8('other'))).toBeUndefined();
    const enc = new Uint8Array(sealed.enc);
    enc[0] = (enc[0] ?? 0) ^ 0x80;
    expect(await hpkeOpen(recipient.secretKey, { ...sealed, enc }, 'malus.test/v1', utf8('context'))).toBeUndefined();
    expect(await hpkeOpen(recipient.secretKey, { ...sealed, enc: sealed.enc.subarray(1) }, 'malus.test/v1', utf8('context'))).toBeUndefined();
  });

  it('refuses a recipient key of the wrong length', async () => {
    await expect(hpkeSeal(new Uint8Array(31), utf8('x'), 'i', utf8(''))).rejects.toThrow(RangeError);
  });
});
