// The fixed shape of a Malus request signature: one Ed25519 signature under one label, always
// covering the method, the full target URI and the body (through Content-Digest).

export const DEFAULT_LABEL = 'malus';
export const ALGORITHM = 'ed25519';
export const DEFAULT_COMPONENTS: readonly string[] = ['@method', '@target-uri', 'content-digest'];
export const DEFAULT_MAX_AGE_SECONDS = 300;
export const DEFAULT_MAX_SKEW_SECONDS = 30;

// Limits on what verification will parse at all; real Malus signatures are a few hundred bytes.
export const MAX_SIGNATURE_FIELD_LENGTH = 8192;
export const MAX_DIGEST_FIELD_LENGTH = 4096;

/** RFC 8941 integers stop at 15 digits. */
export const MAX_SF_INTEGER = 999_999_999_999_999;
