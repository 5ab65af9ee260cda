import { MalusError } from '../errors/index.js';

// Fixed point in Z_{2^32}: clip to [-clip, clip], scale, round to the nearest integer, and store
// the result in two's complement. checkRun leaves the headroom (n · round(clip · scale) < 2^31)
// that makes the sum of every party's values come back exactly as a signed 32-bit integer.

export interface Quantization {
  readonly vectorLength: number;
  readonly clip: number;
  readonly scale: number;
}

/** The quantized input as uint32 words; refuses a wrong length or a non-finite entry. */
export function quantize(input: ArrayLike<number>, q: Quantization): Uint32Array {
  if (input.length !== q.vectorLength) {
    throw new MalusError('invalid-input', `the input has ${input.length} entries; the run expects ${q.vectorLength}`);
  }
  const { clip, scale } = q;
  const out = new Uint32Array(q.vectorLength);
  for (let i = 0; i < out.length; i += 1) {
    const x = input[i] ?? Number.NaN;
    if (!Number.isFinite(x)) throw new MalusError('invalid-input', `input entry ${i} is not a finite number`);
    const clipped = x > clip ? clip : x < -clip ? -clip : x;
    // The Uint32Array store reduces the signed integer mod 2^32.
    out[i] = Math.round(clipped * scale);
  }
  return out;
}

/** Reads each word as a signed 32-bit integer and divides by the scale. */
export function dequantize(sum: Uint32Array, scale: number): Float64Array {
  const signed = new Int32Array(sum.buffer, sum.byteOffset, sum.length);
  const out = new Float64Array(sum.length);
  for (let i = 0; i < out.length; i += 1) out[i] = (signed[i] ?? 0) / scale;
  return out;
}
