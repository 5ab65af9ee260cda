export { partyIdFor, PARTY_ID_PATTERN } from './party-id.js';
export {
  assertPublicIdentity,
  checkPublicIdentity,
  decodeEncryptionKey,
  decodeSigningKey,
  type PublicIdentity,
} from './public-identity.js';
export {
  generatePartyKeys,
  readKeyFile,
  readPublicIdentity,
  writeKeyFile,
  writePrivateFile,
  type PartyKeys,
  type ReadKeyFileOptions,
  type WriteKeyFileOptions,
} from './key-file.js';
