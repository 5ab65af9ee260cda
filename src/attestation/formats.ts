// The evidence formats Malus verifies; a file of its own so that producers (sim) and the verifier
// entry point can both name them without importing each other.

export const EVIDENCE_FORMATS = ['nitro', 'sev-snp', 'tdx', 'nvidia', 'sim'] as const;
export type EvidenceFormat = (typeof EVIDENCE_FORMATS)[number];
