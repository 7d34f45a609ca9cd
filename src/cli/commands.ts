// Every `ous` subcommand, in the order `ous --help` lists them: its name and summary here, its
// module imported only when it runs or shows its usage, so that `ous --help` loads none of them
// (nor libtorch, vega, sharp ... that they import).
import type { Command } from './command.js';

export interface CommandEntry {
  /** The words after `ous`, e.g. "demo" or "clip embed". */
  name: string;
  /** One line for `ous --help`. */
  summary: string;
  /** Imports the command's module. */
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'demo',
    summary: 'run OUS end to end on the built-in synthetic benchmark (no downloads)',
    load: async () => (await import('./demo.js')).demo,
  },
  {
    name: 'clip embed',
    summary: 'CLIP image/text embeddings, per-block class tokens and logits (Hugging Face CLIP folder)',
    load: async () => (await import('./clip-embed.js')).clipEmbedCommand,
  },
  {
    name: 'faces',
    summary: 'detect faces in an image, or in the sampled frames of a video',
    load: async () => (await import('./faces.js')).faces,
  },
  {
    name: 'streams',
    summary: 'the face stream and the scene stream of a video (PNGs + streams.json)',
    load: async () => (await import('./streams.js')).streams,
  },
  {
    name: 'extract',
    summary: 'encode a data set with the frozen CLIP into a feature cache (resumable, shardable)',
    load: async () => (await import('./extract.js')).extract,
  },
  {
    name: 'train',
    summary: 'train OUS or the face-only baseline on a feature cache (writes a run folder)',
    load: async () => (await import('./train.js')).trainCommand,
  },
  {
    name: 'eval',
    summary: 'UAR, WAR, per-class recall and confusion matrix of a run (or the mean of folds, the spread of seeds)',
    load: async () => (await import('./train.js')).evalCommand,
  },
  {
    name: 'predict',
    summary: 'emotion, scene polarity, and how much the scene changed the decision, for one video',
    load: async () => (await import('./predict.js')).predict,
  },
  {
    name: 'serve',
    summary: 'a web page and HTTP API: emotion and its timeline for any video (workers hold the model)',
    load: async () => (await import('./serve.js')).serve,
  },
  {
    name: 'report',
    summary: 'an HTML + Markdown report (table, confusion matrices, curves, embeddings) of runs',
    load: async () => (await import('./report.js')).report,
  },
  {
    name: 'ablate',
    summary: "run one of the paper's ablation tables (III, IV, V, VI) and write it beside the paper's numbers",
    load: async () => (await import('./ablate.js')).ablate,
  },
  {
    name: 'info',
    summary:
      'versions, build flags, BLAS kernel, oneDNN, threads, CUDA devices, onnxruntime, ffmpeg, CPU: for bug reports',
    load: async () => (await import('./info.js')).info,
  },
];
