import { serializeInnerList, type InnerList, type Item } from 'structured-headers';
import { MalusError } from '../errors/index.js';
import { ComponentResolver } from './components.js';
import type { HttpRequestMessage } from './fields.js';

/**
 * Signature parameters in the order they are serialised (a Map keeps insertion order). Strings
 * become sf-strings, integers sf-integers.
 */
export type SignatureParameters = ReadonlyMap<string, string | number | boolean>;

/** Parsed parameters may hold any bare item; serialisation rejects what it cannot write. */
type AnyParameters = ReadonlyMap<string, unknown>;

export type SignatureBaseResult =
  | { readonly ok: true; readonly base: string }
  | { readonly ok: false; readonly kind: 'missing-component' | 'invalid'; readonly detail: string };

/** The inner list that both Signature-Input and the `@signature-params` line carry. */
export function serializeSignatureParams(components: readonly string[], params: SignatureParameters): string {
  return serializeAnyParams(components, params);
}

function serializeAnyParams(components: readonly string[], params: AnyParameters): string {
  const items: Item[] = components.map((name) => [name, new Map<string, never>()]);
  const list: InnerList = [items, new Map(params)];
  return serializeInnerList(list);
}

/** RFC 9421 §2.5 without throwing: verification turns each failure into a reason. */
export function buildSignatureBase(
  message: HttpRequestMessage,
  components: readonly string[],
  params: AnyParameters,
): SignatureBaseResult {
  const resolver = new ComponentResolver(message);
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const name of components) {
    if (name === '@signature-params') {
      return { ok: false, kind: 'invalid', detail: '@signature-params cannot be covered' };
    }
    const value = resolver.value(name);
    if (value.kind === 'absent') return { ok: false, kind: 'missing-component', detail: value.detail };
    if (value.kind === 'invalid') return { ok: false, kind: 'invalid', detail: value.detail };
    // §2.5: a component listed twice makes the base ambiguous.
    if (seen.has(name)) return { ok: false, kind: 'invalid', detail: `component ${name} is covered twice` };
    seen.add(name);
    // Names were checked to be tokens, so quoting them is their sf-string serialisation.
    lines.push(`"${name}": ${value.value}`);
  }
  let paramsLine: string;
  try {
    paramsLine = serializeAnyParams(components, params);
  } catch {
    return { ok: false, kind: 'invalid', detail: 'signature parameters cannot be serialised' };
  }
  lines.push(`"@signature-params": ${paramsLine}`);
  return { ok: true, base: lines.join('\n') };
}

/**
 * The signature base of RFC 9421 §2.5 for `message`: one `"name": value` line per covered
 * component, then the `@signature-params` line. Throws `invalid-input` when it cannot be built.
 */
export function signatureBase(
  message: HttpRequestMessage,
  components: readonly string[],
  params: SignatureParameters,
): string {
  const result = buildSignatureBase(message, components, params);
  if (!result.ok) throw new MalusError('invalid-input', `cannot build the signature base: ${result.detail}`);
  return result.base;
}

/**
 * The bytes that are signed. Every value in a base is at most U+00FF (checked on the way in), so
 * latin1 gives back exactly the octets that were on the wire.
 */
export function encodeSignatureBase(base: string): Uint8Array {
  const bytes = Buffer.from(base, 'latin1');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
