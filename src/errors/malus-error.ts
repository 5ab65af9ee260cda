import { ERROR_CODES, type ErrorCode } from './codes.js';

/** One problem found while validating: where (a JSON path such as `tables[1].columns[0].type`) and what. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

export interface MalusErrorOptions {
  /** Every problem found, each with its path; validation reports all of them, not the first. */
  readonly issues?: readonly Issue[];
  /** Why a check refused, each with a stable code (a key release, an appraisal). */
  readonly reasons?: readonly Reason[];
  /** Why a query was denied, each with where in the SQL (docs/queries.md). */
  readonly violations?: readonly Violation[];
  readonly cause?: unknown;
}

/** One reason a check refused: a stable code a caller can branch on, and a message safe to show. */
export interface Reason {
  readonly code: string;
  readonly message: string;
}

/** One rule a query breaks: a stable code, a message safe to show, and a character offset in the SQL (or null). */
export interface Violation {
  readonly code: string;
  readonly message: string;
  readonly position: number | null;
}

/**
 * The one error type Malus throws on purpose. `message` is safe to show a user: it never holds a
 * secret, a credential or a stack trace. `type` is the stable problem type URI (RFC 9457).
 */
export class MalusError extends Error {
  override readonly name = 'MalusError';
  readonly code: ErrorCode;
  readonly issues: readonly Issue[];
  readonly reasons: readonly Reason[];
  readonly violations: readonly Violation[];

  constructor(code: ErrorCode, message: string, options: MalusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.issues = options.issues ?? [];
    this.reasons = options.reasons ?? [];
    this.violations = options.violations ?? [];
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): 1 | 2 | 3 {
    return ERROR_CODES[this.code].exit;
  }

  get type(): string {
    return problemType(this.code);
  }

  /** The message followed by every issue on its own line, as the CLI prints it. */
  describe(): string {
    const lines = [...this.issues.map((issue) => formatIssue(issue)), ...this.reasons.map((r) => `${r.code}: ${r.message}`), ...this.violations.map(formatViolation)];
    return [this.message, ...lines].join('\n');
  }
}

export function problemType(code: ErrorCode): string {
  return `urn:malus:error:${code}`;
}

export function formatIssue(issue: Issue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`;
}

export function formatViolation(violation: Violation): string {
  return `${violation.code}: ${violation.message}${violation.position === null ? '' : ` (at character ${violation.position})`}`;
}

export function isMalusError(value: unknown, code?: ErrorCode): value is MalusError {
  return value instanceof MalusError && (code === undefined || value.code === code);
}
