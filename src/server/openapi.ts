// The API of `ous serve` as OpenAPI 3.1 (served at /api/openapi.json).
export function openApi(limits: { maxUploadMb: number; maxSeconds: number }): Record<string, unknown> {
  const error = {
    description: 'an error',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  };
  const jsonOf = (schema: unknown) => ({ 'application/json': { schema } });
  const probs = { type: 'object', additionalProperties: { type: 'number' } };
  const sceneEffect = {
    type: ['object', 'null'],
    properties: {
      totalVariation: { type: 'number' },
      changedDecision: { type: 'boolean' },
      emotionWithoutScene: { type: 'string' },
    },
  };
  const box = {
    type: 'array',
    items: { type: 'number' },
    minItems: 4,
    maxItems: 4,
    description: "[x, y, w, h] in the video's displayed pixels",
  };
  const window = {
    type: 'object',
    properties: {
      start: { type: 'number' },
      end: { type: 'number' },
      emotion: { type: 'string' },
      probabilities: probs,
      polarity: { type: ['object', 'null'], additionalProperties: { type: 'number' } },
      sceneEffect,
      faceBox: box,
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'ous serve',
      version: '1',
      description:
        'Emotion in a video with OUS (scene-guided dynamic facial expression recognition): ' +
        "the emotion, scene polarity, the scene's effect, and a timeline of windows.",
    },
    paths: {
      '/api/predict': {
        post: {
          summary: 'queue a video',
          parameters: [
            {
              name: 'sample',
              in: 'query',
              schema: { type: 'string' },
              description: 'predict a built-in sample clip instead of an upload',
            },
            {
              name: 'box',
              in: 'query',
              schema: { type: 'string' },
              description: "x,y,w,h: a known face box in the video's pixels (no detection)",
            },
            {
              name: 'persons',
              in: 'query',
              schema: { type: 'string', enum: ['all'] },
              description: 'all: a timeline for every person in the video (result.persons)',
            },
            {
              name: 'person',
              in: 'query',
              schema: { type: 'integer', minimum: 0 },
              description: "one person's timeline, by id (0, 1, ...: by first appearance, then left to right)",
            },
            { name: 'window', in: 'query', schema: { type: 'number' }, description: 'seconds per window (2)' },
            { name: 'stride', in: 'query', schema: { type: 'number' }, description: 'seconds between windows (1)' },
          ],
          requestBody: {
            description:
              'the video, as the body or the file of a multipart/form-data body; ' +
              `at most ${limits.maxUploadMb} MB and ${limits.maxSeconds} s`,
            content: {
              'video/*': { schema: { type: 'string', format: 'binary' } },
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
              'multipart/form-data': {
                schema: { type: 'object', properties: { video: { type: 'string', format: 'binary' } } },
              },
            },
          },
          responses: {
            '202': {
              description: 'queued',
              headers: { Location: { schema: { type: 'string' } } },
              content: jsonOf({
                type: 'object',
                properties: { id: { type: 'string' }, status: { type: 'string' }, position: { type: 'integer' } },
              }),
            },
            '400': {
              ...error,
              description:
                'a query parameter this server cannot use, named (box, window, stride, persons, person), ' +
                'e.g. a window that holds fewer frames of this video than the model needs; two Host headers',
            },
            '403': { ...error, description: 'a POST from another origin (Origin, Sec-Fetch-Site)' },
            '404': error,
            '408': {
              ...error,
              description:
                'the body arrived slower than the minimum rate (8 KB/s over 10 s), or not within the request ' +
                'timeout (or is shorter than its Content-Length)',
            },
            '413': error,
            '421': {
              ...error,
              description:
                'the Host names another server (only the bound address, localhost and --public-host are answered)',
            },
            '422': {
              ...error,
              description:
                'not a video this server reads: a malformed form, a format outside the allow-list (playlists, ' +
                'lists, images), undecodable, or longer than --max-seconds',
            },
            '429': {
              ...error,
              description: 'this client address already has 2 uploads arriving; nothing of the body was read',
              headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } },
            },
            '503': {
              ...error,
              description:
                'the queue is full (the jobs waiting, the uploads arriving and the jobs running are counted ' +
                'in the reason), or the server is shutting down; nothing of the body was read',
              headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } },
            },
          },
        },
      },
      '/api/jobs/{id}': {
        get: {
          summary:
            'a job: queue position, stage and progress; the prediction when done. A finished job stays here ' +
            'for an hour after it ends, then is forgotten (404)',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': { description: 'the job', content: jsonOf({ $ref: '#/components/schemas/Job' }) },
            '404': error,
          },
        },
        delete: {
          summary:
            'cancels a queued or running job (its id is its key): a queued one leaves the queue, a running ' +
            "one's worker is stopped and replaced; the job then reads failed, 'cancelled by its client'",
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': { description: 'the job, cancelled', content: jsonOf({ $ref: '#/components/schemas/Job' }) },
            '403': { ...error, description: 'from another origin (Origin, Sec-Fetch-Site)' },
            '404': error,
            '409': { ...error, description: 'the job has already ended' },
          },
        },
      },
      '/api/health': {
        get: {
          summary: 'workers and queue',
          responses: { '200': { description: 'ok', content: jsonOf({ type: 'object' }) } },
        },
      },
      '/api/model': {
        get: {
          summary: "classes, encoder and the run's config",
          responses: { '200': { description: 'the model', content: jsonOf({ type: 'object' }) } },
        },
      },
      '/api/samples': {
        get: {
          summary: 'sample clips from the built-in benchmark',
          responses: { '200': { description: 'the clips', content: jsonOf({ type: 'array' }) } },
        },
      },
    },
    components: {
      schemas: {
        Error: { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] },
        Prediction: {
          type: 'object',
          description: 'the same JSON as `ous predict --json`',
          properties: {
            video: { type: 'string' },
            emotion: { type: 'string' },
            probabilities: probs,
            polarity: { type: ['object', 'null'] },
            sceneEffect,
            faceMissing: { type: 'boolean' },
            duration: { type: 'number' },
            width: { type: 'number' },
            height: { type: 'number' },
            windows: { type: 'array', items: window },
            faces: {
              type: 'array',
              items: { type: 'object', properties: { time: { type: 'number' }, box, detected: { type: 'boolean' } } },
            },
            summary: { type: 'object' },
            recipe: {
              type: 'object',
              description:
                "the streams the answer was made on, as the run's recipe says: `faces` in words, " +
                '`subject`, `trainedOn` (detector, known-box, dataset-crops), `crop`, `scene`, `frames`',
            },
            persons: {
              type: 'array',
              description:
                "with ?persons=all or ?person=ID: each person's own answer " +
                "and timeline (the fields above are the main person's)",
              items: {
                type: 'object',
                properties: {
                  id: { type: 'integer' },
                  main: { type: 'boolean' },
                  first: { type: 'number' },
                  last: { type: 'number' },
                  emotion: { type: 'string' },
                  probabilities: probs,
                  windows: { type: 'array', items: window },
                  faces: { type: 'array', items: { type: 'object' } },
                },
              },
            },
          },
        },
        Job: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            status: { enum: ['queued', 'running', 'done', 'failed'] },
            position: { type: 'integer', description: 'place in the queue (0 once running)' },
            stage: { enum: ['decode', 'detect', 'encode', 'classify', null] },
            progress: { type: 'number', description: '0..1 within the stage' },
            duration: { type: ['number', 'null'], description: "the video's length in seconds, measured at upload" },
            windows: { type: 'array', items: window, description: 'the windows classified so far, in order' },
            windowsTotal: { type: ['integer', 'null'], description: 'how many windows the timeline has, once known' },
            result: { $ref: '#/components/schemas/Prediction' },
            error: {
              type: 'string',
              description: 'why the job failed (a worker that stopped, a shutdown: "send it again later")',
            },
          },
        },
      },
    },
  };
}
