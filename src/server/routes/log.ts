import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  authenticatedErrors,
  checkpointListView,
  consistencyProofView,
  consistencyQuery,
  cosignatureAccepted,
  cosignatureBody,
  entriesQuery,
  inclusionProofView,
  inclusionQuery,
  logEntriesView,
  logKeyView,
  problemSchema,
  receiptQuery,
  receiptView,
} from '../../api/index.js';
import { MalusError } from '../../errors/index.js';
import { TILE_WIDTH, encodeEntryBundle, parseTilePath } from '../../ledger/index.js';
import { callerOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { addCosignature, consistencyProof, entriesOf, inclusionProof, receiptFor } from '../log.js';

const security = [{ httpMessageSignature: [] }];
const publicErrors = { 400: problemSchema, 404: problemSchema } as const;

export interface LogRouteOptions {
  /** Serve entry bundles (`tile/entries/…`) to anyone. Off by default: entries name collaborations and parties. */
  readonly publicEntries: boolean;
}

export function logRoutes(ctx: ServerContext, options: LogRouteOptions): FastifyPluginAsyncZod {
  return (app) => {
    app.get('/v1/log/checkpoint', {
      config: { public: true },
      schema: {
        summary: 'The newest signed checkpoint (C2SP tlog-checkpoint) with every witness cosignature, as text/plain',
        tags: ['log'],
      },
      handler: async (_request, reply) => {
        const { note } = await ctx.log.latestNote();
        return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-cache').send(note);
      },
    });

    app.get('/v1/log/key', {
      config: { public: true },
      schema: { summary: "The log's origin and note verifier key (pin it out of band)", tags: ['log'], response: { 200: logKeyView } },
      handler: () => ({ origin: ctx.log.origin, verifierKey: ctx.log.verifierKey }),
    });

    app.get('/v1/log/checkpoints', {
      config: { public: true },
      schema: { summary: 'Every checkpoint the log signed, oldest first, with cosignatures', tags: ['log'], response: { 200: checkpointListView } },
      handler: async () => {
        const records = await ctx.store.log.listCheckpoints();
        const checkpoints = await Promise.all(
          records.map(async (r) => ({ size: r.size, createdAt: r.createdAt, note: (await ctx.log.noteOfSize(r.size)) ?? r.note })),
        );
        return { checkpoints };
      },
    });

    app.get('/v1/log/tile/*', {
      config: { public: true },
      schema: { summary: 'C2SP tlog-tiles: hash tiles (public) and entry bundles', tags: ['log'], params: z.object({ '*': z.string() }) },
      handler: async (request, reply) => {
        const tile = parseTilePath(`tile/${request.params['*']}`);
        if (tile === undefined) throw new MalusError('not-found', 'no such tile');
        const { size } = await ctx.log.latestNote();
        await ctx.log.sync();
        // Only tiles inside the newest checkpoint: readers verify them against it.
        const firstLeaf = tile.index * TILE_WIDTH * (tile.kind === 'hash' ? TILE_WIDTH ** tile.level : 1);
        const leaves = tile.width * (tile.kind === 'hash' ? TILE_WIDTH ** tile.level : 1);
        if (firstLeaf + leaves > size) throw new MalusError('not-found', 'no such tile in the current checkpoint');
        const full = tile.width === TILE_WIDTH;
        reply.header('cache-control', full ? 'public, max-age=31536000, immutable' : 'no-cache');
        if (tile.kind === 'hash') {
          return reply.type('application/octet-stream').send(Buffer.from(ctx.log.tree.tileHashes(tile.level, tile.index, tile.width)));
        }
        if (!options.publicEntries) throw new MalusError('not-found', 'entry bundles are not public on this server');
        const entries = await ctx.store.log.entries(firstLeaf, firstLeaf + leaves);
        return reply.type('application/octet-stream').send(Buffer.from(encodeEntryBundle(entries.map((e) => e.data))));
      },
    });

    app.get('/v1/log/proof/inclusion', {
      config: { public: true },
      schema: { summary: 'RFC 9162 inclusion proof', tags: ['log'], querystring: inclusionQuery, response: { 200: inclusionProofView, ...publicErrors } },
      handler: (request) => inclusionProof(ctx, request.query.index, request.query.size),
    });

    app.get('/v1/log/proof/consistency', {
      config: { public: true },
      schema: { summary: 'RFC 9162 consistency proof', tags: ['log'], querystring: consistencyQuery, response: { 200: consistencyProofView, ...publicErrors } },
      handler: (request) => consistencyProof(ctx, request.query.from, request.query.to),
    });

    app.get('/v1/log/entries', {
      schema: {
        summary: "A collaboration's log entries (members only)",
        tags: ['log'],
        security,
        querystring: entriesQuery,
        response: { 200: logEntriesView, ...authenticatedErrors },
      },
      handler: async (request) => ({ entries: await entriesOf(ctx, callerOf(request), request.query.collaboration) }),
    });

    app.get('/v1/log/receipt', {
      schema: {
        summary: 'A receipt for one entry: the entry, a signed checkpoint including it, the inclusion proof',
        tags: ['log'],
        security,
        querystring: receiptQuery,
        response: { 200: receiptView, ...authenticatedErrors },
      },
      handler: (request) => receiptFor(ctx, callerOf(request), request.query.index),
    });

    app.post('/v1/log/cosignatures', {
      schema: {
        summary: 'Add a witness cosignature (tlog-cosignature/v1) to a checkpoint',
        tags: ['log'],
        security,
        body: cosignatureBody,
        response: { 200: cosignatureAccepted, 201: cosignatureAccepted, 403: problemSchema, 409: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const result = await addCosignature(ctx, callerOf(request), request.body.size, request.body.cosignature);
        return reply.code(result.added ? 201 : 200).send(result);
      },
    });
    return Promise.resolve();
  };
}
