// Pixel operations on RGB frames for the two streams: cutting a square with black padding where
// it leaves the frame (face stream), and filling a box with a colour (masked scene stream).
import type { RgbFrame } from '../video/decode.js';
import type { Box } from './detector.js';

/** The pixels of `box` (integers, any position), black outside the frame. */
export function cropWithPadding(frame: RgbFrame, box: Box): RgbFrame {
  const [bx, by, bw, bh] = box.map(Math.round) as Box;
  const out = new Uint8Array(bw * bh * 3);
  const x0 = Math.max(0, bx);
  const x1 = Math.min(frame.width, bx + bw);
  if (x1 > x0) {
    for (let y = Math.max(0, by); y < Math.min(frame.height, by + bh); y++) {
      const src = (y * frame.width + x0) * 3;
      out.set(frame.data.subarray(src, src + (x1 - x0) * 3), ((y - by) * bw + (x0 - bx)) * 3);
    }
  }
  return { data: out, width: bw, height: bh };
}

/** A copy of the frame with `box` (clipped to the frame) filled with `rgb`. */
export function fillBox(frame: RgbFrame, box: Box, rgb: [number, number, number]): RgbFrame {
  const data = frame.data.slice();
  const [bx, by, bw, bh] = box.map(Math.round) as Box;
  for (let y = Math.max(0, by); y < Math.min(frame.height, by + bh); y++) {
    for (let x = Math.max(0, bx); x < Math.min(frame.width, bx + bw); x++) data.set(rgb, (y * frame.width + x) * 3);
  }
  return { data, width: frame.width, height: frame.height };
}

/** The largest centred square of the frame: the face stream when no face is found. */
export function centreSquare(frame: { width: number; height: number }): Box {
  const side = Math.min(frame.width, frame.height);
  return [Math.floor((frame.width - side) / 2), Math.floor((frame.height - side) / 2), side, side];
}

/** The frame mirrored left to right (an augmented view). */
export function flipHorizontal(frame: RgbFrame): RgbFrame {
  const { width: w, height: h } = frame;
  const data = new Uint8Array(frame.data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++)
      data.set(frame.data.subarray((y * w + x) * 3, (y * w + x) * 3 + 3), (y * w + (w - 1 - x)) * 3);
  }
  return { data, width: w, height: h };
}
