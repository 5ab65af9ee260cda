import { parseDocument, type YAMLError } from 'yaml';
import { MalusError, issuesFromZod, type Issue } from '../errors/index.js';
import { crossCheckAgreement } from './cross-checks.js';
import { agreementSchema, type Agreement } from './schema.js';

/** Agreement files are small; anything larger is a mistake or an attack. */
export const MAX_AGREEMENT_BYTES = 1024 * 1024;

const YAML_OPTIONS = { schema: 'core', uniqueKeys: true, prettyErrors: true, merge: false } as const;

/** Reads JSON or YAML text into a plain value. YAML is accepted as input; JSON is what gets hashed. */
export function parseAgreementText(text: string, source = 'agreement'): unknown {
  if (Buffer.byteLength(text) > MAX_AGREEMENT_BYTES) {
    throw new MalusError('agreement-invalid', `${source} is larger than ${MAX_AGREEMENT_BYTES} bytes`);
  }
  // trimStart also drops a byte order mark, which JSON.parse would refuse.
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed) as unknown;
    } catch (error) {
      throw new MalusError('agreement-invalid', `${source} is not valid JSON: ${(error as Error).message}`);
    }
    // JSON.parse keeps the last of two equal keys; RFC 8785 hashes I-JSON (RFC 7493), which forbids
    // them, and a reader could see the other value. Refuse them, as for YAML.
    const duplicates = yamlErrors(text).filter((e) => e.code === 'DUPLICATE_KEY');
    if (duplicates.length > 0) {
      throw new MalusError('agreement-invalid', `${source} is not valid JSON: duplicate keys`, { issues: duplicates.map(toIssue) });
    }
    return value;
  }
  // Core schema only: no custom tags, no implicit dates, duplicate keys are errors, aliases capped.
  const doc = parseDocument(text, YAML_OPTIONS);
  if (doc.errors.length > 0) {
    throw new MalusError('agreement-invalid', `${source} is not valid YAML or JSON`, { issues: doc.errors.map(toIssue) });
  }
  try {
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (error) {
    // The alias cap throws (a "billion laughs" document); report it like any other YAML error.
    throw new MalusError('agreement-invalid', `${source} is not valid YAML or JSON`, {
      issues: [{ path: '', message: (error as Error).message }],
    });
  }
}

function yamlErrors(text: string): YAMLError[] {
  return parseDocument(text, YAML_OPTIONS).errors;
}

function toIssue(error: YAMLError): Issue {
  // With prettyErrors the first line of the message already ends with " at line L, column C:".
  const message = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:$/, '');
  return { path: '', message: `line ${error.linePos?.[0].line ?? '?'}, column ${error.linePos?.[0].col ?? '?'}: ${message}` };
}

export type AgreementCheck = { ok: true; agreement: Agreement } | { ok: false; issues: Issue[] };

/** Validates a parsed value: the schema first, then the cross-field rules. Reports every issue. */
export function checkAgreement(value: unknown): AgreementCheck {
  const parsed = agreementSchema.safeParse(value);
  if (!parsed.success) return { ok: false, issues: issuesFromZod(parsed.error, value) };
  const issues = crossCheckAgreement(parsed.data);
  return issues.length === 0 ? { ok: true, agreement: parsed.data } : { ok: false, issues };
}

/** Validates, throwing `agreement-invalid` with every issue. */
export function assertAgreement(value: unknown, source = 'agreement'): Agreement {
  const result = checkAgreement(value);
  if (!result.ok) {
    const count = result.issues.length;
    throw new MalusError('agreement-invalid', `${source} has ${count} error${count === 1 ? '' : 's'}`, {
      issues: result.issues,
    });
  }
  return result.agreement;
}
