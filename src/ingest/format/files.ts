/** The files `malus dataset prepare` writes into its output folder, and `dataset upload` reads. */
export const DATASET_FILES = {
  /** The encrypted dataset (`malus.dataset/v1`). */
  ciphertext: 'dataset.mds',
  /** The owner-signed manifest (`malus.dataset-manifest/v1`). */
  manifest: 'manifest.json',
  /** The data key, sealed to the owner's own X25519 key (`malus.sealed-data-key/v1`), mode 0600. */
  dataKey: 'data-key.json',
} as const;
