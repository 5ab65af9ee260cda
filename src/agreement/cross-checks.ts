import { checkPublicIdentity, decodeSigningKey } from '../identity/index.js';
import { formatPath, type Issue } from '../errors/index.js';
import type { Agreement, AnalysisRule, Column, Role, Table } from './schema.js';

// Rules that span fields, run after the schema accepted the shape. Each returns every problem it
// finds with its path, so one run of `agreement validate` lists them all.

type Check = (agreement: Agreement) => Issue[];

function duplicates<T>(items: readonly T[], key: (item: T) => string): Map<string, number[]> {
  const seen = new Map<string, number[]>();
  items.forEach((item, index) => seen.set(key(item), [...(seen.get(key(item)) ?? []), index]));
  return new Map([...seen].filter(([, indexes]) => indexes.length > 1));
}

const partiesAreWellFormed: Check = (agreement) => {
  const issues: Issue[] = [];
  agreement.parties.forEach((party, i) => issues.push(...checkPublicIdentity(party, `parties[${i}]`)));
  for (const [id, indexes] of duplicates(agreement.parties, (p) => p.id)) {
    for (const i of indexes.slice(1)) issues.push({ path: `parties[${i}].id`, message: `duplicate party id ${id}` });
  }
  for (const [, indexes] of duplicates(agreement.parties, (p) => p.signingKey)) {
    for (const i of indexes.slice(1)) issues.push({ path: `parties[${i}].signingKey`, message: 'duplicate signing key' });
  }
  if (!agreement.parties.some((p) => p.roles.includes('signer'))) {
    issues.push({ path: 'parties', message: 'at least one party must have the signer role' });
  }
  return issues;
};

/** Checks that a referenced party exists and, when given, holds a role. */
function partyRef(agreement: Agreement, id: string, path: string, role?: Role): Issue[] {
  const party = agreement.parties.find((p) => p.id === id);
  if (party === undefined) return [{ path, message: `party ${id} is not in parties` }];
  if (role !== undefined && !party.roles.includes(role)) {
    return [{ path, message: `party ${id} (${party.name}) must have the ${role} role` }];
  }
  return [];
}

function ruleColumns(rule: AnalysisRule): { field: string; names: string[] }[] {
  switch (rule.type) {
    case 'aggregation':
      return [
        ...rule.aggregateColumns.map((c, i) => ({ field: `aggregateColumns[${i}].columnNames`, names: c.columnNames })),
        { field: 'joinColumns', names: rule.joinColumns },
        { field: 'dimensionColumns', names: rule.dimensionColumns },
        ...rule.outputConstraints.map((c, i) => ({ field: `outputConstraints[${i}].columnName`, names: [c.columnName] })),
      ];
    case 'list':
      return [
        { field: 'joinColumns', names: rule.joinColumns },
        { field: 'listColumns', names: rule.listColumns },
        ...(rule.outputConstraints ?? []).map((c, i) => ({ field: `outputConstraints[${i}].columnName`, names: [c.columnName] })),
      ];
    case 'custom':
      return [];
  }
}

/** The columns `dataset prepare` replaces by pseudonyms: the identity column and the join columns. */
export function pseudonymizedColumns(table: Table): string[] {
  const rule = table.analysisRule;
  const joins = rule.type === 'custom' ? [] : rule.joinColumns;
  const names = new Set([...(table.identityColumn === null ? [] : [table.identityColumn]), ...joins]);
  // A C3R fingerprint is already a keyed hash: it is joined on as it is.
  return table.columns.filter((c) => names.has(c.name) && c.c3r !== 'fingerprint').map((c) => c.name);
}

