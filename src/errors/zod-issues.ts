import type { z } from 'zod';
import type { Issue } from './malus-error.js';

/** Formats a path as JSON-ish text: `tables[1].columns[0].type`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  // YAML can spell .inf and .nan; "expected number, received number" would help nobody.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let here: unknown = root;
  for (const part of path) {
    if (here === null || typeof here !== 'object') return undefined;
    here = Object.hasOwn(here, part) ? (here as Record<PropertyKey, unknown>)[part] : undefined;
  }
  return here;
}

function listValues(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
}

/**
 * Turns zod's issues into Malus issues, one per problem, with messages a person can act on.
 * `input` is the value that was parsed, used to say what was received (never echoed in full).
 */
export function issuesFromZod(error: z.ZodError, input: unknown, prefix: readonly PropertyKey[] = []): Issue[] {
  const issues: Issue[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path];
    switch (issue.code) {
      case 'invalid_type': {
        const received = valueAt(input, issue.path);
        issues.push({
          path: formatPath(path),
          message:
            received === undefined
              ? `required (expected ${issue.expected})`
              : `expected ${issue.expected}, received ${describeValue(received)}`,
        });
        break;
      }
      case 'unrecognized_keys':
        for (const key of issue.keys) issues.push({ path: formatPath([...path, key]), message: 'unknown field' });
        break;
      case 'invalid_value':
        issues.push({
          path: formatPath(path),
          message:
            issue.values.length === 1
              ? `expected ${listValues(issue.values)}`
              : `expected one of ${listValues(issue.values)}`,
        });
        break;
      case 'invalid_union': {
        const options = (issue as { options?: unknown[] }).options;
        if (Array.isArray(options)) {
          issues.push({ path: formatPath(path), message: `expected one of ${listValues(options)}` });
        } else {
          // Report the branch that got furthest: its issues are the most specific.
          const branches = issue.errors;
          const best = branches.reduce<z.core.$ZodIssue[] | undefined>(
            (acc, branch) => (acc === undefined || branch.length < acc.length ? branch : acc),
            undefined,
          );
          if (best === undefined || best.length === 0) issues.push({ path: formatPath(path), message: issue.message });
          else issues.push(...issuesFromZod({ issues: best } as z.ZodError, valueAt(input, issue.path), path));
        }
        break;
      }
      case 'too_small':
      case 'too_big': {
        const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        // `positive()` is an exclusive bound: "at least 0" would accept the 0 it refuses.
        const exclusive = issue.inclusive === false;
        const word = issue.code === 'too_small' ? (exclusive ? 'more than' : 'at least') : exclusive ? 'less than' : 'at most';
        const unit =
          issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : issue.origin === 'set' ? ' items' : '';
        issues.push({ path: formatPath(path), message: `expected ${word} ${String(bound)}${unit}` });
        break;
      }
      default:
        issues.push({ path: formatPath(path), message: issue.message });
    }
  }
  return issues;
}
