// Private set intersection (docs/psi.md): semi-honest two-party ECDH-PSI over ristretto255, in the
// cardinality, intersection and sum modes, as message-passing steps a transport can call.
export { parseAmount } from './amounts.js';
export { DST_PREFIX, psiDst, type PsiContext } from './context.js';
export { psiGroup, type PsiGroup } from './group.js';
export type { KernelExecutor } from './kernel.js';
export { runPsiLocally, type LocalPsiOptions } from './local.js';
export {
  decodeExpected,
  decodeMessage,
  encodedLength,
  encodeMessage,
  MAX_ELEMENTS,
  MAX_FALSE_POSITIVE_BITS,
  MAX_SUM_BITS,
  MIN_FALSE_POSITIVE_BITS,
  PSI_PROTOCOL_VERSION,
  type PsiMessage,
  type PsiMode,
  type PsiReply,
  type PsiRequest,
  type PsiSumReply,
  type PsiSumRequest,
  type SenderSet,
  type SetEncoding,
} from './messages.js';
export { createPsiPool, type PsiPool } from './pool.js';
export {
  DEFAULT_FALSE_POSITIVE_BITS,
  DEFAULT_SUM_BITS,
  receiverRequest,
  receiverResult,
  receiverSumRequest,
  receiverSumResult,
  senderReply,
  senderSumReply,
  type CardinalityResult,
  type IntersectionResult,
  type PsiBytes,
  type PsiItem,
  type PsiStepOptions,
  type ReceiverOptions,
  type ReceiverState,
  type ReceiverSumState,
  type SenderOptions,
  type SenderState,
  type SumResult,
} from './protocol.js';
