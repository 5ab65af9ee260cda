import { beforeAll, describe, expect, it } from 'vitest';
import { isMalusError } from '../../src/errors/index.js';
import { checkValues, parseAmount } from '../../src/psi/amounts.js';
import { boundedDlog } from '../../src/psi/dlog.js';
import { addCiphertexts, decryptionShare, elgamalKey, encryptOwn, rerandomize } from '../../src/psi/elgamal.js';
import { psiGroup, type PsiGroup } from '../../src/psi/group.js';
import { inThread, type KernelExecutor } from '../../src/psi/kernel.js';

let group: PsiGroup;
let here: KernelExecutor;
beforeAll(async () => {
  group = await psiGroup();
  here = inThread(group.sodium);
});

describe('exponential ElGamal on ristretto255', () => {
  it('adds under encryption; a re-randomized sum opens with one decryption share', async () => {
    const key = elgamalKey(group);
    const values = [0n, 1n, 12_345n, 99_999n, 7n];
    const cts = await encryptOwn(group, here, key, values);
    let total: Uint8Array = new Uint8Array(64);
    for (let i = 0; i < values.length; i++) total = addCiphertexts(group, total, cts.subarray(i * 64, i * 64 + 64));
    const fresh = rerandomize(group, key.publicKey, total);
    expect(fresh.subarray(0, 32)).not.toEqual(total.subarray(0, 32));
    const share = decryptionShare(group, key.secret, fresh.subarray(0, 32), 'c1');
    const target = group.sub(fresh.subarray(32), share);
    expect(await boundedDlog(group, here, target, 20)).toBe(112_352n);
  });

  it('encrypts the same value to unlinkable ciphertexts', async () => {
    const key = elgamalKey(group);
    const cts = await encryptOwn(group, here, key, [5n, 5n]);
    expect(cts.subarray(0, 64)).not.toEqual(cts.subarray(64, 128));
  });
});

describe('the bounded discrete logarithm', () => {
  it('finds 0, 1 and 2^bits - 1, and nothing at or above 2^bits', async () => {
    const at = (v: bigint): Uint8Array => (v === 0n ? group.identity : group.mulBase(group.scalarFromInteger(v)));
    for (const bits of [1, 8, 17]) {
      const top = 2n ** BigInt(bits) - 1n;
      expect(await boundedDlog(group, here, at(0n), bits)).toBe(0n);
      expect(await boundedDlog(group, here, at(1n), bits)).toBe(1n);
      expect(await boundedDlog(group, here, at(top), bits)).toBe(top);
      expect(await boundedDlog(group, here, at(top + 1n), bits)).toBeUndefined();
    }
    expect(await boundedDlog(group, here, group.sodium.crypto_core_ristretto255_random(), 12)).toBeUndefined();
    expect(await boundedDlog(group, here, new Uint8Array(32).fill(0xff), 12)).toBeUndefined();
    await expect(boundedDlog(group, here, at(1n), 41)).rejects.toThrow(/1 to 40 bits/);
  });
});

describe('sum values', () => {
  it('scales decimal amounts exactly', () => {
    expect(parseAmount('12.34', 2)).toBe(1234n);
    expect(parseAmount('12', 2)).toBe(1200n);
    expect(parseAmount('0.5', 2)).toBe(50n);
    expect(parseAmount('7.100', 2)).toBe(710n);
    expect(parseAmount('123456789012345678.99', 2)).toBe(12345678901234567899n);
    for (const bad of ['-1', '1e3', '01.2', '1.', '.5', ' 1', '1,5', '']) expect(() => parseAmount(bad, 2)).toThrow(/not a non-negative decimal/);
    expect(() => parseAmount('1.234', 2)).toThrow(/more than 2 decimals/);
    expect(() => parseAmount('1', -1)).toThrow(/0 to 18 decimals/);
  });

  it('lists every value that is not a non-negative integer', () => {
    expect(checkValues([0, 5, 2n ** 60n], 'values')).toEqual([0n, 5n, 2n ** 60n]);
    let caught: unknown;
    try {
      checkValues([1, -2, 0.5, 3, -1n], 'values');
    } catch (error) {
      caught = error;
    }
    expect(isMalusError(caught, 'invalid-input')).toBe(true);
    expect((caught as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['values[1]', 'values[2]', 'values[4]']);
  });
});
