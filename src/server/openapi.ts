// The API of `ous serve` as OpenAPI 3.1 (served at /api/openapi.json), generated from the zod
// schemas of contract.ts: the document cannot say other than what the server's types are.
import { registerLiveRoutes } from './live.js';
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import {
  AcceptedSchema,
  ErrorSchema,
  HealthSchema,
  JobSchema,
  ModelSchema,
  PredictQuerySchema,
  SamplesSchema,
} from './contract.js';

export interface DocumentLimits {
  maxUploadMb: number;
  maxSeconds: number;
}

const json = (schema: z.ZodTypeAny) => ({ 'application/json': { schema } });
const error = (description: string, headers?: ResponseConfig['headers']): ResponseConfig => ({
  description,
  content: json(ErrorSchema),
  ...(headers ? { headers } : {}),
});
const retryAfter = { 'Retry-After': { schema: { type: 'integer' as const }, description: 'seconds' } };
const JobId = z.object({ id: z.string().describe("the job's id (a random UUID, its only key)") });

function predictPath(r: OpenAPIRegistry, limits: DocumentLimits): void {
  const binary = { schema: { type: 'string' as const, format: 'binary' } };
  r.registerPath({
    method: 'post',
    path: '/api/predict',
    summary: 'queue a video',
    request: {
      query: PredictQuerySchema,
      body: {
        description:
          'the video, as the body or the file of a multipart/form-data body; ' +
          `at most ${limits.maxUploadMb} MB and ${limits.maxSeconds} s`,
        content: {
          'video/*': binary,
          'application/octet-stream': binary,
          'multipart/form-data': { schema: z.object({ video: z.string().openapi({ format: 'binary' }) }) },
        },
      },
    },
    responses: {
      202: {
        description: 'queued',
        headers: { Location: { schema: { type: 'string' }, description: '/api/jobs/{id}' } },
        content: json(AcceptedSchema),
      },
      400: error(
        'a query parameter this server cannot use, named (box, window, stride, persons, person), ' +
          'e.g. a window that holds fewer frames of this video than the model needs; two Host headers',
      ),
      403: error('a POST from another origin (Origin, Sec-Fetch-Site)'),
      404: error('no such sample clip'),
      408: error(
        'the body arrived slower than the minimum rate (8 KB/s over 10 s), or not within the request ' +
          'timeout (or is shorter than its Content-Length)',
      ),
      413: error(`larger than ${limits.maxUploadMb} MB (--max-upload-mb), or a form with too many parts`),
      421: error('the Host names another server (only the bound address, localhost and --public-host are answered)'),
      422: error(
        'not a video this server reads: a malformed form, a container outside the allow-list (playlists, ' +
          `lists, images), undecodable, or longer than ${limits.maxSeconds} s (--max-seconds)`,
      ),
      429: error('this client address already has its uploads arriving; nothing of the body was read', retryAfter),
      503: error(
        'the queue is full (the jobs waiting, the uploads arriving and the jobs running are counted ' +
          'in the reason), the model is still loading, or the server is shutting down; nothing of the body was read',
        retryAfter,
      ),
    },
  });
}

function jobPaths(r: OpenAPIRegistry): void {
  r.registerPath({
    method: 'get',
    path: '/api/jobs/{id}',
    summary:
      'a job: queue position, stage and progress; the prediction when done. A finished job stays here ' +
      'for an hour after it ends, then is forgotten (404)',
    request: { params: JobId },
    responses: { 200: { description: 'the job', content: json(JobSchema) }, 404: error('no such job') },
  });
  r.registerPath({
    method: 'delete',
    path: '/api/jobs/{id}',
    summary:
      'cancels a queued or running job (its id is its key): a queued one leaves the queue, a running ' +
      "one's worker is stopped and replaced; the job then reads failed, 'cancelled by its client'",
    request: { params: JobId },
    responses: {
      200: { description: 'the job, cancelled', content: json(JobSchema) },
      403: error('from another origin (Origin, Sec-Fetch-Site)'),
      404: error('no such job'),
      409: error('the job has already ended'),
    },
  });
}

function readPaths(r: OpenAPIRegistry): void {
  const get = (path: string, summary: string, schema: z.ZodTypeAny, more: Record<number, ResponseConfig> = {}) =>
    r.registerPath({
      method: 'get',
      path,
      summary,
      responses: { 200: { description: summary, content: json(schema) }, ...more },
    });
  get('/api/health', 'workers, queue and camera sessions (never waits on uploads or jobs)', HealthSchema);
  get('/api/model', "classes, encoder and the run's config", ModelSchema, {
    503: error('the model is still loading', retryAfter),
  });
  get('/api/samples', 'sample clips from the built-in benchmark', SamplesSchema);
}

/** The document, with this server's limits in its words. */
export function openApi(limits: DocumentLimits): Record<string, unknown> {
  const r = new OpenAPIRegistry();
  predictPath(r, limits);
  jobPaths(r);
  readPaths(r);
  registerLiveRoutes(r);
  return new OpenApiGeneratorV31(r.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'ous serve',
      version: '1',
      description:
        'Emotion in a video with OUS (scene-guided dynamic facial expression recognition): ' +
        "the emotion, scene polarity, the scene's effect, and a timeline of windows.",
    },
  }) as unknown as Record<string, unknown>;
}
