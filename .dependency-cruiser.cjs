// The layer order of ARCHITECTURE §6 (and docs/architecture-notes.md): an import never points up,
// and a folder is entered only through its index.ts. test/architecture.test.ts runs these rules.
const LAYERS = [
  ['errors', 'crypto'],
  ['identity', 'httpsig'],
  ['agreement', 'attestation', 'dp', 'ledger', 'psi', 'secagg'],
  ['rules', 'keyrelease', 'ingest', 'engine', 'chain', 'store', 'api'],
  ['server', 'client'],
  ['joint', 'demo'],
  ['cli', 'web'],
];

const folderPattern = (folders) => `^src/(${folders.join('|')})/`;

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${i}-points-up`,
  comment: `${layer.join(', ')} may not import from a higher layer`,
  severity: 'error',
  from: { path: folderPattern(layer) },
  to: { path: folderPattern(LAYERS.slice(i + 1).flat()) },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'only-through-index',
      comment: "import another folder only through its index.ts, never its internals",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/([^/]+)/.+', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-to-test',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