function checkPreparation(table: Table, path: string): Issue[] {
  const issues: Issue[] = [];
  const pseudonymized = new Set(pseudonymizedColumns(table));
  table.columns.forEach((column, i) => {
    const where = `${path}.columns[${i}]`;
    if (pseudonymized.has(column.name) && column.type !== 'VARCHAR') {
      issues.push({ path: `${where}.type`, message: `${column.name} is an identity or join column: it is pseudonymized, so its type must be VARCHAR` });
    }
    (column.normalize ?? []).forEach((normalizer, j) => {
      const isDate = normalizer.startsWith('date:');
      if (isDate && !['DATE', 'TIMESTAMP', 'TIMESTAMPTZ', 'VARCHAR'].includes(column.type)) {
        issues.push({ path: `${where}.normalize[${j}]`, message: `${normalizer} needs a DATE, TIMESTAMP, TIMESTAMPTZ or VARCHAR column` });
      }
      if (!isDate && column.type !== 'VARCHAR') {
        issues.push({ path: `${where}.normalize[${j}]`, message: `${normalizer} applies to VARCHAR columns only` });
      }
    });
    if (column.c3r !== undefined && table.c3r === undefined) {
      issues.push({ path: `${where}.c3r`, message: 'a C3R column kind needs the table-level c3r settings' });
    }
    if (table.c3r !== undefined && column.c3r === undefined) {
      issues.push({ path: `${where}.c3r`, message: 'every column of a C3R table names its kind: cleartext, sealed or fingerprint' });
    }
    if (column.c3r !== undefined && column.c3r !== 'cleartext' && column.type !== 'VARCHAR') {
      issues.push({ path: `${where}.type`, message: `a C3R ${column.c3r} column holds text: its type must be VARCHAR` });
    }
    // A sealed cell is randomized ciphertext: equal values never match, so it can neither join nor
    // stand for a person (and pseudonymizing it would leave nothing the enclave could open).
    if (column.c3r === 'sealed' && pseudonymized.has(column.name)) {
      issues.push({ path: `${where}.c3r`, message: `${column.name} is an identity or join column: a C3R sealed column cannot be one (sealed cells never match); use a fingerprint column` });
    }
    if (column.c3r === 'cleartext' && table.c3r?.allowCleartext === false) {
      issues.push({ path: `${where}.c3r`, message: 'the table\'s C3R settings do not allow cleartext columns' });
    }
  });
  if (table.duplicates === 'reject' && table.identityColumn === null) {
    issues.push({ path: `${path}.duplicates`, message: 'rejecting duplicates needs an identity column' });
  }
  const { min, max } = table.rows ?? {};
  if (min !== undefined && max !== undefined && min > max) {
    issues.push({ path: `${path}.rows.min`, message: `rows.min ${min} exceeds rows.max ${max}` });
  }
  return issues;
}

function checkTable(agreement: Agreement, table: Table, path: string): Issue[] {
  const issues = partyRef(agreement, table.owner, `${path}.owner`, 'provider');
  const columns = new Set(table.columns.map((c) => c.name));
  for (const [name, indexes] of duplicates(table.columns, (c) => c.name)) {
    for (const i of indexes.slice(1)) issues.push({ path: `${path}.columns[${i}].name`, message: `duplicate column ${name}` });
  }
  if (table.identityColumn !== null && !columns.has(table.identityColumn)) {
    issues.push({ path: `${path}.identityColumn`, message: `column ${table.identityColumn} is not in columns` });
  }
  issues.push(...checkPreparation(table, path));
  const rule = table.analysisRule;
  for (const { field, names } of ruleColumns(rule)) {
    names.forEach((name, i) => {
      if (!columns.has(name)) {
        const where = field.endsWith('columnName') ? `${path}.analysisRule.${field}` : `${path}.analysisRule.${field}[${i}]`;
        issues.push({ path: where, message: `column ${name} is not in columns` });
      }
    });
  }
  if (rule.type === 'custom') {
    const templates = new Set((agreement.templates ?? []).map((t) => t.name));
    rule.allowedTemplates.forEach((name, i) => {
      if (!templates.has(name)) {
        issues.push({ path: `${path}.analysisRule.allowedTemplates[${i}]`, message: `template ${name} is not in templates` });
      }
    });
    rule.allowedAnalysisProviders?.forEach((id, i) =>
      issues.push(...partyRef(agreement, id, `${path}.analysisRule.allowedAnalysisProviders[${i}]`, 'analyst')),
    );
  }
  return issues;
}

