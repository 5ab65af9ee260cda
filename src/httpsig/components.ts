import { lookupField, type HttpRequestMessage } from './fields.js';

// Component identifiers Malus understands: the derived components of RFC 9421 §2.2 that make sense
// for a request, and plain lower-case field names. Component parameters (;sf, ;key, ;req, ...) are
// not supported, so an identifier is just its name.

const DERIVED = new Set(['@method', '@target-uri', '@authority', '@scheme', '@request-target', '@path', '@query']);
const FIELD_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const METHOD = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
// Target URIs travel percent-encoded, so anything outside visible ASCII is refused outright.
const URI_TEXT = /^[\x21-\x7e]+$/;
const URI_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/;
const MAX_NAME_LENGTH = 128;

export function isSupportedComponent(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && (DERIVED.has(name) || FIELD_NAME.test(name));
}

export type ComponentLookup =
  | { readonly kind: 'present'; readonly value: string }
  | { readonly kind: 'absent'; readonly detail: string }
  | { readonly kind: 'invalid'; readonly detail: string };

interface TargetParts {
  readonly targetUri: string;
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  /** Includes the leading `?`; undefined when the URI has no `?` at all. */
  readonly query: string | undefined;
}

/** Splits the target URI by hand: WHATWG URL would normalise the path, but §2.2.6 wants it raw. */
function splitTarget(url: string): TargetParts | undefined {
  if (!URI_TEXT.test(url)) return undefined;
  const match = URI_SHAPE.exec(url);
  if (match === null) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const [, scheme = '', , rawPath = '', query, fragment] = match;
  if (parsed.host === '') return undefined;
  return {
    // The fragment is never sent, so it cannot be part of what the server sees.
    targetUri: fragment === undefined ? url : url.slice(0, url.length - fragment.length),
    scheme: scheme.toLowerCase(),
    // URL.host is lower-cased, drops user info and omits the scheme's default port, as §2.2.3 asks.
    authority: parsed.host,
    path: rawPath === '' ? '/' : rawPath,
    query,
  };
}

/** Resolves components one message at a time, splitting the URI only once. */
export class ComponentResolver {
  private target: TargetParts | undefined | null = null;

  constructor(private readonly message: HttpRequestMessage) {}

  value(name: string): ComponentLookup {
    if (!isSupportedComponent(name)) return { kind: 'invalid', detail: 'unsupported component identifier' };
    if (!name.startsWith('@')) {
      const field = lookupField(this.message.headers, name);
      if (field.kind === 'absent') return { kind: 'absent', detail: `covered field ${name} is absent` };
      return field;
    }
    if (name === '@method') {
      return METHOD.test(this.message.method)
        ? { kind: 'present', value: this.message.method }
        : { kind: 'invalid', detail: 'method is not an HTTP token' };
    }
    if (this.target === null) this.target = splitTarget(this.message.url);
    const target = this.target;
    if (target === undefined) return { kind: 'invalid', detail: 'target URI is not an absolute URI' };
    switch (name) {
      case '@target-uri':
        return { kind: 'present', value: target.targetUri };
      case '@scheme':
        return { kind: 'present', value: target.scheme };
      case '@authority':
        return { kind: 'present', value: target.authority };
      case '@path':
        return { kind: 'present', value: target.path };
      case '@query':
        // §2.2.7: an absent query is still a lone "?".
        return { kind: 'present', value: target.query ?? '?' };
      case '@request-target':
        return { kind: 'present', value: target.path + (target.query ?? '') };
      default:
        return { kind: 'invalid', detail: 'unsupported component identifier' };
    }
  }
}
