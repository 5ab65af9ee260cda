export { createClient, request, requestBytes, type CreateClientParameters, type HttpMethod, type MalusClient, type RequestParameters } from './client.js';
export {
  getAgreement,
  getCollaboration,
  getHealth,
  getOpenApi,
  listCollaborations,
  proposeCollaboration,
  signCollaboration,
} from './collaborations.js';
export type { AgreementView, CollaborationView, VersionView } from '../api/index.js';
export {
  getCheckpoint,
  getConsistencyProof,
  getInclusionProof,
  getLogEntries,
  getLogKey,
  getReceipt,
  getTile,
  listCheckpoints,
  postCosignature,
} from './log.js';
export { runAudit, type AuditReport, type BudgetAudit } from './audit.js';
export { getBudget } from './budget.js';
export type { BudgetAmounts, BudgetView } from '../api/index.js';
export { witnessLog, type WitnessOutcome, type WitnessParameters } from './witness.js';
export {
  appraiseKeyReleaseService,
  cancelJob,
  getJob,
  getJobReceipt,
  getSimRootFingerprint,
  httpWorkerPort,
  listDataKeys,
  listJobs,
  registerDataKey,
  remoteAgreementSource,
  remoteDecisionLog,
  remoteJobSource,
  submitJob,
  submitQuery,
  waitForJob,
  type AppraisedService,
  type JobReceiptView,
  type JobView,
  type QueryJobBody,
  type RegisterDataKeyParameters,
  type ServiceAppraisalOptions,
  type ServiceAttestationView,
  type WorkerView,
} from './confidential.js';
export {
  DEFAULT_UPLOAD_CHUNK_BYTES,
  abandonUpload,
  fetchJobDataset,
  fetchJobDatasetManifest,
  getDataset,
  listDatasets,
  uploadDataset,
  type DatasetView,
  type SignedManifest,
  type UploadDatasetParameters,
} from './datasets.js';
export { openJobResult, type OpenResultOptions, type OpenedResult } from './results.js';
export {
  finishRun,
  getRun,
  getRunMessages,
  listRuns,
  postRunMessage,
  startRun,
  waitForRunMessages,
  type RunMessage,
  type RunMessageParameters,
  type RunMessages,
  type RunMessagesCursor,
  type WaitForRunMessagesOptions,
} from './relay.js';
export { MAX_RUN_MESSAGE_BYTES, type FinishRunBody, type RunMessageReceipt, type RunSummary, type RunView, type StartRunBody } from '../api/index.js';
