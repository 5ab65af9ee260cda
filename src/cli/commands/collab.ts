import type { Command } from 'commander';
import { agreementHash, assertAgreement, signAgreement, type Agreement } from '../../agreement/index.js';
import {
  getAgreement,
  getCollaboration,
  listCollaborations,
  proposeCollaboration,
  signCollaboration,
  type CollaborationView,
  type MalusClient,
} from '../../client/index.js';
import { MalusError } from '../../errors/index.js';
import { printJson, type CliIo } from '../io.js';
import { clientFor, withServerOptions, type ServerOptions } from '../server-options.js';
import { readAgreementFile } from './agreement.js';


export function describeCollaboration(view: CollaborationView, names: ReadonlyMap<string, string> = new Map()): string {
  const label = (id: string): string => (names.has(id) ? `${names.get(id) ?? ''} (${id})` : id);
  const lines = [`${view.id}: ${view.title}`, `  state: ${view.state}${view.activeHash === null ? '' : ` (${view.activeHash})`}`];
  for (const v of view.versions) {
    lines.push(`  v${v.version} ${v.hash} ${v.state}`);
    if (v.signed.length > 0) lines.push(`    signed:  ${v.signed.map(label).join(', ')}`);
    if (v.missing.length > 0) lines.push(`    missing: ${v.missing.map(label).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}

function sign(client: MalusClient, agreement: Agreement, hash: string) {
  const { keys } = client;
  if (keys === undefined) throw new MalusError('usage', 'signing needs --key KEYFILE');
  return signAgreement(agreement, hash, { partyId: keys.identity.id, signingSecret: keys.signingSecret }, new Date());
}

export function registerCollab(program: Command, io: CliIo): void {
  const collab = program.command('collab').description('propose, sign and inspect collaborations on a Malus server');

  withServerOptions(
    collab
      .command('propose')
      .description('propose an agreement (or an amendment) to the server, signed by you')
      .argument('<file>', 'the agreement (YAML or JSON)'),
  ).action(async (file: string, options: ServerOptions) => {
    const client = clientFor(io, options);
    const agreement = readAgreementFile(file);
    const view = await proposeCollaboration(client, { agreement, signature: sign(client, agreement, agreementHash(agreement)) });
    if (options.json === true) printJson(io, view);
    else io.out(describeCollaboration(view));
  });

  withServerOptions(
    collab
      .command('sign')
      .description('review and sign the latest version of a collaboration agreement')
      .argument('<id>', 'the collaboration id')
      .option('--hash <sha256>', 'sign only if the agreement has this hash (the one you reviewed)')
      .option('--agreement <file>', 'sign only if the server holds exactly this agreement'),
  ).action(async (id: string, options: ServerOptions & { hash?: string; agreement?: string }) => {
    const client = clientFor(io, options);
    const fetched = await getAgreement(client, id);
    // Recompute the hash ourselves: the server's word is not what we sign.
    const agreement = assertAgreement(fetched.agreement, `agreement of ${id}`);
    const hash = agreementHash(agreement);
    const expected = options.agreement === undefined ? options.hash : agreementHash(readAgreementFile(options.agreement));
    if (expected !== undefined && expected !== hash) {
      throw new MalusError('agreement-mismatch', `the server's agreement for ${id} has hash ${hash}, not ${expected}; not signing`);
    }
    const view = await signCollaboration(client, id, sign(client, agreement, hash));
    if (options.json === true) printJson(io, view);
    else io.out(describeCollaboration(view));
  });

  withServerOptions(collab.command('show').description('show a collaboration and who has signed').argument('<id>', 'the collaboration id')).action(
    async (id: string, options: ServerOptions) => {
      const view = await getCollaboration(clientFor(io, options), id);
      if (options.json === true) printJson(io, view);
      else io.out(describeCollaboration(view));
    },
  );

  withServerOptions(collab.command('list').description('list the collaborations you are a party to')).action(async (options: ServerOptions) => {
    const views = await listCollaborations(clientFor(io, options));
    if (options.json === true) printJson(io, views);
    else if (views.length === 0) io.out('no collaborations\n');
    else for (const v of views) io.out(`${v.id}\t${v.state}\tv${v.versions.length}\t${v.title}\n`);
  });
}
