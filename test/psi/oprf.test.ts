import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../../src/crypto/index.js';
import { psiGroup, type PsiGroup } from '../../src/psi/group.js';
import { dstPrime, expandMessageXmd } from '../../src/psi/xmd.js';

// RFC 9497 ristretto255-SHA512 vectors (../shared/vectors/oprf). A minimal OPRF, VOPRF and POPRF
// evaluation (no proofs) on top of the PSI group checks HashToGroup, HashToScalar, scalar
// multiplication, addition and inversion end to end against BlindedElement, EvaluationElement
// and Output, and DeriveKeyPair against skSm and pkSm.

interface Vector {
  readonly name: string;
  readonly data: {
    readonly Input: readonly string[];
    readonly Info?: string;
    readonly Blind: readonly string[];
    readonly BlindedElement: readonly string[];
    readonly EvaluationElement: readonly string[];
    readonly Output: readonly string[];
  };
}
interface Mode {
  readonly mode: string;
  readonly common: { readonly Seed: string; readonly KeyInfo: string; readonly skSm: string; readonly pkSm?: string };
  readonly tests: readonly Vector[];
}
interface Suite {
  readonly suite: string;
  readonly modes: readonly Mode[];
}

const suites = JSON.parse(readFileSync('../shared/vectors/oprf/rfc9497-vectors.json', 'utf8')) as Suite[];
const ristretto = suites.find((s) => s.suite === 'ristretto255-SHA512');
const hex = (text: string): Uint8Array => fromHex(text) ?? new Uint8Array();
const i2osp2 = (n: number): Uint8Array => Uint8Array.of(n >>> 8, n & 0xff);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const MODE_BYTE: Record<string, number> = { 'OPRF Mode': 0, 'VOPRF Mode': 1, 'POPRF Mode': 2 };

function suiteFor(group: PsiGroup, modeName: string) {
  const contextString = concat(utf8('OPRFV1-'), Uint8Array.of(MODE_BYTE[modeName] ?? 0xff), utf8('-ristretto255-SHA512'));
  const hashToGroup = group.hasher(concat(utf8('HashToGroup-'), contextString));
  const hashToScalar = (message: Uint8Array, dst = concat(utf8('HashToScalar-'), contextString)): Uint8Array =>
    group.reduceScalar(expandMessageXmd(group.sha512, message, dstPrime(dst), 64));
  const deriveKeyPair = (seed: Uint8Array, info: Uint8Array): Uint8Array => {
    const input = concat(seed, i2osp2(info.length), info);
    for (let counter = 0; counter < 256; counter++) {
      const sk = hashToScalar(concat(input, Uint8Array.of(counter)), concat(utf8('DeriveKeyPair'), contextString));
      if (sk.some((b) => b !== 0)) return sk;
    }
    throw new Error('DeriveKeyPairError');
  };
  return { hashToGroup, hashToScalar, deriveKeyPair };
}

let group: PsiGroup;
beforeAll(async () => {
  group = await psiGroup();
});

describe('RFC 9497 ristretto255-SHA512 vectors', () => {
  it('are present for the three modes', () => {
    expect(ristretto?.modes.map((m) => m.mode)).toEqual(['OPRF Mode', 'VOPRF Mode', 'POPRF Mode']);
  });

  for (const mode of ristretto?.modes ?? []) {
    describe(mode.mode, () => {
      it('DeriveKeyPair gives skSm (and pkSm = skSm G)', () => {
        const { deriveKeyPair } = suiteFor(group, mode.mode);
        const sk = deriveKeyPair(hex(mode.common.Seed), hex(mode.common.KeyInfo));
        expect(toHex(sk)).toBe(mode.common.skSm);
        if (mode.common.pkSm !== undefined) expect(toHex(group.mulBase(sk))).toBe(mode.common.pkSm);
      });

      for (const vector of mode.tests) {
        it(`${vector.name}: Blind, BlindEvaluate and Finalize give BlindedElement, EvaluationElement and Output`, () => {
          const { hashToGroup, hashToScalar } = suiteFor(group, mode.mode);
          const sk = hex(mode.common.skSm);
          const info = vector.data.Info === undefined ? undefined : hex(vector.data.Info);
          // POPRF evaluates under the tweaked key t = skS + HashToScalar("Info" || len || info), inverted.
          const evaluationKey =
            info === undefined ? sk : group.invertScalar(group.addScalars(sk, hashToScalar(concat(utf8('Info'), i2osp2(info.length), info))));
          for (const [i, inputHex] of vector.data.Input.entries()) {
            const input = hex(inputHex);
            const blind = hex(vector.data.Blind[i] ?? '');
            const blinded = group.mul(blind, hashToGroup(input));
            expect(toHex(blinded)).toBe(vector.data.BlindedElement[i]);
            const evaluated = group.mul(evaluationKey, blinded);
            expect(toHex(evaluated)).toBe(vector.data.EvaluationElement[i]);
            const unblinded = group.mul(group.invertScalar(blind), evaluated);
            const framed =
              info === undefined
                ? concat(i2osp2(input.length), input, i2osp2(unblinded.length), unblinded, utf8('Finalize'))
                : concat(i2osp2(input.length), input, i2osp2(info.length), info, i2osp2(unblinded.length), unblinded, utf8('Finalize'));
            expect(toHex(group.sha512(framed))).toBe(vector.data.Output[i]);
          }
        });
      }
    });
  }
});
