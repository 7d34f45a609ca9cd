// Messages between the HTTP server and its worker processes (child_process IPC, JSON).
import type { Prediction, Stage } from '../predict/predictor.js';
import type { Precision } from '../torch/index.js';

export interface ModelInfo {
  run: string;
  classes: string[];
  polarities: string[];
  encoder: { clipHash: string; precision: Precision; embed: number; visionWidth: number; frames: number; scene: 'mask' | 'full'; polarityLayer: number };
  config: Record<string, unknown>; // the run's OUS config
}

/** server -> worker */
export type ToWorker = { type: 'job'; id: string; file: string; window?: number; stride?: number; faceBox?: [number, number, number, number] };

/** worker -> server */
export type FromWorker =
  | { type: 'ready'; model: ModelInfo }
  | { type: 'progress'; id: string; stage: Stage; fraction: number }
  | { type: 'done'; id: string; result: Prediction }
  | { type: 'failed'; id: string; error: string; userError: boolean }
  | { type: 'fatal'; error: string; userError: boolean }; // the model did not load
