// The JSON `ous serve` answers, each described once as a zod schema. The OpenAPI document
// (openapi.ts) is generated from these, the server's own types are inferred from them, and the
// types the predictor and the pool already had are checked against them by the compiler (the
// `Same` lines at the end): a field added to the code and not here fails the build.
//
// Every object is strict: the published document says `additionalProperties: false` and lists what
// is required, so a real answer with a field the document lacks fails validation
// (test/serve-contract.test.ts validates real answers against /api/openapi.json).
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { PRECISIONS } from '../torch/precision.js';
import { CropSchema, RecipeSchema, SubjectRuleSchema } from '../streams/recipe.js';
import type {
  PersonPrediction,
  Prediction,
  RecipeReport,
  SceneEffect,
  WindowPrediction,
} from '../predict/predictor.js';

extendZodWithOpenApi(z);

const Probabilities = z.record(z.number()).describe('class name -> probability');
const Polarity = z.record(z.number()).nullable().describe('polarity -> probability; null for the face-only baseline');
const BoxSchema = z
  .tuple([z.number(), z.number(), z.number(), z.number()])
  .openapi({ minItems: 4, maxItems: 4 }) // a tuple's length, which prefixItems alone leaves open
  .describe("[x, y, w, h] in the video's displayed pixels");

export const SceneEffectSchema = z
  .object({
    totalVariation: z.number().describe('½·Σ|p_with − p_without|'),
    changedDecision: z.boolean(),
    emotionWithoutScene: z.string(),
  })
  .strict()
  .describe("the scene's effect: this window's answer against the same faces with a blank scene");

// A window's fields, once: the result's windows and the job's streamed ones (which add `person`).
const windowFields = {
  start: z.number().describe('seconds'),
  end: z.number(),
  emotion: z.string(),
  probabilities: Probabilities,
  polarity: Polarity,
  sceneEffect: SceneEffectSchema.nullable(),
  faceBox: BoxSchema.describe("the face crop at the window's middle frame, in the video's displayed pixels"),
  faceFrames: z
    .number()
    .int()
    .min(0)
    .describe(
      "how many of the window's T frames had the face detected; 0: the window saw no face (noFace), " +
        'and the overall answer and the share leave it out',
    ),
};

export const WindowSchema = z.object(windowFields).strict().openapi('Window');

export const JobWindowSchema = z
  .object({
    ...windowFields,
    person: z.number().int().min(0).optional().describe("the window's person, with ?persons=all or ?person=ID"),
  })
  .strict()
  .openapi('JobWindow');

const FacesSchema = z
  .array(z.object({ time: z.number(), box: BoxSchema, detected: z.boolean() }).strict())
  .describe('the face track (crop square) at every frame looked at');
const ShareSchema = z.record(z.number()).describe('part of the windows (those that saw the face) each class tops');

export const RecipeReportSchema = z
  .object({
    faces: z.string().describe('in words: whose face, from where, which crop'),
    subject: SubjectRuleSchema.describe("the subject rule followed (the run's, or --subject's)"),
    subjectOverridden: z.boolean(),
    trainedOn: RecipeSchema.shape.face.shape.source.describe('where the training faces came from'),
    crop: CropSchema.describe('the detector crop made here'),
    scene: RecipeSchema.shape.scene,
    frames: z.number().int(),
    note: z.string().optional().describe('a run from before the recipe: what is assumed'),
  })
  .strict()
  .openapi('Recipe', { description: "the streams the answer was made on, as the run's recipe says" });

export const PersonSchema = z
  .object({
    id: z.number().int().min(0).describe('0, 1, ...: by first appearance, then left to right'),
    main: z.boolean().describe('the person the one-person answer is about: longest × largest'),
    first: z.number().describe('seconds: the first grid frame their face was detected in'),
    last: z.number(),
    emotion: z.string(),
    probabilities: Probabilities,
    polarity: Polarity,
    sceneEffect: SceneEffectSchema.nullable(),
    share: ShareSchema,
    windows: z.array(WindowSchema).describe('the windows that hold their face in at least one frame'),
    faces: FacesSchema,
  })
  .strict()
  .openapi('Person');

export const PredictionSchema = z
  .object({
    video: z.string().describe("the upload's file name (or the sample's), never a server path"),
    emotion: z.string(),
    probabilities: Probabilities,
    polarity: Polarity,
    sceneEffect: SceneEffectSchema.nullable(),
    faceMissing: z.boolean(),
    duration: z.number().describe('seconds (0 for a frame folder)'),
    width: z.number().describe('displayed size of the video'),
    height: z.number(),
    windows: z.array(WindowSchema),
    faces: FacesSchema,
    summary: z
      .object({
        window: z.number(),
        stride: z.number(),
        frames: z.number().int(),
        share: ShareSchema,
        precision: z.enum(PRECISIONS).describe("CLIP's vision tower's"),
        noFaceWindows: z.number().int().describe('windows that saw no face: left out of the answer and the share'),
        noFaceAnswer: z.boolean().describe('no window saw a face: the answer is over every window, not about a face'),
      })
      .strict(),
    warning: z.string().optional().describe('frames the decoder could not deliver (a truncated or corrupt file)'),
    note: z.string().optional().describe('a still image: its one frame stands for every sampled frame'),
    persons: z
      .array(PersonSchema)
      .optional()
      .describe("with ?persons=all or ?person=ID: each person's own answer (the fields above are the main person's)"),
    recipe: RecipeReportSchema,
  })
  .strict()
  .openapi('Prediction', { description: 'the same JSON as `ous predict --json`' });

