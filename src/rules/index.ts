export { checkQuery } from './check.js';
export { VIOLATION_CODES, type ViolationCode } from './codes.js';
export { MAX_SQL_LENGTH, queryRequestSchema } from './request.js';
export { DATA_SCHEMA, DP_SEED_PARAMETER, RELEASE_COLUMN, type BoundParameter, type DpColumn, type DpMeasurement, type DpPlan, type CheckedQuery, type ParameterValue, type QueryPrivacy, type QueryRequest, type Violation } from './types.js';
