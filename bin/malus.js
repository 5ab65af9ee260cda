#!/usr/bin/env node
// The `malus` command: a thin launcher for the compiled CLI (built by `npm run build`, run on `npm ci`).
import { main } from '../dist/cli/index.js';

process.exitCode = await main(process.argv);
