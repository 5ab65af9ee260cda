export {
  AGREEMENT_FORMAT,
  AGGREGATE_FUNCTIONS,
  COLUMN_TYPES,
  PARAMETER_TYPES,
  C3R_COLUMN_TYPES,
  NORMALIZER_PATTERN,
  PLATFORMS,
  ROLES,
  agreementSchema,
  isColumnType,
  type Agreement,
  type AnalysisRule,
  type Column,
  type EnclavePolicy,
  type KeyReleaseSettings,
  type Party,
  type Platform,
  type PrivacyPolicy,
  type PsiComputation,
  type SecaggComputation,
  type PrivacySettings,
  type Role,
  type SettlementTerms,
  type Table,
  type Template,
} from './schema.js';
export { MAX_AGREEMENT_BYTES, assertAgreement, checkAgreement, parseAgreementText, type AgreementCheck } from './parse.js';
export { agreementHash, canonicalAgreementJson } from './hash.js';
export { pseudonymizedColumns } from './cross-checks.js';
export {
  SIGNATURE_FORMAT,
  agreementSignatureSchema,
  signAgreement,
  signatureMessage,
  verifyAgreementSignature,
  type AgreementSignature,
  type SignatureFailure,
  type SignatureVerdict,
  type Signer,
} from './signature.js';
export {
  activeAgreement,
  activeVersion,
  collaborationStatus,
  versionStatus,
  type AgreementState,
  type VersionEvidence,
  type VersionStatus,
} from './lifecycle.js';
export { exampleAgreement, exampleAgreementYaml, type ExampleOptions, type ExampleParties } from './example.js';
