import type { CsvDialect, InputFormat } from '../ingest/index.js';
import { readSetColumn } from '../ingest/index.js';
import { MalusError, type Issue } from '../errors/index.js';
import { parseAmount } from '../psi/index.js';

// A party's PSI input from its own file: the identifier column through the computation's
// normalizers, and for the sum mode the values, exact decimals scaled to integers.

export interface PsiInputParameters {
  readonly input: string;
  readonly format?: InputFormat;
  readonly dialect?: CsvDialect;
  readonly column: string;
  readonly valueColumn?: string;
  /** Decimals the values keep (2 for cents); default 0. */
  readonly valueDecimals?: number;
  readonly normalize?: readonly string[];
}

export interface PsiInput {
  readonly rows: number;
  readonly items: string[];
  readonly values?: bigint[];
}

const SHOWN = 20;

export async function readPsiInput(parameters: PsiInputParameters): Promise<PsiInput> {
  const read = await readSetColumn({
    input: parameters.input,
    column: parameters.column,
    ...(parameters.format === undefined ? {} : { format: parameters.format }),
    ...(parameters.dialect === undefined ? {} : { dialect: parameters.dialect }),
    ...(parameters.valueColumn === undefined ? {} : { valueColumn: parameters.valueColumn }),
    ...(parameters.normalize === undefined ? {} : { normalize: parameters.normalize }),
  });
  if (read.values === undefined) return { rows: read.rows, items: read.items };
  const decimals = parameters.valueDecimals ?? 0;
  const issues: Issue[] = [];
  let bad = 0;
  const values = read.values.map((text, i) => {
    try {
      return parseAmount(text.trim(), decimals);
    } catch (error) {
      bad += 1;
      // The value itself is not repeated: it is the party's data.
      if (issues.length < SHOWN) issues.push({ path: `row ${i + 1}, column ${parameters.valueColumn ?? ''}`, message: error instanceof MalusError ? amountProblem(decimals) : String(error) });
      return 0n;
    }
  });
  if (bad > 0) {
    if (bad > issues.length) issues.push({ path: '', message: `… and ${bad - issues.length} more problems` });
    throw new MalusError('invalid-input', `the PSI input has ${bad} value${bad === 1 ? '' : 's'} that cannot be added`, { issues });
  }
  return { rows: read.rows, items: read.items, values };
}

const amountProblem = (decimals: number): string =>
  `is not a non-negative decimal with at most ${decimals} decimal${decimals === 1 ? '' : 's'} (set --value-decimals)`;
