export { main, processIo, run } from './main.js';
export { buildProgram, CLI_VERSION } from './program.js';
export { cliReference, replaceReference, REFERENCE_BEGIN, REFERENCE_END } from './reference.js';
export type { CliIo } from './io.js';
