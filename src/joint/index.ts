// Joint computations without an enclave (docs/relay.md): PSI and secure aggregation between the
// parties of a collaboration, their messages carried by the Malus relay.
export { MAX_LOGICAL_STEP, PARTS_PER_STEP, receiveMessages, sendMessage, type ReceivedMessage, type ReceiveOptions, type RunChannel } from './channel.js';
export { activeTerms, checkRunTerms, type ActiveTerms } from './agreement.js';
export {
  psiComputationFor,
  receivePsi,
  relayReceiverLink,
  relaySenderLink,
  sendPsi,
  type PsiOutcome,
  type PsiProgress,
  type PsiReceiverParameters,
  type PsiSenderOutcome,
  type PsiSenderParameters,
  type ReceiverLink,
  type SenderLink,
} from './psi.js';
// A party's PSI input is read by ingest, through the same normalizers as dataset preparation.
export { readSetColumn as readPsiInput, type SetColumn as PsiInput, type SetColumnParameters as PsiInputParameters } from '../ingest/index.js';
export { connectForPsi, listenForPsi, type DirectListener } from './direct.js';
export { SIGNATURE_BYTES, agreedSigningKey, openPsiMessage, sealPsiMessage } from './signed.js';
export {
  RESULT_STEP,
  checkSecAggInput,
  decodeSecAggResult,
  encodeSecAggResult,
  joinSecAggRun,
  readVectorFile,
  startSecAggRun,
  type JoinSecAggOptions,
  type JoinSecAggOutcome,
  type ResultContext,
  type SecAggProgress,
  type SecAggRunOutcome,
  type StartSecAggOptions,
} from './secagg.js';
