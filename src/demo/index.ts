export { runDemo, type RunDemoOptions } from './run.js';
export { runScenario, textNarrator, type Narrator, type Step } from './scenario.js';
export { DEMO_STEPS, type DemoContext } from './steps.js';
