import { parseDictionary } from 'structured-headers';

// A narrowing layer over structured-headers' parser. Its declared types lean on DOM names
// (BufferSource) that this project's lib settings do not define, so parsed values are taken as
// unknown here and checked by hand; hostile input deserves that anyway.

export type SfParams = ReadonlyMap<string, unknown>;

export interface SfItem {
  readonly value: unknown;
  readonly params: SfParams;
}

export type SfMember =
  | { readonly kind: 'item'; readonly item: SfItem }
  | { readonly kind: 'inner-list'; readonly items: readonly SfItem[]; readonly params: SfParams };

/** An RFC 8941 dictionary, or undefined when `text` is not one. */
export function parseSfDictionary(text: string): ReadonlyMap<string, SfMember> | undefined {
  let parsed: ReadonlyMap<unknown, unknown>;
  try {
    parsed = parseDictionary(text);
  } catch {
    return undefined;
  }
  const members = new Map<string, SfMember>();
  for (const [key, raw] of parsed) {
    const member = toMember(raw);
    if (typeof key !== 'string' || member === undefined) return undefined;
    members.set(key, member);
  }
  return members;
}

function toMember(raw: unknown): SfMember | undefined {
  const pair = toPair(raw);
  if (pair === undefined) return undefined;
  const [first, params] = pair;
  if (!Array.isArray(first)) return { kind: 'item', item: { value: first, params } };
  const entries: readonly unknown[] = first;
  const items: SfItem[] = [];
  for (const entry of entries) {
    const item = toPair(entry);
    if (item === undefined || Array.isArray(item[0])) return undefined;
    items.push({ value: item[0], params: item[1] });
  }
  return { kind: 'inner-list', items, params };
}

/** The parser represents items and inner lists alike as [value, parameters]. */
function toPair(raw: unknown): readonly [unknown, SfParams] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const pair: readonly unknown[] = raw;
  if (pair.length !== 2) return undefined;
  const params = toParams(pair[1]);
  return params === undefined ? undefined : [pair[0], params];
}

function toParams(raw: unknown): SfParams | undefined {
  if (!(raw instanceof Map)) return undefined;
  const source: ReadonlyMap<unknown, unknown> = raw;
  const params = new Map<string, unknown>();
  for (const [key, value] of source) {
    if (typeof key !== 'string') return undefined;
    params.set(key, value);
  }
  return params;
}
