export { createClient, request, type CreateClientParameters, type MalusClient, type RequestParameters } from './client.js';
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
