// C3R's typed values: the one-byte descriptor in front of every sealed value and after every
// fingerprinted value, and the bytes of each type.
//   descriptor byte = (C3R type index << 1) | (1 if NULL)
// CSV values are always STRING (index 1), so a CSV cell's descriptor is 0x02, or 0x03 for NULL.
// Parquet values keep their type. Numbers are big-endian, as Java's ByteBuffer writes them.
import { MalusError } from '../../errors/index.js';

/** C3R's ClientDataType indices (the upper seven bits of the descriptor byte). */
export const C3R_TYPE_INDEX = {
  UNKNOWN: 0,
  STRING: 1,
  BIGINT: 2,
  BOOLEAN: 3,
  CHAR: 4,
  DATE: 5,
  DECIMAL: 6,
  DOUBLE: 7,
  FLOAT: 8,
  INT: 9,
  SMALLINT: 10,
  TIMESTAMP: 11,
  VARCHAR: 12,
} as const;

/** The C3R types Malus can seal, open and fingerprint. */
export type C3rDataType = 'string' | 'bigint' | 'int' | 'smallint' | 'boolean' | 'date' | 'double' | 'float';

export type C3rValue =
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'bigint'; readonly value: bigint }
  | { readonly type: 'int' | 'smallint' | 'double' | 'float'; readonly value: number }
  /** Days since 1970-01-01. */
  | { readonly type: 'date'; readonly value: number }
  | { readonly type: 'boolean'; readonly value: boolean };

const INDEX_OF: Record<C3rDataType, number> = {
  string: C3R_TYPE_INDEX.STRING,
  bigint: C3R_TYPE_INDEX.BIGINT,
  int: C3R_TYPE_INDEX.INT,
  smallint: C3R_TYPE_INDEX.SMALLINT,
  boolean: C3R_TYPE_INDEX.BOOLEAN,
  date: C3R_TYPE_INDEX.DATE,
  double: C3R_TYPE_INDEX.DOUBLE,
  float: C3R_TYPE_INDEX.FLOAT,
};

const TYPE_OF = new Map<number, C3rDataType>(Object.entries(INDEX_OF).map(([type, index]) => [index, type as C3rDataType]));
const NAME_OF = new Map<number, string>(Object.entries(C3R_TYPE_INDEX).map(([name, index]) => [index, name]));

/** Fixed sizes; a string has as many bytes as its UTF-8 encoding. */
const FIXED_BYTES: Partial<Record<C3rDataType, number>> = { bigint: 8, int: 4, smallint: 2, boolean: 1, date: 4, double: 8, float: 4 };

export function descriptorByte(type: C3rDataType, isNull: boolean): number {
  return (INDEX_OF[type] << 1) | (isNull ? 1 : 0);
}

export function parseDescriptorByte(byte: number): { readonly type: C3rDataType; readonly isNull: boolean } {
  const index = byte >> 1;
  const type = TYPE_OF.get(index);
  if (type === undefined) {
    const name = NAME_OF.get(index);
    throw new MalusError(
      'invalid-input',
      name === undefined ? `the value has unknown C3R type index ${index}` : `the value is of C3R type ${name}, which Malus does not open`,
    );
  }
  return { type, isNull: (byte & 1) === 1 };
}

/** A string value (what every CSV cell is to C3R). */
export function c3rString(value: string): C3rValue {
  return { type: 'string', value };
}

/** The bytes of a value, without its descriptor. */
export function valueBytes(value: C3rValue): Buffer {
  switch (value.type) {
    case 'string':
      return Buffer.from(value.value, 'utf8');
    case 'bigint': {
      const out = Buffer.alloc(8);
      out.writeBigInt64BE(value.value);
      return out;
    }
    case 'int':
    case 'date': {
      const out = Buffer.alloc(4);
      out.writeInt32BE(value.value);
      return out;
    }
    case 'smallint': {
      const out = Buffer.alloc(2);
      out.writeInt16BE(value.value);
      return out;
    }
    case 'boolean':
      return Buffer.from([value.value ? 1 : 0]);
    case 'double': {
      const out = Buffer.alloc(8);
      out.writeDoubleBE(value.value);
      return out;
    }
    case 'float': {
      const out = Buffer.alloc(4);
      out.writeFloatBE(value.value);
      return out;
    }
  }
}

/** The value a descriptor's type and the bytes after it stand for. */
export function valueFromBytes(type: C3rDataType, bytes: Buffer): C3rValue {
  const size = FIXED_BYTES[type];
  if (size !== undefined && bytes.length !== size) {
    throw new MalusError('invalid-input', `a C3R ${type} value has ${size} bytes, but this one has ${bytes.length}`);
  }
  switch (type) {
    case 'string': {
      const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      try {
        return { type, value: text.decode(bytes) };
      } catch {
        throw new MalusError('invalid-input', 'a C3R string value is not valid UTF-8');
      }
    }
    case 'bigint':
      return { type, value: bytes.readBigInt64BE() };
    case 'int':
    case 'date':
      return { type, value: bytes.readInt32BE() };
    case 'smallint':
      return { type, value: bytes.readInt16BE() };
    case 'boolean': {
      const byte = bytes[0];
      if (byte !== 0 && byte !== 1) throw new MalusError('invalid-input', 'a C3R boolean value is neither 0 nor 1');
      return { type, value: byte === 1 };
    }
    case 'double':
      return { type, value: bytes.readDoubleBE() };
    case 'float':
      return { type, value: bytes.readFloatBE() };
  }
}

/**
 * The form in which C3R fingerprints a value: every type of an equivalence class is HMACed as the
 * class's representative, so equal numbers match whatever their width. INT and SMALLINT become
 * BIGINT; STRING, BOOLEAN and DATE are their own class. C3R does not fingerprint DOUBLE or FLOAT.
 */
export function fingerprintType(type: C3rDataType): C3rDataType {
  if (type === 'int' || type === 'smallint') return 'bigint';
  if (type === 'double' || type === 'float') {
    throw new MalusError('invalid-input', `C3R does not fingerprint ${type.toUpperCase()} values (only strings, integers, booleans and dates)`);
  }
  return type;
}

export function toFingerprintForm(value: C3rValue): C3rValue {
  const type = fingerprintType(value.type);
  if (type === value.type) return value;
  return { type: 'bigint', value: BigInt(value.value) };
}

/** How a value is written into a CSV cell. */
export function valueText(value: C3rValue): string {
  switch (value.type) {
    case 'string':
      return value.value;
    case 'date':
      return new Date(value.value * 86_400_000).toISOString().slice(0, 10);
    default:
      return String(value.value);
  }
}
