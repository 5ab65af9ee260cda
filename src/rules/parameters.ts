import type { Template } from '../agreement/index.js';
import type { Findings } from './ast.js';
import type { BoundParameter, ParameterValue } from './types.js';

// Template parameters: typed and bounded by the agreement, checked here, and bound by DuckDB as
// values of a prepared statement: never spliced into the SQL text.

type Declared = Template['parameters'][number];

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?Z?$/;
const MAX_TEXT = 4096;

function realDate(y: string, m: string, d: string): boolean {
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return date.getUTCFullYear() === Number(y) && date.getUTCMonth() === Number(m) - 1 && date.getUTCDate() === Number(d);
}

/** The value in the type DuckDB binds, or a reason it is not of the parameter's type. */
function coerce(declared: Declared, value: ParameterValue): { value: BoundParameter['value'] } | { reason: string } {
  const asText = typeof value === 'string' ? value.trim() : String(value);
  switch (declared.type) {
    case 'VARCHAR':
      if (typeof value !== 'string') return { reason: 'expected text' };
      if (value.length > MAX_TEXT) return { reason: `at most ${MAX_TEXT} characters` };
      return { value };
    case 'BIGINT': {
      if (typeof value === 'boolean' || !/^-?\d{1,19}$/.test(asText)) return { reason: 'expected an integer' };
      const big = BigInt(asText);
      if (big > 9223372036854775807n || big < -9223372036854775808n) return { reason: 'outside the BIGINT range' };
      return { value: big };
    }
    case 'DOUBLE': {
      if (typeof value === 'boolean' || !/^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(asText)) return { reason: 'expected a number' };
      const number = Number(asText);
      return Number.isFinite(number) ? { value: number } : { reason: 'expected a finite number' };
    }
    case 'DATE': {
      const m = typeof value === 'string' ? DATE.exec(asText) : null;
      if (m === null || !realDate(m[1] as string, m[2] as string, m[3] as string)) return { reason: 'expected a date YYYY-MM-DD' };
      return { value: asText };
    }
    case 'TIMESTAMP': {
      const m = typeof value === 'string' ? TIMESTAMP.exec(asText) : null;
      if (m === null || !realDate(m[1] as string, m[2] as string, m[3] as string) || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) {
        return { reason: 'expected a timestamp YYYY-MM-DD HH:MM:SS' };
      }
      return { value: asText.replace('T', ' ').replace(/Z$/, '') };
    }
    case 'BOOLEAN':
      if (value === true || asText === 'true') return { value: true };
      if (value === false || asText === 'false') return { value: false };
      return { reason: 'expected true or false' };
  }
}

/** Compares in the parameter's own order: numbers numerically, dates and timestamps as text, VARCHAR by length. */
function outside(declared: Declared, value: BoundParameter['value']): string | undefined {
  const measure = (v: unknown): number | string | bigint => {
    if (declared.type === 'VARCHAR') return typeof v === 'number' ? v : String(v).length;
    if (declared.type === 'BIGINT') return BigInt(String(v));
    if (declared.type === 'DOUBLE') return Number(v);
    return String(v).replace('T', ' ');
  };
  const subject = declared.type === 'VARCHAR' ? String(value).length : measure(value);
  if (declared.min !== undefined && subject < measure(declared.min)) return `below the minimum ${String(declared.min)}${declared.type === 'VARCHAR' ? ' characters' : ''}`;
  if (declared.max !== undefined && subject > measure(declared.max)) return `above the maximum ${String(declared.max)}${declared.type === 'VARCHAR' ? ' characters' : ''}`;
  if (declared.values !== undefined && !declared.values.some((allowed) => String(allowed) === String(value))) {
    return `not one of ${declared.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return undefined;
}

export function bindParameters(template: Template, values: Readonly<Record<string, ParameterValue>>, findings: Findings): BoundParameter[] {
  const bound: BoundParameter[] = [];
  for (const name of Object.keys(values)) {
    if (!template.parameters.some((p) => p.name === name)) findings.add('parameter-unknown', `template ${template.name} has no parameter ${name}`, null);
  }
  for (const declared of template.parameters) {
    if (!Object.hasOwn(values, declared.name)) {
      findings.add('parameter-missing', `parameter ${declared.name} (${declared.type}) has no value`, null);
      continue;
    }
    const coerced = coerce(declared, values[declared.name] as ParameterValue);
    if ('reason' in coerced) {
      findings.add('parameter-type', `parameter ${declared.name}: ${coerced.reason}`, null);
      continue;
    }
    const problem = outside(declared, coerced.value);
    if (problem !== undefined) {
      findings.add('parameter-out-of-bounds', `parameter ${declared.name}: ${problem}`, null);
      continue;
    }
    bound.push({ name: declared.name, type: declared.type, value: coerced.value });
  }
  return bound;
}
