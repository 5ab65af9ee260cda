import { parseDocument } from 'yaml';
import { MalusError, issuesFromZod, type Issue } from '../errors/index.js';
import { crossCheckAgreement } from './cross-checks.js';
import { agreementSchema, type Agreement } from './schema.js';

/** Agreement files are small; anything larger is a mistake or an attack. */
export const MAX_AGREEMENT_BYTES = 1024 * 1024;

/** Reads JSON or YAML text into a plain value. YAML is accepted as input; JSON is what gets hashed. */
export function parseAgreementText(text: string, source = 'agreement'): unknown {
  if (Buffer.byteLength(text) > MAX_AGREEMENT_BYTES) {
    throw new MalusError('agreement-invalid', `${source} is larger than ${MAX_AGREEMENT_BYTES} bytes`);
  }
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new MalusError('agreement-invalid', `${source} is not valid JSON: ${(error as Error).message}`);
    }
  }
  // Core schema only: no custom tags, no implicit dates, duplicate keys are errors, aliases capped.
  const doc = parseDocument(text, { schema: 'core', uniqueKeys: true, prettyErrors: true, merge: false });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => ({
      path: '',
      message: `line ${e.linePos?.[0].line ?? '?'}, column ${e.linePos?.[0].col ?? '?'}: ${e.message.split('\n')[0] ?? ''}`,
    }));
    throw new MalusError('agreement-invalid', `${source} is not valid YAML or JSON`, { issues });
  }
  return doc.toJS({ maxAliasCount: 100 }) as unknown;
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
