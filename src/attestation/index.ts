export { AWS_NITRO_ROOT_G1_SHA256, verifyNitroDocument, type NitroClaims, type NitroTrust } from './nitro.js';
export { ATTESTATION_REASON_CODES, type AttestationReason, type AttestationReasonCode, type Verified } from './reasons.js';
export { AMD_ARK_SHA256, parseSevSnpReport, verifySevSnpReport, type SevSnpClaims, type SevSnpReport, type SevSnpTrust } from './sev-snp.js';
export { INTEL_SGX_ROOT_CA_SHA256, verifyTdxQuote, type TdxClaims, type TdxTrust } from './tdx.js';
export {
  EVIDENCE_FORMATS,
  decodeEvidence,
  detectFormat,
  readCertificates,
  verifyEvidence,
  type EvidenceFormat,
  type EvidenceVerdict,
  type VerifyEvidenceOptions,
} from './evidence.js';
export { sha256Fingerprint } from './x509-chain.js';
export {
  appraise,
  evidenceBinding,
  type Appraisal,
  type AppraisalCode,
  type AppraisalReason,
  type AppraiseOptions,
  type EnclavePolicyLike,
} from './appraise.js';
export { NVIDIA_DEVICE_ROOT_SHA256, decodeNvidiaReport, verifyNvidiaReport, type NvidiaClaims, type NvidiaTrust } from './nvidia.js';
export {
  SIM_MODULE_PREFIX,
  createSimAttester,
  createSimCa,
  produceSimEvidence,
  simCaFingerprint,
  simPlatformAttester,
  verifySimEvidence,
  type Attester,
  type SimAttester,
  type SimCa,
  type SimEvidenceInput,
  type SimTrust,
} from './sim.js';
