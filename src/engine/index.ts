export { MEASUREMENT_LABEL, measureBuild, packageRoot, type BuildMeasurement } from './measure.js';
export { SIM_CA_FILE, loadOrCreateSimCa, readSimCa } from './sim-ca-file.js';
export {
  RESULT_FORMAT,
  SIMULATED_NOTICE,
  canonicalStatement,
  signStatement,
  statementHash,
  verifyStatementSignature,
  type ResultStatement,
  type SignedStatement,
} from './statement.js';
export {
  JOB_KINDS,
  checkJob,
  createWorkerIdentity,
  pollOnce,
  registerWorker,
  registrationSubject,
  runJob,
  startWorker,
  type ClaimedJob,
  type ReleaseRequest,
  type RunningWorker,
  type WorkerContext,
  type WorkerIdentity,
  type WorkerPort,
} from './worker.js';
