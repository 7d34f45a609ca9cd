// The package's programmatic API, `import { trainRun, ... } from 'ous'`: the typed functions the
// commands are thin over (README, "From code"). The tensor engine is its own entry, 'ous/torch'.
// Importing this loads no native library: libtorch loads at the first tensor op (src/torch/native.ts).
export { trainRun, evalRun, type TrainRunOptions, type ConfigOverrides } from './train/run.js';
export { extractFeatures, type ExtractOptions, type ExtractSummary } from './data/extract.js';
export { Predictor, type PredictOptions } from './predict/predictor.js';
export {
  streamFps,
  type InFrame,
  type StreamOptions,
  type StreamSummary,
  type StreamWindow,
} from './predict/stream.js';
export { writeReport, type ReportOptions } from './report/report.js';
export { runDemo, type DemoOptions } from './demo/run.js';
