import { describe, expect, it } from 'vitest';
import { describeNoise } from '../../src/cli/commands/result.js';

// What `malus result open` and `malus query run` print about a result's noise, from its privacy
// report alone (no process: the function is pure).

describe('describeNoise', () => {
  const noise = (scale: string, ci95: string) => ({ mechanism: 'laplace' as const, scale, ci95 });

  it("prints the cost, each column's noise, and the first five rows' intervals of an AVG column", () => {
    const rows95: ([number, number] | null)[] = [[4.123456789, 5.5], null, [1, 2], [1, 2], [1, 2], [7, 8]];
    const text = describeNoise({
      accounting: 'pure',
      cost: { epsilon: '1' },
      columns: [
        { column: 'buyers', mechanism: 'laplace', scale: '3', ci95: '9' },
        { column: 'mean', mechanism: 'laplace', of: { sum: noise('200', '600'), count: noise('3', '9') }, rows95 },
      ],
    });
    expect(text).toBe(
      [
        'differential privacy: this result spent epsilon 1 (pure accounting)',
        '  buyers: laplace noise of scale 3, ±9 at 95%',
        '  mean: noisy sum (laplace, scale 200, ±600 at 95%) over noisy count (scale 3, ±9)',
        "    95% interval of each row's average: row 1 [4.12346, 5.5]; row 2 none; row 3 [1, 2]; row 4 [1, 2]; row 5 [1, 2]; … (6 rows in all, in the result's privacy report)",
        '',
      ].join('\n'),
    );
  });
});
