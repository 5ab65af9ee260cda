import { MalusError } from '../../errors/index.js';

// Validation reports every problem it finds, but prints only the first few: a file with a bad
// column has it on every row, and a million identical lines help no one.

export const SHOWN_PROBLEMS = 20;

export interface Problem {
  /** The physical line in the input (CSV structure errors), 1-based, header included. */
  readonly line?: number;
  /** The data row (value errors), 1-based, header excluded. */
  readonly row?: number;
  readonly column?: string;
  readonly message: string;
}

function location(problem: Problem): string {
  return [
    problem.line === undefined ? undefined : `line ${problem.line}`,
    problem.row === undefined ? undefined : `row ${problem.row}`,
    problem.column === undefined ? undefined : `column ${problem.column}`,
  ]
    .filter((part) => part !== undefined)
    .join(', ');
}

export class ProblemList {
  readonly shown: Problem[] = [];
  total = 0;

  add(problem: Problem): void {
    this.total += 1;
    if (this.shown.length < SHOWN_PROBLEMS) this.shown.push(problem);
  }

  /** Adds `count` problems of which only `examples` are known in detail. */
  addCounted(examples: readonly Problem[], count: number): void {
    for (const example of examples) if (this.shown.length < SHOWN_PROBLEMS) this.shown.push(example);
    this.total += count;
  }

  /** Throws one error listing what was found, if anything was. */
  throwIfAny(what: string): void {
    if (this.total === 0) return;
    const issues = this.shown.map((p) => ({ path: location(p), message: p.message }));
    const more = this.total - this.shown.length;
    if (more > 0) issues.push({ path: '', message: `… and ${more} more problem${more === 1 ? '' : 's'}` });
    throw new MalusError('invalid-input', `${what}: ${this.total} problem${this.total === 1 ? '' : 's'}`, { issues });
  }
}
