import type { Command } from 'commander';
import type { CliIo } from '../io.js';

/** `malus dataset prepare`: registered under the `dataset` command group. */
export function registerDatasetPrepare(dataset: Command, io: CliIo): void {
  void io;
  void dataset;
}
