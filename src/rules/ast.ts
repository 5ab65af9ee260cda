import type { AstNode } from './parser.js';
import type { ViolationCode } from './codes.js';
import type { Violation } from './types.js';

// Small helpers over DuckDB's serialized parse tree, and the list of findings a check collects.

export const isNode = (value: unknown): value is AstNode => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether a member holds nothing: DuckDB serializes absent parts as null, '', false, [] or empty modifiers. */
export function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined || value === '' || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isNode(value)) {
    if (value.type === 'ORDER_MODIFIER') return isEmpty(value.orders);
    if ('map' in value && Object.keys(value).length === 1) return isEmpty(value.map);
    return Object.keys(value).length === 0;
  }
  return false;
}

/** Nothing there: null, undefined, '', false, [] or {} (how DuckDB serializes an absent clause). */
export const isAbsent = (value: unknown): boolean =>
  value === null || value === undefined || value === '' || value === false || (Array.isArray(value) && value.length === 0) || (isNode(value) && Object.keys(value).length === 0);

export const text = (node: AstNode, key: string): string => (typeof node[key] === 'string' ? (node[key]) : '');
export const nodes = (value: unknown): AstNode[] => (Array.isArray(value) ? value.filter(isNode) : []);
export const child = (node: AstNode, key: string): AstNode | undefined => (isNode(node[key]) ? (node[key]) : undefined);

export function location(node: AstNode | undefined): number | null {
  const at = node?.query_location;
  return typeof at === 'number' && Number.isSafeInteger(at) && at >= 0 ? at : null;
}

/** Keys of a node that hold something and are not in `allowed`: any of them is syntax the checker does not know. */
export function unexpectedKeys(node: AstNode, allowed: readonly string[]): string[] {
  return Object.keys(node).filter((key) => !allowed.includes(key) && key !== 'query_location' && !isEmpty(node[key]));
}

/** Every object below a value, depth first (the value itself included). */
export function* descendants(value: unknown): Generator<AstNode> {
  if (Array.isArray(value)) {
    for (const item of value) yield* descendants(item);
  } else if (isNode(value)) {
    yield value;
    for (const member of Object.values(value)) if (typeof member === 'object' && member !== null) yield* descendants(member);
  }
}

export class Findings {
  readonly list: Violation[] = [];
  private readonly seen = new Set<string>();
  /** The location to use for a node that has none of its own: its nearest located ancestor's. */
  fallback: number | null = null;

  add(code: ViolationCode, message: string, at: AstNode | number | null | undefined): void {
    const position = typeof at === 'number' ? at : at === null || at === undefined ? this.fallback : (location(at) ?? this.fallback);
    const key = `${code}\0${message}\0${position ?? ''}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push({ code, message, position });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }
}
