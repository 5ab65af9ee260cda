// The HTTP API's wire schemas, shared by the server (validation, serialization, OpenAPI) and the
// client (response checking), so the two can never disagree about a field.
export {
  agreementQuery,
  agreementView,
  authenticatedErrors,
  collaborationIdParams,
  collaborationList,
  collaborationView,
  healthView,
  problemSchema,
  proposeBody,
  signatureBody,
  versionView,
  type AgreementView,
  type CollaborationView,
  type Health,
  type Problem,
  type ProposeBody,
  type VersionView,
} from './schemas.js';