const tablesAreConsistent: Check = (agreement) => {
  const issues: Issue[] = [];
  for (const [name, indexes] of duplicates(agreement.tables, (t) => t.name)) {
    for (const i of indexes.slice(1)) issues.push({ path: `tables[${i}].name`, message: `duplicate table ${name}` });
  }
  agreement.tables.forEach((table, i) => issues.push(...checkTable(agreement, table, `tables[${i}]`)));
  return issues;
};

const templatesAreConsistent: Check = (agreement) => {
  const issues: Issue[] = [];
  const templates = agreement.templates ?? [];
  for (const [name, indexes] of duplicates(templates, (t) => t.name)) {
    for (const i of indexes.slice(1)) issues.push({ path: `templates[${i}].name`, message: `duplicate template ${name}` });
  }
  templates.forEach((template, i) => {
    template.approvedBy.forEach((id, j) => issues.push(...partyRef(agreement, id, `templates[${i}].approvedBy[${j}]`)));
    for (const [name, indexes] of duplicates(template.parameters, (p) => p.name)) {
      for (const j of indexes.slice(1)) {
        issues.push({ path: `templates[${i}].parameters[${j}].name`, message: `duplicate parameter ${name}` });
      }
    }
    (template.outputConstraints ?? []).forEach((constraint, j) => {
      const table = agreement.tables.find((t) => t.name === constraint.table);
      if (table === undefined) issues.push({ path: `templates[${i}].outputConstraints[${j}].table`, message: `table ${constraint.table} is not in tables` });
      else if (!table.columns.some((c) => c.name === constraint.columnName)) {
        issues.push({ path: `templates[${i}].outputConstraints[${j}].columnName`, message: `column ${constraint.columnName} is not in table ${table.name}` });
      }
    });
    template.parameters.forEach((parameter, j) => {
      const { min, max } = parameter;
      if (min !== undefined && max !== undefined && typeof min === typeof max && min > max) {
        issues.push({ path: `templates[${i}].parameters[${j}].max`, message: 'must not be below min' });
      }
    });
  });
  return issues;
};

const receiversAreParties: Check = (agreement) =>
  agreement.receivers.flatMap((id, i) => partyRef(agreement, id, `receivers[${i}]`, 'receiver'));

const versionIsConsistent: Check = (agreement) => {
  const issues: Issue[] = [];
  if (agreement.version === 1 && agreement.previous !== null) {
    issues.push({ path: 'previous', message: 'must be null for version 1' });
  }
  if (agreement.version > 1 && agreement.previous === null) {
    issues.push({ path: 'previous', message: `version ${agreement.version} must name the hash of the version it amends` });
  }
  if (Date.parse(agreement.validUntil) <= Date.parse(agreement.validFrom)) {
    issues.push({ path: 'validUntil', message: 'must be after validFrom' });
  }
  return issues;
};

const enclavePolicyIsSafe: Check = (agreement) => {
  const { enclave } = agreement;
  // Debug enclaves leak their memory to the host; only the simulated platform may claim debug.
  if (enclave.allowDebug && enclave.platforms.some((p) => p !== 'sim')) {
    return [{ path: 'enclave.allowDebug', message: 'may be true only when platforms is [sim]' }];
  }
  return [];
};

