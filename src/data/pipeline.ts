// The extraction pipeline: while the encoder works on clip i, clips i+1..i+ahead are being decoded
// (ffmpeg runs in its own process) and detected; the encoder takes one view's frames a call (a
// frame's features would differ in the last bit with the batch it shares, so a resumed or sharded
// cache equals one clean run). Memory stays bounded: at most `ahead` clips prepared beyond the one
// being encoded. Results come back in the clips' order, so what is written is the same, in the
// same order, as one clip at a time.
import type { Tensor } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';

/** One view of a prepared clip: frames to encode, and what to do with their outputs. */
export interface ViewWork {
  frames: RgbFrame[];
  /** emb [n, E] and low [n, W] of `frames`, in order; called once, in the clips' and views' order. */
  done(emb: Tensor, low: Tensor): void;
}

export interface PipelineOptions<T> {
  prepare(item: T): Promise<ViewWork[]>; // decode + detect + crops
  encode(frames: RgbFrame[]): Promise<{ emb: Tensor; low: Tensor }>; // one encoder call
  onClip(item: T, error?: unknown): void; // all views done, or the clip failed; in the items' order
  ahead: number; // clips prepared beyond the one being encoded (0: one clip at a time)
}

export async function runPipeline<T>(items: T[], o: PipelineOptions<T>): Promise<void> {
  const started: Array<Promise<ViewWork[]>> = [];
  const startUpTo = (last: number) => {
    while (started.length < items.length && started.length <= last) {
      const p = o.prepare(items[started.length]!);
      p.catch(() => undefined); // observed when its turn comes
      started.push(p);
    }
  };
  for (let i = 0; i < items.length; i++) {
    startUpTo(i + o.ahead);
    try {
      for (const work of await started[i]!) await encodeView(work, o.encode);
    } catch (err) {
      o.onClip(items[i]!, err);
      continue;
    }
    o.onClip(items[i]!);
  }
}

/** One view through the encoder: its outputs handed to `done`, then freed. */
async function encodeView(work: ViewWork, encode: PipelineOptions<unknown>['encode']): Promise<void> {
  const { emb, low } = await encode(work.frames);
  try {
    work.done(emb, low);
  } finally {
    emb.dispose();
    low.dispose();
  }
}
