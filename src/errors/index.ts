export { ERROR_CODES, isErrorCode, type ErrorCode } from './codes.js';
export { MalusError, formatIssue, formatViolation, isMalusError, problemType, type Issue, type MalusErrorOptions, type Reason, type Violation } from './malus-error.js';
export { formatPath, issuesFromZod } from './zod-issues.js';