const privacyIsConsistent: Check = (agreement) => {
  const { privacy } = agreement;
  if (privacy === undefined) return [];
  const issues: Issue[] = [];
  const tables = new Set(agreement.tables.map((t) => t.name));
  const templates = new Set((agreement.templates ?? []).map((t) => t.name));
  const unit = privacy.accounting === 'pure' ? 'epsilon' : 'rho';
  const other = unit === 'epsilon' ? 'rho' : 'epsilon';
  if (privacy.budget[unit] === undefined) issues.push({ path: `privacy.budget.${unit}`, message: `required for ${privacy.accounting} accounting` });
  // A budget in the other unit would never be compared with anything: it would look like a limit and limit nothing.
  const foreign = `${privacy.accounting} accounting charges ${unit}: a budget in ${other} would limit nothing`;
  if (privacy.budget[other] !== undefined) issues.push({ path: `privacy.budget.${other}`, message: foreign });
  privacy.analystBudgets?.forEach((b, i) => {
    if (b[unit] === undefined) issues.push({ path: `privacy.analystBudgets[${i}].${unit}`, message: `required for ${privacy.accounting} accounting` });
    if (b[other] !== undefined) issues.push({ path: `privacy.analystBudgets[${i}].${other}`, message: foreign });
  });
  privacy.policies.forEach((policy, i) => {
    const path = `privacy.policies[${i}]`;
    if ((policy.table === undefined) === (policy.template === undefined)) {
      issues.push({ path, message: 'name exactly one of table or template' });
    }
    if (policy.table !== undefined && !tables.has(policy.table)) {
      issues.push({ path: `${path}.table`, message: `table ${policy.table} is not in tables` });
    }
    if (policy.template !== undefined && !templates.has(policy.template)) {
      issues.push({ path: `${path}.template`, message: `template ${policy.template} is not in templates` });
    }
    if (policy.costPerQuery[unit] === undefined) {
      issues.push({ path: `${path}.costPerQuery.${unit}`, message: `required for ${privacy.accounting} accounting` });
    }
    if (privacy.accounting === 'pure' && policy.mechanism === 'gaussian') {
      issues.push({ path: `${path}.mechanism`, message: 'gaussian noise is not pure DP: use laplace, or zcdp accounting' });
    }
    if (policy.partitionSelection !== undefined && privacy.budget.delta === undefined) {
      issues.push({ path: `${path}.partitionSelection`, message: 'spends delta, so privacy.budget.delta is required' });
    }
    const columnOf = (entry: { table?: string | undefined; column: string }, at: string): Column | undefined => {
      const tableName = entry.table ?? policy.table;
      if (tableName === undefined) {
        issues.push({ path: `${at}.table`, message: "required in a template's policy" });
        return undefined;
      }
      const table = agreement.tables.find((t) => t.name === tableName);
      const column = table?.columns.find((c) => c.name === entry.column);
      if (column === undefined) issues.push({ path: `${at}.column`, message: `${tableName}.${entry.column} is not a column of the agreement` });
      return column;
    };
    policy.bounds?.forEach((b, j) => {
      const at = `${path}.bounds[${j}]`;
      const column = columnOf(b, at);
      if (!(b.lower < b.upper)) issues.push({ path: `${at}.upper`, message: 'must be greater than lower' });
      if (column !== undefined && !/^(?:TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|DECIMAL\(\d+,\s*\d+\))$/i.test(column.type)) {
        issues.push({ path: `${at}.column`, message: `${b.column} is ${column.type}: only integer and DECIMAL columns are summed exactly` });
      }
    });
    policy.publicDomain?.forEach((d, j) => {
      const at = `${path}.publicDomain[${j}]`;
      const column = columnOf(d, at);
      if (column !== undefined && column.type.toUpperCase() !== 'VARCHAR') issues.push({ path: `${at}.column`, message: `${d.column} is ${column.type}: a public domain lists VARCHAR values` });
    });
  });
  (agreement.templates ?? []).forEach((t, i) => {
    t.parameters.forEach((p, j) => {
      if (p.name.toLowerCase().startsWith('malus_')) issues.push({ path: `templates[${i}].parameters[${j}].name`, message: 'names starting with malus_ are reserved' });
    });
  });
  privacy.analystBudgets?.forEach((b, i) => issues.push(...partyRef(agreement, b.party, `privacy.analystBudgets[${i}].party`, 'analyst')));
  return issues;
};

