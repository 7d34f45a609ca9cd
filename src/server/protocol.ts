// Messages between the HTTP server and its worker processes (child_process IPC, JSON). The worker's
// settings travel here too (the first message), not in environment variables.
import type { Prediction, Stage, WindowPrediction } from '../predict/predictor.js';
import type { Device, Precision } from '../torch/index.js';
import type { EnginePreference } from '../clip/frame-encoder.js';
import type { ModelInfo } from './contract.js';

export type { ModelInfo };

export interface WorkerSettings {
  run: string;
  clip?: string;
  device?: Device;
  precision: Precision;
  threads: number; // libtorch threads in this worker (cores / workers)
  maxSeconds: number; // a video whose decoded length passes this fails (--max-seconds)
  engine?: EnginePreference; // which engine runs CLIP's vision tower ('auto'; the CLI's OUS_ENGINE)
}

/** server -> worker: the settings once, then jobs one at a time */
export type ToWorker =
  | { type: 'init'; settings: WorkerSettings }
  | {
      type: 'job';
      id: string;
      file: string;
      window?: number;
      stride?: number;
      faceBox?: [number, number, number, number];
      persons?: 'all' | number;
    };

/** worker -> server */
export type FromWorker =
  | { type: 'ready'; model: ModelInfo }
  // total: with stage 'classify', the windows of every person (the job's windowsTotal)
  | { type: 'progress'; id: string; stage: Stage; fraction: number; total?: number }
  | { type: 'window'; id: string; window: WindowPrediction; k: number; total: number; person?: number }
  | { type: 'done'; id: string; result: Prediction }
  | { type: 'failed'; id: string; error: string; userError: boolean }
  | { type: 'fatal'; error: string; userError: boolean }; // the model did not load
