// How a message is seen for signing: a method, the full target URI and its header fields.

export type HeaderValue = string | readonly string[] | undefined;

export interface HttpRequestMessage {
  readonly method: string;
  /** The full target URI, e.g. `https://example.com/foo?bar=1`. */
  readonly url: string;
  /** Lower-case field names, as in node's IncomingHttpHeaders. */
  readonly headers: Readonly<Record<string, HeaderValue>>;
}

export type FieldLookup =
  | { readonly kind: 'present'; readonly value: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly detail: string };

// Visible ASCII, space, tab and obs-text; no CR, LF or NUL, which could forge extra base lines.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The value of one field as RFC 9421 §2.1 wants it: every field line trimmed, then joined with
 * ", ". Own properties only, so a name such as `constructor` never reaches Object.prototype.
 */
export function lookupField(headers: Readonly<Record<string, HeaderValue>>, name: string): FieldLookup {
  if (!Object.hasOwn(headers, name)) return { kind: 'absent' };
  const raw: unknown = headers[name];
  if (raw === undefined) return { kind: 'absent' };
  let lines: readonly unknown[];
  if (typeof raw === 'string') lines = [raw];
  else if (Array.isArray(raw)) lines = raw;
  else return { kind: 'invalid', detail: `field ${name} is not text` };
  if (lines.length === 0) return { kind: 'absent' };
  const trimmed: string[] = [];
  for (const line of lines) {
    if (typeof line !== 'string') return { kind: 'invalid', detail: `field ${name} is not text` };
    if (!FIELD_VALUE.test(line)) return { kind: 'invalid', detail: `field ${name} holds control characters` };
    trimmed.push(trimSpaceAndTab(line));
  }
  return { kind: 'present', value: trimmed.join(', ') };
}

// A loop rather than a regex: /[ \t]+$/ backtracks quadratically on long runs of inner spaces.
function trimSpaceAndTab(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isSpaceOrTab(text.charCodeAt(start))) start++;
  while (end > start && isSpaceOrTab(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

function isSpaceOrTab(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
