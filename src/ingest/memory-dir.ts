import { statfsSync } from 'node:fs';

// A folder whose files live in memory (tmpfs): where decrypted or not-yet-encrypted Parquet may
// wait for DuckDB, since Parquet cannot be streamed in both directions through a pipe.

const TMPFS_MAGIC = 0x01021994;
export const DEFAULT_MEMORY_DIR = '/dev/shm';

export function isMemoryBacked(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}