export const STAGES = ['decode', 'detect', 'encode', 'classify'] as const;

export const JobSchema = z
  .object({
    id: z.string(),
    status: z.enum(['queued', 'running', 'done', 'failed']),
    position: z.number().int().min(0).describe('place in the queue (0 once running)'),
    stage: z
      .union([z.enum(STAGES), z.null()])
      .describe('the stage under way (the last one, once ended); null while queued'),
    progress: z.number().describe('0..1 within the stage'),
    duration: z.number().nullable().describe("the video's length in seconds, measured at upload"),
    windows: z
      .array(JobWindowSchema)
      .describe('the windows classified so far, in order (each person in turn with ?persons=all)'),
    windowsTotal: z.number().int().nullable().describe('how many windows the timeline has, once known'),
    result: PredictionSchema.optional().describe('once done'),
    error: z
      .string()
      .optional()
      .describe('once failed: why (an unreadable video, a worker that stopped, a shutdown: "send it again later")'),
  })
  .strict()
  .openapi('Job');

export const AcceptedSchema = z
  .object({ id: z.string(), status: JobSchema.shape.status, position: z.number().int().min(0) })
  .strict()
  .openapi('Accepted');

export const ErrorSchema = z
  .object({ error: z.string().describe('the reason, in one line') })
  .strict()
  .openapi('Error');

export const HealthSchema = z
  .object({
    ok: z.literal(true),
    shuttingDown: z.boolean(),
    workers: z.number().int().describe('workers with the model loaded'),
    busy: z.number().int(),
    queued: z.number().int(),
    uploading: z.number().int().describe('uploads admitted and still arriving or being probed'),
    queue: z.number().int().describe('--queue'),
    probing: z.number().int(),
    busiestClient: z.object({ connections: z.number().int(), uploads: z.number().int() }).strict(),
    camera: z
      .object({ sessions: z.number().int(), limit: z.number().int() })
      .strict()
      .describe('camera sessions running, and how many the server takes at once (0: the camera mode is off)'),
    eventLoopDelayMs: z
      .object({ p50: z.number(), p99: z.number(), max: z.number() })
      .strict()
      .describe("this process's event-loop delay since start or the last ?reset"),
  })
  .strict()
  .openapi('Health');

export const ModelSchema = z
  .object({
    run: z.string().describe("the run folder's name (never the server's path to it)"),
    classes: z.array(z.string()),
    polarities: z.array(z.string()),
    encoder: z
      .object({
        clipHash: z.string(),
        precision: z.enum(PRECISIONS),
        embed: z.number().int(),
        visionWidth: z.number().int(),
        frames: z.number().int(),
        scene: z.enum(['mask', 'full']),
        polarityLayer: z.number().int(),
      })
      .strict(),
    config: z.record(z.unknown()).describe("the run's OUS config"),
  })
  .strict()
  .openapi('Model');

export const SamplesSchema = z
  .array(z.object({ name: z.string(), url: z.string() }).strict())
  .openapi('Samples', { description: 'the sample clips from the built-in benchmark' });

/** The query of POST /api/predict as documented; server.ts parsePredictQuery reads it. */
export const PredictQuerySchema = z.object({
  sample: z.string().optional().describe('predict a built-in sample clip (GET /api/samples) instead of an upload'),
  box: z.string().optional().describe("x,y,w,h: a known face box in the video's pixels (no detection)"),
  persons: z.enum(['all']).optional().describe('all: a timeline for every person in the video (result.persons)'),
  person: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("one person's timeline, by id (0, 1, ...: by first appearance, then left to right)"),
  window: z.number().positive().optional().describe('seconds per window (2)'),
  stride: z.number().positive().optional().describe('seconds between windows (1)'),
});

export type ModelInfo = z.infer<typeof ModelSchema>;
export type Health = z.infer<typeof HealthSchema>;
export type Accepted = z.infer<typeof AcceptedSchema>;
export type ErrorBody = z.infer<typeof ErrorSchema>;

// The compiler holds the predictor's and the pool's types to these schemas (both ways, every field).
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Deep<T> = T extends object ? { [K in keyof T]: Deep<T[K]> } : T;
const agree = <A, B>(same: Same<Deep<A>, Deep<B>>) => same;
agree<SceneEffect, z.infer<typeof SceneEffectSchema>>(true);
agree<WindowPrediction, z.infer<typeof WindowSchema>>(true);
agree<RecipeReport, z.infer<typeof RecipeReportSchema>>(true);
agree<PersonPrediction, z.infer<typeof PersonSchema>>(true);
agree<Prediction, z.infer<typeof PredictionSchema>>(true);
