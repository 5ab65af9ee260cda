// A demo is a scenario: an ordered list of steps, each saying what happens and why it matters, then
// doing it for real. Later capabilities add their own steps to DEMO_STEPS; the runner stays the same.

export interface Narrator {
  /** A step heading. */
  step(index: number, title: string): void;
  /** Why this step matters, in a sentence or two. */
  why(text: string): void;
  /** What just happened. */
  say(text: string): void;
}

export interface Step<Ctx> {
  readonly title: string;
  readonly why: string;
  run(ctx: Ctx, narrator: Narrator): Promise<void>;
}

export async function runScenario<Ctx>(steps: readonly Step<Ctx>[], ctx: Ctx, narrator: Narrator): Promise<void> {
  let index = 0;
  for (const step of steps) {
    index += 1;
    narrator.step(index, step.title);
    narrator.why(step.why);
    await step.run(ctx, narrator);
  }
}

/** Plain-text narration, wrapped for a terminal. */
export function textNarrator(write: (text: string) => void): Narrator {
  const wrap = (text: string, indent: string): string => {
    const words = text.split(/\s+/).filter((w) => w !== '');
    const lines: string[] = [];
    let line = '';
    for (const word of words) {
      if (line !== '' && indent.length + line.length + 1 + word.length > 96) {
        lines.push(line);
        line = word;
      } else {
        line = line === '' ? word : `${line} ${word}`;
      }
    }
    if (line !== '') lines.push(line);
    const hanging = ' '.repeat(indent.length);
    return lines.map((l, i) => `${i === 0 ? indent : hanging}${l}\n`).join('');
  };
  return {
    step: (index, title) => {
      write(`\n${index}. ${title}\n`);
    },
    why: (text) => {
      write(wrap(text, '   why: '));
    },
    say: (text) => {
      write(text.split('\n').map((l) => `   ${l}\n`).join(''));
    },
  };
}
