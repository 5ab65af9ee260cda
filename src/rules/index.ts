export { checkQuery } from './check.js';
export { MAX_SQL_LENGTH, queryRequestSchema } from './request.js';
export { DATA_SCHEMA, RELEASE_COLUMN, type BoundParameter, type CheckedQuery, type ParameterValue, type QueryRequest, type Violation } from './types.js';
