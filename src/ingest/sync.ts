import { open } from 'node:fs/promises';

/**
 * fsync of a file or a folder through a handle of its own, on a pool thread. A folder is synced
 * to make a rename or a new name in it durable.
 */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
