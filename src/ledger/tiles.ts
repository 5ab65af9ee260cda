// C2SP tlog-tiles addressing: tiles of height 8 (256 hashes wide), paths `tile/<L>/<N>[.p/<W>]`
// and `tile/entries/<N>[.p/<W>]`, where N is written in groups of three digits and every group but
// the last carries an `x` prefix (1234067 -> x001/x234/067). Entry bundles are a sequence of
// 2-byte big-endian lengths each followed by that many bytes of entry.

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
const MAX_LEVEL = 63;

export function encodeTileIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('tile index must be a non-negative integer');
  const groups: string[] = [];
  let rest = n;
  do {
    groups.unshift(String(rest % 1000).padStart(3, '0'));
    rest = Math.floor(rest / 1000);
  } while (rest > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

function widthSuffix(width: number): string {
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw new RangeError(`tile width must be 1..${TILE_WIDTH}`);
  return width === TILE_WIDTH ? '' : `.p/${width}`;
}

export function tilePath(level: number, index: number, width: number): string {
  if (!Number.isInteger(level) || level < 0 || level > MAX_LEVEL) throw new RangeError('tile level must be 0..63');
  return `tile/${level}/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

export function entriesPath(index: number, width: number): string {
  return `tile/entries/${encodeTileIndex(index)}${widthSuffix(width)}`;
}

export type TileAddress =
  | { kind: 'hash'; level: number; index: number; width: number }
  | { kind: 'entries'; index: number; width: number };

const TILE_PATH = /^tile\/(entries|\d{1,2})\/((?:x\d{3}\/)*)(\d{3})(?:\.p\/(\d{1,3}))?$/;

/** Parses `tile/…` paths strictly: only the canonical spelling of each address is accepted. */
export function parseTilePath(path: string): TileAddress | undefined {
  const match = TILE_PATH.exec(path);
  if (match === null) return undefined;
  const [, levelText = '', prefix = '', last = '', widthText] = match;
  const digits = `${prefix.replace(/[x/]/g, '')}${last}`;
  if (digits.length > 15) return undefined;
  const index = Number(digits);
  const width = widthText === undefined ? TILE_WIDTH : Number(widthText);
  if (widthText !== undefined && (width < 1 || width >= TILE_WIDTH || String(width) !== widthText)) return undefined;
  // Leading zero groups (x000/…) would be a second spelling of the same index.
  if (encodeTileIndex(index) !== `${prefix}${last}`) return undefined;
  if (levelText === 'entries') return { kind: 'entries', index, width };
  const level = Number(levelText);
  if (String(level) !== levelText || level > MAX_LEVEL) return undefined;
  return { kind: 'hash', level, index, width };
}

export function encodeEntryBundle(entries: readonly Uint8Array[]): Uint8Array {
  const total = entries.reduce((sum, e) => sum + 2 + e.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const entry of entries) {
    if (entry.length > 0xffff) throw new RangeError('an entry in a bundle must be at most 65535 bytes');
    out[offset] = entry.length >> 8;
    out[offset + 1] = entry.length & 0xff;
    out.set(entry, offset + 2);
    offset += 2 + entry.length;
  }
  return out;
}

export function decodeEntryBundle(bytes: Uint8Array): Uint8Array[] {
  const entries: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 2 > bytes.length) throw new RangeError(`entry bundle truncated at byte ${offset}`);
    const length = ((bytes[offset] ?? 0) << 8) | (bytes[offset + 1] ?? 0);
    if (offset + 2 + length > bytes.length) throw new RangeError(`entry bundle truncated at byte ${offset}`);
    entries.push(bytes.slice(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  return entries;
}

/** Every tile (full or partial) of every level that a tree of this size has. */
export function tilesForSize(size: number): { level: number; index: number; width: number }[] {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('size must be a non-negative integer');
  const tiles: { level: number; index: number; width: number }[] = [];
  // At level L the tree has floor(size / 256^L) complete nodes of height 8L.
  for (let level = 0, nodes = size; nodes > 0; level++, nodes = Math.floor(nodes / TILE_WIDTH)) {
    for (let index = 0; index * TILE_WIDTH < nodes; index++) {
      tiles.push({ level, index, width: Math.min(TILE_WIDTH, nodes - index * TILE_WIDTH) });
    }
  }
  return tiles;
}
