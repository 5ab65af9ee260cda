import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  authenticatedErrors,
  collaborationIdParams,
  datasetList,
  datasetParams,
  datasetView,
  problemSchema,
  uploadPieceHeaders,
  uploadProgressView,
  uploadStateView,
  workerDatasetParams,
} from '../../api/index.js';
import { MalusError } from '../../errors/index.js';
import { signedManifestSchema } from '../../ingest/index.js';
import { callerOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import {
  OffsetMismatch,
  abandonUpload,
  UPLOAD_MEDIA_TYPE,
  UPLOAD_PIECE_BYTES,
  jobDatasetFile,
  jobDatasetManifest,
  listDatasets,
  receivePiece,
  showDataset,
  startUpload,
  uploadProgress,
} from '../datasets.js';

// Dataset upload and download (docs/datasets.md). The owner PUTs its signed manifest, then PATCHes
// the encrypted file in pieces (tus 1.0 conventions: `Upload-Offset`, `application/offset+octet-stream`);
// members see the datasets; the enclave worker holding a job reads the datasets that job names.

const security = [{ httpMessageSignature: [] }];

/** Repeats the upload's position in tus headers, on answers and on an offset mismatch alike. */
function offsetHeaders(reply: FastifyReply, offset: number, bytes?: number): void {
  reply.header('upload-offset', String(offset)).header('cache-control', 'no-store');
  if (bytes !== undefined) reply.header('upload-length', String(bytes));
}

export function datasetRoutes(ctx: ServerContext): FastifyPluginAsyncZod {
  return (app) => {
    // Pieces are raw bytes, kept as received for the request signature's Content-Digest. Only this
    // media type may be larger than the server's 1 MiB JSON limit. These parsers apply to this
    // plugin's routes only.
    app.addContentTypeParser(UPLOAD_MEDIA_TYPE, { parseAs: 'buffer', bodyLimit: UPLOAD_PIECE_BYTES }, (request, body, done) => {
      request.rawBody = body as Buffer;
      done(null, body);
    });
    app.removeContentTypeParser('*');
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, _body, done) => {
      done(
        request.method === 'PATCH'
          ? new MalusError('unsupported-media-type', `an upload piece is ${UPLOAD_MEDIA_TYPE}`)
          : new MalusError('malformed-body', 'request body must be a JSON document (application/json)'),
        undefined,
      );
    });

    app.put('/v1/collaborations/:id/datasets/:dataset', {
      schema: {
        summary: "Start (or find) the upload of a dataset with its owner-signed manifest; 200 with the state when it exists",
        tags: ['datasets'],
        security,
        params: datasetParams,
        body: signedManifestSchema,
        response: { 200: uploadStateView, 201: uploadStateView, 403: problemSchema, 409: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const { created, state } = await startUpload(ctx, callerOf(request), request.params.id, request.params.dataset, request.body);
        if (state.status === 'uploading') offsetHeaders(reply, state.offset, state.bytes);
        return reply.code(created ? 201 : 200).send(state);
      },
    });

    app.get('/v1/collaborations/:id/datasets/:dataset/upload', {
      schema: {
        summary: 'How many bytes of a pending upload the server holds (the owner only)',
        tags: ['datasets'],
        security,
        params: datasetParams,
        response: { 200: uploadProgressView, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const state = await uploadProgress(ctx, callerOf(request), request.params.id, request.params.dataset);
        offsetHeaders(reply, state.offset, state.bytes);
        return state;
      },
    });

    app.delete('/v1/collaborations/:id/datasets/:dataset/upload', {
      schema: {
        summary: 'Give up a pending upload (the owner only): its bytes and its claim on the disk go; the dataset id keeps its registered data key',
        tags: ['datasets'],
        security,
        params: datasetParams,
        response: { 204: z.null().describe('the upload is gone'), 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        await abandonUpload(ctx, callerOf(request), request.params.id, request.params.dataset);
        return reply.code(204).header('cache-control', 'no-store').send(null);
      },
    });

    app.patch('/v1/collaborations/:id/datasets/:dataset/upload', {
      schema: {
        summary: `Write a piece (${UPLOAD_MEDIA_TYPE}, at most 8 MiB) at Upload-Offset; the last piece completes the dataset`,
        tags: ['datasets'],
        security,
        params: datasetParams,
        headers: uploadPieceHeaders,
        response: { 200: uploadStateView, 403: problemSchema, 409: problemSchema, 415: problemSchema, 422: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const piece = request.body;
        if (!Buffer.isBuffer(piece)) throw new MalusError('unsupported-media-type', `an upload piece is ${UPLOAD_MEDIA_TYPE}`);
        const caller = callerOf(request);
        const offset = Number(request.headers['upload-offset']);
        try {
          const state = await receivePiece(ctx, caller, request.params.id, request.params.dataset, offset, piece);
          if (state.status === 'uploading') offsetHeaders(reply, state.offset, state.bytes);
          else offsetHeaders(reply, state.bytes, state.bytes);
          return state;
        } catch (error) {
          if (error instanceof OffsetMismatch) offsetHeaders(reply, error.offset);
          throw error;
        }
      },
    });

    app.get('/v1/collaborations/:id/datasets', {
      schema: {
        summary: "The collaboration's uploaded datasets: owners, sizes, row counts and hashes",
        tags: ['datasets'],
        security,
        params: collaborationIdParams,
        response: { 200: datasetList, ...authenticatedErrors },
      },
      handler: async (request) => ({ datasets: await listDatasets(ctx, callerOf(request), request.params.id) }),
    });

    app.get('/v1/collaborations/:id/datasets/:dataset', {
      schema: {
        summary: 'One uploaded dataset',
        tags: ['datasets'],
        security,
        params: datasetParams,
        response: { 200: datasetView, ...authenticatedErrors },
      },
      handler: async (request) => showDataset(ctx, callerOf(request), request.params.id, request.params.dataset),
    });

    app.get('/v1/workers/me/jobs/:job/datasets/:dataset', {
      schema: {
        summary: "The encrypted file (application/octet-stream) of a dataset the worker's running job names",
        tags: ['workers'],
        security,
        params: workerDatasetParams,
        response: { 200: z.unknown().describe('the encrypted file (malus.dataset/v1), as application/octet-stream'), 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request, reply) => {
        const { stream, bytes } = await jobDatasetFile(ctx, callerOf(request), request.params.job, request.params.dataset);
        return reply.type('application/octet-stream').header('content-length', String(bytes)).header('cache-control', 'no-store').send(stream);
      },
    });

    app.get('/v1/workers/me/jobs/:job/datasets/:dataset/manifest', {
      schema: {
        summary: "The owner-signed manifest of a dataset the worker's running job names",
        tags: ['workers'],
        security,
        params: workerDatasetParams,
        response: { 200: signedManifestSchema, 403: problemSchema, ...authenticatedErrors },
      },
      handler: async (request) => jobDatasetManifest(ctx, callerOf(request), request.params.job, request.params.dataset),
    });
    return Promise.resolve();
  };
}
