// The extraction pipeline: while the encoder works on clip i, clips i+1..i+ahead are being decoded
// (ffmpeg runs in its own process) and detected; the encoder takes one view's frames a call (a
// frame's features would differ in the last bit with the batch it shares, so a resumed or sharded
// cache equals one clean run). Memory stays bounded: at most `ahead` clips prepared beyond the one
// being encoded. Results come back in the clips' order, so what is written is the same, in the
// same order, as one clip at a time.
import { cat, type Tensor } from '../torch/index.js';
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

interface Pending<T> {
  item: T;
  views: Array<{ work: ViewWork; embs: Tensor[]; lows: Tensor[]; left: number }>;
  error?: unknown;
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
  const inflight: Array<Pending<T>> = []; // clips not reported yet, in order
  const queue: Array<{ clip: Pending<T>; view: number; frame: number }> = []; // frames waiting for the encoder
  const report = () => {
    while (inflight.length && (inflight[0]!.error !== undefined || inflight[0]!.views.every((v) => v.left === 0))) {
      const c = inflight.shift()!;
      o.onClip(c.item, c.error);
    }
  };
  const encodeBatch = async (n: number) => {
    const batch = queue.splice(0, n);
    try {
      const { emb, low } = await o.encode(batch.map((q) => q.clip.views[q.view]!.work.frames[q.frame]!));
      let at = 0;
      // runs of consecutive frames of one view become one slice
      while (at < batch.length) {
        const { clip, view } = batch[at]!;
        let end = at + 1;
        while (end < batch.length && batch[end]!.clip === clip && batch[end]!.view === view) end++;
        const v = clip.views[view]!;
        v.embs.push(emb.narrow(0, at, end - at));
        v.lows.push(low.narrow(0, at, end - at));
        v.left -= end - at;
        if (v.left === 0 && clip.error === undefined) {
          const [e, l] = [
            v.embs.length === 1 ? v.embs[0]! : cat(v.embs, 0),
            v.lows.length === 1 ? v.lows[0]! : cat(v.lows, 0),
          ];
          try {
            v.work.done(e, l);
          } catch (err) {
            clip.error = err;
          }
          for (const t of new Set([e, l, ...v.embs, ...v.lows])) t.dispose();
          v.embs = [];
          v.lows = [];
        }
        at = end;
      }
      emb.dispose(); // the slices keep what they need
      low.dispose();
    } catch (err) {
      // every clip with a frame in the failed call fails, and its frames leave the queue
      for (const q of batch) q.clip.error ??= err;
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.clip.error !== undefined) queue.splice(i, 1);
    }
    report();
  };
  for (let i = 0; i < items.length; i++) {
    startUpTo(i + o.ahead);
    const clip: Pending<T> = { item: items[i]!, views: [] };
    inflight.push(clip);
    try {
      const views = await started[i]!;
      clip.views = views.map((work) => ({ work, embs: [], lows: [], left: work.frames.length }));
    } catch (err) {
      clip.error = err;
      report();
      continue;
    }
    clip.views.forEach((v, view) => v.work.frames.forEach((_, frame) => queue.push({ clip, view, frame })));
    for (const v of clip.views) await encodeBatch(v.work.frames.length);
    report();
  }
}
