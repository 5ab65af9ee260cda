import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import { MalusError, issuesFromZod } from '../errors/index.js';

/**
 * Validates requests with the route's zod schema and reports every issue with its path
 * (`body.agreement.tables[0].owner: …`). Serialization and OpenAPI come from the same schemas.
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    const issues = issuesFromZod(result.error, data, httpPart === undefined ? [] : [httpPart]);
    return { error: new MalusError('invalid-input', `request ${httpPart ?? 'input'} is invalid`, { issues }) };
  };
};
