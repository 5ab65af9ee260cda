// RFC 9421 HTTP Message Signatures (Ed25519 only) and RFC 9530 Content-Digest for Malus requests.

export { checkContentDigest, contentDigest } from './digest.js';
export type { HeaderValue, HttpRequestMessage } from './fields.js';
export { ALGORITHM, DEFAULT_COMPONENTS, DEFAULT_LABEL } from './profile.js';
export { signRequest, type SignedRequestHeaders, type SignRequestParams } from './sign.js';
export {
  encodeSignatureBase,
  serializeSignatureParams,
  signatureBase,
  type SignatureParameters,
} from './signature-base.js';
export {
  DEFERRED_BODY,
  verifyRequest,
  type VerifyFailure,
  type VerifyRequestParams,
  type VerifyRequestResult,
} from './verify.js';