const cryptoComputationsAreConsistent: Check = (agreement) => {
  const issues: Issue[] = [];
  const names = new Set<string>();
  agreement.psi?.forEach((c, i) => {
    const path = `psi[${i}]`;
    if (names.has(c.name)) issues.push({ path: `${path}.name`, message: `duplicate computation ${c.name}` });
    names.add(c.name);
    issues.push(...partyRef(agreement, c.sender, `${path}.sender`, 'provider'), ...partyRef(agreement, c.receiver, `${path}.receiver`));
    if (c.sender === c.receiver) issues.push({ path: `${path}.receiver`, message: 'the receiver must be another party than the sender' });
  });
  agreement.secureAggregation?.forEach((c, i) => {
    const path = `secureAggregation[${i}]`;
    if (names.has(c.name)) issues.push({ path: `${path}.name`, message: `duplicate computation ${c.name}` });
    names.add(c.name);
    c.parties.forEach((p, j) => issues.push(...partyRef(agreement, p, `${path}.parties[${j}]`, 'provider')));
    c.receivers.forEach((p, j) => issues.push(...partyRef(agreement, p, `${path}.receivers[${j}]`)));
    if (c.threshold > c.parties.length) issues.push({ path: `${path}.threshold`, message: `at most the number of parties (${c.parties.length})` });
    else if (c.threshold <= c.parties.length / 2) {
      issues.push({ path: `${path}.threshold`, message: `more than half the parties (${Math.floor(c.parties.length / 2) + 1} or more): a smaller one lets a server split the parties` });
    }
    // The sum of every party's clipped, quantized entry must not wrap modulo 2^32 (as a signed value).
    if (c.parties.length * Math.round(c.clip * 2 ** c.fractionBits) > 2 ** 31 - 1) {
      issues.push({ path: `${path}.clip`, message: 'parties × clip × 2^fractionBits must stay below 2^31: lower clip or fractionBits' });
    }
  });
  return issues;
};

const keyReleaseIsConsistent: Check = (agreement) =>
  (agreement.keyRelease?.endpoints ?? []).flatMap((endpoint, i) => {
    const issues = partyRef(agreement, endpoint.owner, `keyRelease.endpoints[${i}].owner`, 'provider');
    if (endpoint.signingKey !== undefined) {
      const key = decodeSigningKey(endpoint.signingKey);
      if ('problem' in key) issues.push({ path: `keyRelease.endpoints[${i}].signingKey`, message: key.problem });
    }
    const parsed = new URL(endpoint.url);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
      issues.push({ path: `keyRelease.endpoints[${i}].url`, message: 'must be https (http only on loopback)' });
    }
    return issues;
  });

const settlementIsConsistent: Check = (agreement) => {
  const { settlement } = agreement;
  if (settlement === undefined) return [];
  const issues = partyRef(agreement, settlement.payer, 'settlement.payer', 'payer');
  settlement.payees.forEach((payee, i) => issues.push(...partyRef(agreement, payee.party, `settlement.payees[${i}].party`, 'payee')));
  const total = settlement.payees.reduce((sum, p) => sum + p.shareBasisPoints, 0);
  if (total !== 10000) issues.push({ path: 'settlement.payees', message: `shares must add up to 10000 basis points, not ${total}` });
  return issues;
};

/** RFC 8785 cannot canonicalize a string holding a lone UTF-16 surrogate, so it could never be hashed. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function stringIssues(value: unknown, path: PropertyKey[]): Issue[] {
  if (typeof value === 'string') {
    return LONE_SURROGATE.test(value) ? [{ path: formatPath(path), message: 'contains a lone UTF-16 surrogate' }] : [];
  }
  if (Array.isArray(value)) return value.flatMap((item: unknown, i) => stringIssues(item, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => stringIssues(item, [...path, key]));
  }
  return [];
}

const stringsAreWellFormed: Check = (agreement) => stringIssues(agreement, []);

const CHECKS: readonly Check[] = [
  stringsAreWellFormed,
  partiesAreWellFormed,
  tablesAreConsistent,
  templatesAreConsistent,
  receiversAreParties,
  versionIsConsistent,
  enclavePolicyIsSafe,
  privacyIsConsistent,
  cryptoComputationsAreConsistent,
  keyReleaseIsConsistent,
  settlementIsConsistent,
];

export function crossCheckAgreement(agreement: Agreement): Issue[] {
  return CHECKS.flatMap((check) => check(agreement));
}
