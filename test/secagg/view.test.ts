import { describe, expect, it } from 'vitest';
import { decodeMessage, quantize } from '../../src/secagg/index.js';
import { makeParams, makeParties, playRound, startSimulation } from './helpers.js';
import { partyRespond } from '../../src/secagg/index.js';

// What the server sees of an input must look uniform on Z_{2^32} whatever the input. The bounds
// are about 7 standard deviations wide: a false failure is a one-in-10^11 event.

const L = 16_384;

function maskedVectors(inputs: readonly (readonly number[])[]): Uint32Array[] {
  const parties = makeParties(inputs.length);
  const params = makeParams(parties, { threshold: 2, vectorLength: L, clip: 1, scale: 1 << 20 });
  const sim = startSimulation(parties, params, inputs);
  playRound(sim, 0);
  playRound(sim, 1);
  return sim.outbox.map((o) => {
    const m = decodeMessage(partyRespond(sim.states.get(o.to)!, o.message).message);
    if (m.kind !== 'masked-input') throw new Error('expected masked input');
    return new Uint32Array(m.masked.buffer, m.masked.byteOffset, L);
  });
}

function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i += 1) s += values[i]!;
  return s / values.length;
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i += 1) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('the server\'s view', () => {
  it('a masked vector of all-zero inputs looks uniform', () => {
    const zeros = Array.from({ length: 3 }, () => new Array<number>(L).fill(0));
    for (const masked of maskedVectors(zeros)) {
      // The mean of L uniform words: 2^31 ± 2^32 / sqrt(12 L).
      const sd = 2 ** 32 / Math.sqrt(12 * L);
      expect(Math.abs(mean(masked) - 2 ** 31)).toBeLessThan(7 * sd);
      // Chi-square of the top byte over 256 cells: mean 255, standard deviation sqrt(510).
      const cells = new Array<number>(256).fill(0);
      for (const w of masked) cells[w >>> 24]! += 1;
      const expected = L / 256;
      const chi2 = cells.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
      expect(chi2).toBeLessThan(255 + 7 * Math.sqrt(510));
    }
  });

  it('a masked vector does not correlate with its input, nor with another party\'s', () => {
    // A ramp input, the worst case for a weak mask: its entries span the whole clip range.
    const ramp = Array.from({ length: L }, (_, i) => -1 + (2 * i) / (L - 1));
    const [a, b] = maskedVectors([ramp, ramp]);
    const quantized = new Int32Array(quantize(ramp, { vectorLength: L, clip: 1, scale: 1 << 20 }).buffer);
    // Independent vectors: correlation about N(0, 1/L), so 7/sqrt(L) ≈ 0.055.
    expect(Math.abs(correlation(a!, quantized))).toBeLessThan(7 / Math.sqrt(L));
    expect(Math.abs(correlation(a!, b!))).toBeLessThan(7 / Math.sqrt(L));
  });
});
