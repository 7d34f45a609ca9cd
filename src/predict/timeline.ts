// Which frames a prediction looks at. A video no longer than one window is sampled as a training
// clip is (SPEC.md §2: T segment middles over the whole clip). A longer one gets a timeline: a grid
// of frames every window/T seconds (segment middles again), and windows of T consecutive grid
// frames every `stride`, so that overlapping windows share frames and each frame is decoded,
// tracked and encoded once.
import { sampleIndices } from '../video/sampling.js';
import { UserError } from '../util/errors.js';

export interface TimelineOptions {
  window: number; // seconds one prediction covers (2: DFEW-like clips)
  stride: number; // seconds between window starts (1)
}

export const DEFAULT_TIMELINE: TimelineOptions = { window: 2, stride: 1 };

export interface WindowPlan {
  start: number; // seconds
  end: number;
  first: number; // position of its first frame in `indices`
}

export interface TimelinePlan {
  indices: number[]; // frame indices to decode, in order
  windows: WindowPlan[]; // each takes T frames of `indices` from `first`
  stride: number; // seconds between windows as planned (the stride rounded to whole grid steps)
}

/** The frames and windows for a video of `frameCount` frames at `fps` (0: a frame folder, one window). */
export function planTimeline(
  frameCount: number,
  fps: number,
  T: number,
  o: TimelineOptions = DEFAULT_TIMELINE,
): TimelinePlan {
  if (!(o.window > 0)) throw new UserError(`--window must be a positive number of seconds, not ${o.window}`);
  if (!(o.stride > 0)) throw new UserError(`--stride must be a positive number of seconds, not ${o.stride}`);
  const duration = fps > 0 ? frameCount / fps : 0;
  if (!(fps > 0) || duration <= o.window) {
    return {
      indices: sampleIndices(frameCount, T, 'test'),
      windows: [{ start: 0, end: duration, first: 0 }],
      stride: o.stride,
    };
  }
  if (o.window * fps < T) {
    // A window samples T distinct frames of the source; fewer would repeat frames the model never saw repeated.
    const least = Math.ceil((100 * T) / fps) / 100;
    throw new UserError(
      `--window ${o.window}: ${o.window} s hold ${(o.window * fps).toFixed(1)} frames at ` +
        `${+fps.toFixed(3)} fps, fewer than the ${T} frames a window needs; use --window ${least} or more`,
    );
  }
  const step = o.window / T; // seconds between grid frames
  const grid = Math.floor(duration / step + 1e-9);
  const indices = Array.from({ length: grid }, (_, j) => Math.min(frameCount - 1, Math.floor((j + 0.5) * step * fps)));
  const strideSteps = Math.max(1, Math.round(o.stride / step));
  const firsts: number[] = [];
  for (let f = 0; f + T <= grid; f += strideSteps) firsts.push(f);
  if (firsts[firsts.length - 1]! + T < grid) firsts.push(grid - T); // the last window ends with the video
  return {
    indices,
    windows: firsts.map((first) => ({ start: first * step, end: (first + T) * step, first })),
    stride: strideSteps * step,
  };
}
