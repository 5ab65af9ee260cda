// C3R column names. C3R normalizes every header it reads (from the schema and from the data) the
// way Java does `trim().toLowerCase()`, then checks it against AWS Clean Rooms' column-name rules.
// The normalized name is what the output header row shows and what feeds the IV and the HMAC key.

/** AWS Clean Rooms' limit on a column name, in characters. */
export const C3R_HEADER_MAX_LENGTH = 128;

// AWS Clean Rooms' pattern, matched against the whole name: runs of [a-z0-9_ ] joined by single
// hyphens, starting with [a-z0-9_]. The runs cannot contain '-', so matching never backtracks badly.
const HEADER_PATTERN = /^[a-z0-9_](?:(?:[a-z0-9_ ]+-)*[a-z0-9_ ]+)?$/;

/** Java's String.trim(): strips every character at or below U+0020 from both ends (not Unicode spaces). */
export function javaTrim(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) <= 0x20) start++;
  while (end > start && text.charCodeAt(end - 1) <= 0x20) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/** The name C3R uses for a header: trimmed and lower-cased. */
export function normalizeC3rHeader(raw: string): string {
  return javaTrim(raw).toLowerCase();
}

/** Why a normalized header is not a valid C3R column name, or undefined when it is. */
export function c3rHeaderProblem(normalized: string): string | undefined {
  if (normalized === '') return 'a column name must not be blank';
  if (normalized.length > C3R_HEADER_MAX_LENGTH) {
    return `column name \`${normalized}\` is ${normalized.length} characters; AWS Clean Rooms allows at most ${C3R_HEADER_MAX_LENGTH}`;
  }
  if (!HEADER_PATTERN.test(normalized)) {
    return `column name \`${normalized}\` does not match AWS Clean Rooms' pattern [a-z0-9_](([a-z0-9_ ]+-)*([a-z0-9_ ]+))?`;
  }
  return undefined;
}

/** The positional name C3R gives the i-th (zero-based) column of a file without a header row. */
export function positionalHeader(index: number): string {
  return `_c${index}`;
}
