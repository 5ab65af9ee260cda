import { z } from 'zod';

// The wire shape of a query request: ad-hoc SQL, or a template with its parameters (never both).

const parameterValue = z.union([z.string().max(4096), z.number(), z.boolean()]);

export const MAX_SQL_LENGTH = 65_536;

export const queryRequestSchema = z.union([
  z.strictObject({ sql: z.string().min(1).max(MAX_SQL_LENGTH) }),
  z.strictObject({
    template: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'expected a template name'),
    parameters: z.record(z.string().max(63), parameterValue),
  }),
]);
