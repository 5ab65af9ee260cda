import { MalusError, type ErrorCode } from '../errors/index.js';

// Every refusal in secure aggregation carries one of these stable reason codes next to the Malus
// error code, so a transport can branch on exactly what went wrong (docs/secagg.md lists them).
export const SECAGG_REASONS = [
  'secagg-params',
  'secagg-not-allowed',
  'secagg-malformed',
  'secagg-wrong-run',
  'secagg-stale-round',
  'secagg-early',
  'secagg-duplicate',
  'secagg-unknown-party',
  'secagg-bad-signature',
  'secagg-not-eligible',
  'secagg-params-mismatch',
  'secagg-bad-key',
  'secagg-undecryptable',
  'secagg-too-few-parties',
  'secagg-too-few-shares',
  'secagg-bad-reconstruction',
  'secagg-both-share-kinds',
  'secagg-inconsistent',
  'secagg-finished',
] as const;

export type SecAggReason = (typeof SECAGG_REASONS)[number];

export function refusal(code: ErrorCode, reason: SecAggReason, message: string): MalusError {
  return new MalusError(code, message, { reasons: [{ code: reason, message }] });
}

/** The secagg reason of an error, if it carries one. */
export function secaggReason(error: unknown): SecAggReason | undefined {
  if (!(error instanceof MalusError)) return undefined;
  const found = error.reasons.find((r) => (SECAGG_REASONS as readonly string[]).includes(r.code));
  return found?.code as SecAggReason | undefined;
}
