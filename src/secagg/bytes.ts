import { refusal } from './reasons.js';

// The canonical binary encoding every secagg message, signature input and KDF label uses: fixed
// order, big-endian u32 lengths and counts, no optional fields. A decoder that accepts only this
// form makes "decode then re-encode" the identity, so a signature covers exactly what was parsed.

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function u8(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError('u8 out of range');
  return Uint8Array.of(value);
}

export function u32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError('u32 out of range');
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** A length-prefixed byte string. */
export function lp(bytes: Uint8Array): Uint8Array {
  return concatBytes([u32(bytes.length), bytes]);
}

export function text(value: string): Uint8Array {
  return lp(new TextEncoder().encode(value));
}

export function list<T>(items: readonly T[], encode: (item: T) => Uint8Array): Uint8Array {
  return concatBytes([u32(items.length), ...items.map(encode)]);
}

/** A read position over one message; the decoders below advance it and refuse anything short. */
export interface Cursor {
  readonly bytes: Uint8Array;
  offset: number;
}

export function cursor(bytes: Uint8Array): Cursor {
  return { bytes, offset: 0 };
}

function malformed(what: string): Error {
  return refusal('invalid-input', 'secagg-malformed', `malformed secagg message: ${what}`);
}

export function readFixed(c: Cursor, size: number): Uint8Array {
  if (c.offset + size > c.bytes.length) throw malformed('truncated');
  const out = c.bytes.subarray(c.offset, c.offset + size);
  c.offset += size;
  return out;
}

export function readU8(c: Cursor): number {
  return readFixed(c, 1)[0] ?? 0;
}

export function readU32(c: Cursor): number {
  const b = readFixed(c, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
}

export function readLp(c: Cursor, maxSize: number): Uint8Array {
  const size = readU32(c);
  if (size > maxSize) throw malformed(`a field of ${size} bytes is over its limit of ${maxSize}`);
  return readFixed(c, size);
}

export function readText(c: Cursor, maxSize: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(readLp(c, maxSize));
  } catch (error) {
    if (error instanceof TypeError) throw malformed('text is not UTF-8');
    throw error;
  }
}

export function readList<T>(c: Cursor, maxCount: number, read: (c: Cursor) => T): T[] {
  const count = readU32(c);
  if (count > maxCount) throw malformed(`a list of ${count} items is over its limit of ${maxCount}`);
  const out: T[] = [];
  for (let i = 0; i < count; i += 1) out.push(read(c));
  return out;
}

export function expectEnd(c: Cursor): void {
  if (c.offset !== c.bytes.length) throw malformed(`${c.bytes.length - c.offset} trailing bytes`);
}
