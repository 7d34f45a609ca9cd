// Bicubic resizing of 8-bit images exactly as Pillow 9.4 does it (what OpenAI's CLIP
// preprocessing ran through torchvision): a separable convolution with Keys' cubic (a = −0.5),
// whose support widens by the downscale factor (so downscaling also low-passes); the horizontal
// pass first, rounded to 8 bits, then the vertical pass; coefficients in 22-bit fixed point.

const PRECISION_BITS = 32 - 8 - 2;
const SUPPORT = 2; // of the cubic kernel, in source pixels at scale 1

function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // per output pixel: first source index, count
  weights: Int32Array; // [out, ksize] fixed-point
}

// For each output pixel along one axis: which source pixels it reads and with what weights.
function coefficients(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) total += w[x] = cubic((x + xmin - center + 0.5) / filterScale);
    for (let x = 0; x < xmax; x++) {
      const v = total !== 0 ? w[x]! / total : w[x]!;
      // Round half away from zero into fixed point, as Pillow's normalize_coeffs_8bpc.
      weights[xx * ksize + x] =
        v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  const s = Math.floor(v / (1 << PRECISION_BITS)); // arithmetic shift right
  return s < 0 ? 0 : Math.min(s, 255);
}

/**
 * Resizes an interleaved 8-bit image (`channels` values per pixel, row-major) to outW×outH with
 * Pillow's BICUBIC. Returns the image unchanged (a copy) when the size is the same.
 */
export function resizeBicubic(
  src: Uint8Array,
  w: number,
  h: number,
  channels: number,
  outW: number,
  outH: number,
): Uint8Array {
  if (outW === w && outH === h) return src.slice();
  const half = 1 << (PRECISION_BITS - 1); // rounding offset
  let img = src;
  let [cw, ch] = [w, h];
  if (outW !== w) {
    // Horizontal pass, only over the rows the vertical pass will read.
    const cv = coefficients(h, outH);
    const first = outH !== h ? cv.bounds[0]! : 0;
    const last = outH !== h ? cv.bounds[(outH - 1) * 2]! + cv.bounds[(outH - 1) * 2 + 1]! : h;
    const c = coefficients(w, outW);
    const out = new Uint8Array(outW * (last - first) * channels);
    for (let y = first; y < last; y++) {
      for (let xx = 0; xx < outW; xx++) {
        const xmin = c.bounds[xx * 2]!;
        const n = c.bounds[xx * 2 + 1]!;
        for (let k = 0; k < channels; k++) {
          let s = half;
          for (let x = 0; x < n; x++) s += img[(y * w + xmin + x) * channels + k]! * c.weights[xx * c.ksize + x]!;
          out[((y - first) * outW + xx) * channels + k] = clip8(s);
        }
      }
    }
    img = out;
    [cw, ch] = [outW, last - first];
    if (outH === h) return img;
    // The vertical bounds now count from the first row kept.
    return verticalPass(img, cw, channels, outH, cv, first);
  }
  return verticalPass(img, cw, channels, outH, coefficients(ch, outH), 0);
}

function verticalPass(
  img: Uint8Array,
  w: number,
  channels: number,
  outH: number,
  c: Coeffs,
  shift: number,
): Uint8Array {
  const half = 1 << (PRECISION_BITS - 1);
  const out = new Uint8Array(w * outH * channels);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[yy * 2]! - shift;
    const n = c.bounds[yy * 2 + 1]!;
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < channels; k++) {
        let s = half;
        for (let y = 0; y < n; y++) s += img[((ymin + y) * w + x) * channels + k]! * c.weights[yy * c.ksize + y]!;
        out[(yy * w + x) * channels + k] = clip8(s);
      }
    }
  }
  return out;
}
