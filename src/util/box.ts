// Face boxes [x, y, w, h] as the user gives and reads them: always in the video's (or image's) own
// pixels, whatever size the decoder scaled the frames to.
import { UsageError } from './errors.js';

export type BoxXywh = [number, number, number, number];

/** "x y w h" (spaces or commas; negative x, y allowed) for `flag`; w and h must be positive. */
export function parseBox(text: string, flag = '--box'): BoxXywh {
  const parts = text.trim().split(/[\s,]+/);
  // Plain decimals: Number('0x10') is 16 and Number('1e9') a box a billion pixels wide.
  const b = parts.map((p) => (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(p) ? Number(p) : NaN));
  if (b.length !== 4 || !b.every(Number.isFinite))
    throw new UsageError(`${flag} must be "x y w h" (four numbers, in the video's pixels), not '${text}'`);
  if (!(b[2]! > 0 && b[3]! > 0))
    throw new UsageError(`${flag} '${text}' has zero or negative size: w and h must be > 0`);
  return b as BoxXywh;
}

/** How many times the frame's size a box may be: a face partly outside the frame is fine, a box that
 * dwarfs it is a mistake and would make a crop of that size for every frame (minutes of work). */
export const MAX_BOX_TIMES_FRAME = 2;

/** A box must overlap the frame (a face partly outside it is fine, one entirely outside is not), and
 * be at most MAX_BOX_TIMES_FRAME times the frame's width and height. Used by `ous predict --box` and
 * by `ous serve`'s ?box=. */
export function checkBoxInFrame(box: BoxXywh, width: number, height: number, flag = '--box'): void {
  const [x, y, w, h] = box;
  if (x >= width || y >= height || x + w <= 0 || y + h <= 0) {
    throw new UsageError(
      `${flag} [${box.join(' ')}] lies outside the ${width}×${height} frame ` +
        `(x in [0, ${width}), y in [0, ${height}), in the video's own pixels)`,
    );
  }
  if (w > MAX_BOX_TIMES_FRAME * width || h > MAX_BOX_TIMES_FRAME * height) {
    throw new UsageError(
      `${flag} [${box.join(' ')}] is larger than ${MAX_BOX_TIMES_FRAME}× the ${width}×${height} frame: ` +
        "give the face's box in the video's own pixels",
    );
  }
}

/** A box from a frame of size `from` to the same place in a frame of size `to` (e.g. decoded -> source). */
export function rescaleBox(
  box: BoxXywh,
  from: { width: number; height: number },
  to: { width: number; height: number },
): BoxXywh {
  const kx = to.width / from.width;
  const ky = to.height / from.height;
  return [box[0] * kx, box[1] * ky, box[2] * kx, box[3] * ky];
}
