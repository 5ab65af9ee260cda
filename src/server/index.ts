export { API_VERSION, DEFAULT_BODY_LIMIT, buildApp, type BuildAppOptions } from './app.js';
export { MAX_CLOCK_SKEW_SECONDS, MAX_SIGNATURE_AGE_SECONDS, type AuthenticatedParty } from './auth.js';
export { DEFAULT_UPLOAD_LIMITS, type ServerContext, type UploadLimits } from './context.js';
export { startServer, type RunningServer, type StartServerOptions } from './serve.js';
export { defaultOrigin, loadOrCreateLogKey, type LogKey } from './log-key.js';
export { openTransparencyLog, toLogAppend, type OpenTransparencyLogOptions, type TransparencyLog } from './transparency.js';
export { startKmsServer, type RunningKms, type StartKmsOptions } from './kms.js';
