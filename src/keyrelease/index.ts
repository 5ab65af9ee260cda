export { CHALLENGE_BYTES, CHALLENGE_TTL_SECONDS, consumeChallenge, issueChallenge, type ChallengePurpose } from './challenge.js';
export { MASTER_KEY_FILE, aesKeyWrapper, loadOrCreateMasterKey, type KeyWrapContext, type KeyWrapper } from './master-key.js';
export { appraiseEnclave, verifyPresented, type AppraiseEnclaveParameters, type EnclaveAppraisal, type EvidenceTrust, type PresentedEvidence } from './appraisal.js';
export {
  REGISTRATION_INFO,
  RELEASE_INFO,
  attestService,
  keyCommitment,
  registerKey,
  registrationAad,
  releaseAad,
  releaseKeys,
  sha256Ref,
  type ActiveAgreement,
  type AgreementSource,
  type DecisionLog,
  type JobSource,
  type KeyReleaseContext,
  type RegisterKeyParameters,
  type ReleaseDecision,
  type ReleaseJob,
  type ReleaseParameters,
  type ReleasedKey,
} from './service.js';
