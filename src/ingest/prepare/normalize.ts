import { MalusError } from '../../errors/index.js';
import { literal } from '../duckdb.js';

// Normalizers turn the many spellings of one identifier into one, so that the parties' pseudonyms
// match (docs/dataset-preparation.md). Each is a DuckDB expression over VARCHAR that yields NULL
// when a value cannot be normalized; the caller reports those rows.

/** ASCII white space: space, tab, line feed, vertical tab, form feed, carriage return. */
const WHITE_SPACE = `' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)`;

/**
 * Strips leading and trailing ASCII white space. DuckDB's trim is costly per call and most values
 * have nothing to trim, so it is called only for those whose first or last character is a control
 * character or a space (code 32 or below): the same result, several times faster.
 */
export function trimSql(x: string): string {
  return `(CASE WHEN ord(${x}) <= 32 OR ord(${x}[-1]) <= 32 THEN trim(${x}, ${WHITE_SPACE}) ELSE ${x} END)`;
}

const EMAIL = String.raw`^[^@\s]+@[^@\s]+\.[^@\s]+$`;
const E164 = String.raw`^\+[1-9][0-9]{6,14}$`;

/** The e-mail canonical form of UID2 and similar schemes: trimmed, lower-case, Gmail dots and +tags dropped. */
function email(x: string): string {
  const t = `lower(${trimSql(x)})`;
  const local = `split_part(${t}, '@', 1)`;
  const domain = `split_part(${t}, '@', 2)`;
  const gmailLocal = `replace(split_part(${local}, '+', 1), '.', '')`;
  // A Gmail local part of only dots and a +tag ('.+x@gmail.com') would become '@gmail.com', one
  // identifier for many different inputs: it fails instead.
  return (
    `CASE WHEN NOT regexp_full_match(${t}, ${literal(EMAIL)}) THEN NULL ` +
    `WHEN ${domain} IN ('gmail.com', 'googlemail.com') THEN CASE WHEN ${gmailLocal} = '' THEN NULL ELSE ${gmailLocal} || '@gmail.com' END ELSE ${t} END`
  );
}

/**
 * E.164: `+` and 7 to 15 digits. Spaces, dots, dashes and brackets go; a leading `00` is the
 * international prefix; a national number takes the default calling code, after dropping one
 * trunk `0` (or, for +1, a leading `1` on an 11-digit number).
 */
function e164(x: string, countryCode: string | undefined): string {
  // DuckDB eliminates the repeated subexpressions, so spelling them out costs nothing at run time.
  const d = `regexp_replace(${trimSql(x)}, '[ ().\\-]', '', 'g')`;
  let national = 'NULL';
  if (countryCode !== undefined) {
    const digits = countryCode.slice(1);
    const withoutTrunk =
      digits === '1'
        ? `CASE WHEN length(${d}) = 11 AND starts_with(${d}, '1') THEN substr(${d}, 2) ELSE ${d} END`
        : `CASE WHEN starts_with(${d}, '0') THEN substr(${d}, 2) ELSE ${d} END`;
    national = `'+${digits}' || (${withoutTrunk})`;
  }
  const c =
    `(CASE WHEN starts_with(${d}, '+') THEN ${d} WHEN starts_with(${d}, '00') THEN '+' || substr(${d}, 3) ` +
    `WHEN regexp_full_match(${d}, '[0-9]+') THEN ${national} ELSE NULL END)`;
  return `(CASE WHEN regexp_full_match(${c}, ${literal(E164)}) THEN ${c} ELSE NULL END)`;
}

/** The expression for one normalizer applied to `x` (VARCHAR), for a column of type `target`. */
export function normalizerSql(normalizer: string, x: string, target: string): string {
  if (normalizer === 'trim') return trimSql(x);
  if (normalizer === 'lowercase') return `lower(${x})`;
  if (normalizer === 'uppercase') return `upper(${x})`;
  if (normalizer === 'email') return email(x);
  if (normalizer === 'e164' || normalizer.startsWith('e164:')) return e164(x, normalizer === 'e164' ? undefined : normalizer.slice(5));
  if (normalizer.startsWith('date:')) {
    const parsed = `try_strptime(${trimSql(x)}, ${literal(normalizer.slice(5))})`;
    if (target !== 'VARCHAR' && target !== 'DATE') return `CAST(${parsed} AS VARCHAR)`;
    // A date keeps no time of day: a value whose format gave one other than midnight fails rather
    // than losing it (as a DATE column refuses such a value without a normalizer).
    return `CASE WHEN CAST(${parsed} AS TIME) = TIME '00:00:00' THEN strftime(${parsed}, '%Y-%m-%d') END`;
  }
  throw new MalusError('agreement-invalid', `unknown normalizer ${normalizer}`);
}

/** All of a column's normalizers in order, over a VARCHAR expression. */
export function normalizeSql(normalizers: readonly string[], x: string, target: string): string {
  return normalizers.reduce((expression, normalizer) => normalizerSql(normalizer, expression, target), x);
}
