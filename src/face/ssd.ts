// SSD MobileNet v1 face detector on our libtorch engine, with the very weights that
// @vladmandic/face-api ships (model/ssd_mobilenetv1_model.bin + its tfjs weights manifest). Every
// step copies face-api 1.7.15 (src/ssdMobilenetv1/*): the input padded at the bottom/right to a
// square and resized to 512 with TF's legacy bilinear resize, scaled to [-1, 1]; MobileNet v1
// (depthwise 3x3 + batch norm, pointwise 1x1 with batch norm already folded in, ReLU6, TF "SAME"
// padding); six box predictors over 5118 anchors; box decoding with variances 10/10/5/5; the
// face class sigmoid; and face-api's own greedy NMS (IoU 0.5). Frames of one size are batched.
// That is the 'square' layout; the default, 'aspect', resizes the frame at its own
// aspect ratio into as many input pixels (aspectGeometry) with anchors made for that input's maps
// (gridAnchors): the network is convolutional, only its anchor table assumed 512².
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { cat, F, keep, noGrad, stack, tensor, tidy, type Device, type Tensor } from '../torch/index.js';
import type { RgbFrame } from '../video/decode.js';
import type { Box, Detection } from './detector.js';

const INPUT = 512; // face-api's input size
const BN_EPS = 0.0010000000474974513; // face-api mobileNetV1.ts
const IOU_THRESHOLD = 0.5; // face-api SsdMobilenetv1.locateFaces
// the six maps at 512²: cells per side, anchors per cell
const ANCHOR_MAPS: Array<[number, number]> = [
  [32, 3],
  [16, 6],
  [8, 6],
  [4, 6],
  [2, 6],
  [1, 6],
];

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { scale: number; min: number; dtype: 'uint8' | 'uint16' | 'float16' };
}

/** The face-api package's model folder. */
export function faceApiModelDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
}

/**
 * The tfjs weights of a `<name>-weights_manifest.json` as float arrays by name: the shards'
 * bytes concatenated in manifest order, each weight dequantized as tfjs does (q·scale + min).
 */
export function readTfjsWeights(manifestFile: string): Map<string, { shape: number[]; data: Float32Array }> {
  const groups = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as Array<{
    paths: string[];
    weights: ManifestEntry[];
  }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const g of groups) {
    const bin = Buffer.concat(g.paths.map((p) => fs.readFileSync(path.join(path.dirname(manifestFile), p))));
    let offset = 0;
    for (const w of g.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const q = w.quantization;
      let data: Float32Array;
      if (q) {
        if (q.dtype !== 'uint8')
          throw new Error(`${manifestFile}: ${w.name}: quantization ${q.dtype} is not supported (uint8 only)`);
        data = new Float32Array(n); // a plain loop: Float32Array.from with a map takes ~1 s here
        for (let i = 0; i < n; i++) data[i] = bin[offset + i]! * q.scale + q.min;
        offset += n;
      } else {
        if (w.dtype !== 'float32')
          throw new Error(`${manifestFile}: ${w.name}: dtype ${w.dtype} unquantized is not supported`);
        data = new Float32Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + 4 * n));
        offset += 4 * n;
      }
      out.set(w.name, { shape: w.shape, data });
    }
    if (offset !== bin.length) throw new Error(`${manifestFile}: the manifest covers ${offset} of ${bin.length} bytes`);
  }
  return out;
}

interface Conv {
  weight: Tensor; // [Cout, Cin/groups, K, K]
  bias: Tensor; // [Cout]
  k: number;
  groups: number;
  // [Cout, Cin/groups, K + 1, K + 1]: zero first row and column (stride-2 depthwise layers, see convSame)
  grown?: Tensor;
}

/**
 * TF "SAME" convolution: out = ceil(in / stride), the odd pixel of padding at the bottom/right
 * (PyTorch's symmetric padding would shift every stride-2 window by one pixel).
 */
function convSame(x: Tensor, c: Conv, stride: number): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  const pad = (n: number) => Math.max((Math.ceil(n / stride) - 1) * stride + c.k - n, 0);
  const [ph, pw] = [pad(h), pad(w)];
  if (ph === pw && ph % 2 === 0) return F.conv2d(x, c.weight, c.bias, { stride, padding: ph / 2, groups: c.groups });
  // TF pads (0, 1) on both axes here (stride 2, even sides): the same windows as the kernel grown
  // by a zero first row and column with symmetric padding 1, which makes no padded copy of the
  // input (the layer's largest activation). Exact: the extra taps add products with 0.
  if (ph === 1 && pw === 1 && c.grown) return F.conv2d(x, c.grown, c.bias, { stride, padding: 1, groups: c.groups });
  // top/left floor(p/2), bottom/right the rest, with zeros: [B, C, H + ph, W + pw]
  const padded = F.pad(x, [Math.floor(pw / 2), pw - Math.floor(pw / 2), Math.floor(ph / 2), ph - Math.floor(ph / 2)]);
  const y = F.conv2d(padded, c.weight, c.bias, { stride, groups: c.groups });
  padded.dispose(); // the largest activation of the layer: freed now, not at the end of the tidy
  return y;
}

/** min(max(x, 0), 6), in place: the convolution's output is not needed otherwise. */
const relu6 = (x: Tensor) => x.clamp_(0, 6);

export interface SsdDetectOptions {
  minConfidence?: number; // face-api's scoreThreshold: a box must score above it (0.5)
  maxResults?: number; // at most this many faces per frame, best first (no limit)
  batch?: number; // frames per forward pass: 1 on CPU, 16 on CUDA
  // 'aspect' (default): the frame at its own aspect ratio (aspectGeometry); 'square': face-api's
  // own preprocessing, padded to a square of 512 (kept as the reference the aspect layout is measured against)
  layout?: 'aspect' | 'square';
  zoom?: number; // 'aspect' only: the input's side × this (a second scale for small faces; 1)
  gains?: number[]; // per frame, its pixels × this before the network (contrast stretch; 1)
}

/** Where a frame lies in the network's input: the input's size, and source pixels per input pixel. */
export interface InputGeometry {
  width: number;
  height: number;
  step: number;
}

/** face-api's: the frame padded at the bottom/right to a square, resized to 512². */
export function squareGeometry(width: number, height: number): InputGeometry {
  return { width: INPUT, height: INPUT, step: Math.max(width, height) / INPUT };
}

/**
 * The frame at its own aspect ratio in as many input pixels as face-api's 512² (× zoom²): a frame
 * costs what a square one does, and a wide or tall frame's faces shrink no more than those of a
 * square frame of the same area (padded to a square, a 1080×288 frame's shrink by 2.1 instead).
 * Sides are multiples of 32 (the backbone's stride), rounded down; the frame fits inside, the rest
 * (under 32 px) is zero padding at the bottom or right.
 */
export function aspectGeometry(width: number, height: number, zoom = 1): InputGeometry {
  const s = (zoom * INPUT) / Math.sqrt(width * height);
  const side = (n: number) => Math.max(32, 32 * Math.floor((n * s) / 32));
  const [w, h] = [side(width), side(height)];
  return { width: w, height: h, step: Math.max(width / w, height / h) };
}

/** The network with its weights on one device. */
export class SsdMobilenetV1 {
  private readonly backbone: Array<{ dw?: Conv; pw: Conv; stride: number }> = [];
  private readonly extra: Array<{ conv: Conv; stride: number }> = [];
  private readonly heads: Array<{ box: Conv; cls: Conv }> = [];
  private readonly anchors: Tensor; // [5118, 4] as (y1, x1, y2, x2), relative to the 512² input
  // per map, its anchors' (height, width) in input pixels, the same in every cell (face-api's table at 512²)
  private readonly anchorSizes: Array<Array<[number, number]>> = [];
  private readonly anchorsBySize = new Map<string, Tensor>();

  constructor(
    readonly device: Device = 'cpu',
    modelDir = faceApiModelDir(),
  ) {
    const w = readTfjsWeights(path.join(modelDir, 'ssd_mobilenetv1_model-weights_manifest.json'));
    const get = (name: string) =>
      w.get(name) ??
      (() => {
        throw new Error(`${modelDir}: the SSD weights lack '${name}'`);
      })();
    const t = (data: Float32Array, shape: number[]) => keep(tensor(data, { shape, device }));
    // tfjs conv filters are [K, K, Cin, Cout] (HWIO); torch wants [Cout, Cin, K, K].
    const conv = (prefix: string, biasName: string): Conv => {
      const f = get(`${prefix}/weights`);
      const [k, , , cout] = f.shape as [number, number, number, number];
      const weight = tidy(() =>
        keep(tensor(f.data, { shape: f.shape }).permute(3, 2, 0, 1).to(device).contiguous('channels_last')),
      );
      return { weight, bias: t(get(`${prefix}/${biasName}`).data, [cout]), k, groups: 1 };
    };
    // The depthwise conv's batch norm folded into it: w·γ/√(σ²+ε), β − μ·γ/√(σ²+ε).
    const depthwise = (prefix: string): Conv => {
      const f = get(`${prefix}/depthwise_weights`); // [3, 3, C, 1]
      const [k, , c] = f.shape as [number, number, number];
      const g = get(`${prefix}/BatchNorm/gamma`).data;
      const b = get(`${prefix}/BatchNorm/beta`).data;
      const m = get(`${prefix}/BatchNorm/moving_mean`).data;
      const v = get(`${prefix}/BatchNorm/moving_variance`).data;
      const scale = Float64Array.from(g, (gi, i) => gi / Math.sqrt(v[i]! + BN_EPS));
      const weight = new Float32Array(c * k * k); // [C, 1, K, K]
      for (let ch = 0; ch < c; ch++)
        for (let y = 0; y < k; y++)
          for (let x = 0; x < k; x++) weight[(ch * k + y) * k + x] = f.data[(y * k + x) * c + ch]! * scale[ch]!;
      const bias = Float32Array.from(b, (bi, i) => bi - m[i]! * scale[i]!);
      return {
        weight: tidy(() => keep(tensor(weight, { shape: [c, 1, k, k], device }).contiguous('channels_last'))),
        bias: t(bias, [c]),
        k,
        groups: c,
      };
    };
    // Depthwise layers are cheap enough that a 4x4 kernel costs less than copying their input padded;
    // full convolutions (the first layer, the extra layers) keep the copy.
    const grown = (conv: Conv): Conv => ({
      ...conv,
      grown: tidy(() => keep(F.pad(conv.weight, [1, 0, 1, 0]).contiguous('channels_last'))),
    });
    this.backbone.push({ pw: conv('MobilenetV1/Conv2d_0_pointwise', 'convolution_bn_offset'), stride: 2 });
    for (let i = 1; i <= 13; i++) {
      const stride = [2, 4, 6, 12].includes(i) ? 2 : 1;
      const dw = depthwise(`MobilenetV1/Conv2d_${i}_depthwise`);
      this.backbone.push({
        dw: stride === 2 ? grown(dw) : dw,
        pw: conv(`MobilenetV1/Conv2d_${i}_pointwise`, 'convolution_bn_offset'),
        stride,
      });
    }
    for (let i = 0; i < 8; i++)
      this.extra.push({
        conv: conv(`Prediction/Conv2d_${i}_pointwise`, 'convolution_bn_offset'),
        stride: i % 2 ? 2 : 1,
      });
    for (let i = 0; i < 6; i++) {
      this.heads.push({
        box: conv(`Prediction/BoxPredictor_${i}/BoxEncodingPredictor`, 'biases'),
        cls: conv(`Prediction/BoxPredictor_${i}/ClassPredictor`, 'biases'),
      });
    }
    const a = get('Output/extra_dim');
    this.anchors = t(a.data, [a.shape[1]!, 4]);
    let first = 0; // the first cell's anchors of each map: 32², 16², ... cells, 3 anchors on the first map, 6 after
    for (const [cells, k] of ANCHOR_MAPS) {
      this.anchorSizes.push(
        Array.from({ length: k }, (_, q) => {
          const n = 4 * (first + q);
          return [(a.data[n + 2]! - a.data[n]!) * INPUT, (a.data[n + 3]! - a.data[n + 1]!) * INPUT];
        }),
      );
      first += cells * cells * k;
    }
  }

  /** The anchors of an inH × inW input whose six maps have the given sizes: the table's own at 512² (gridAnchors). */
  anchorsFor(inH: number, inW: number, maps: Array<[number, number]>): Tensor {
    if (inH === INPUT && inW === INPUT) return this.anchors;
    const key = `${inH}x${inW}`;
    let out = this.anchorsBySize.get(key);
    if (!out) {
      const data = gridAnchors(this.anchorSizes, inH, inW, maps);
      out = keep(tensor(data, { shape: [data.length / 4, 4], device: this.device }));
      this.anchorsBySize.set(key, out);
    }
    return out;
  }

  /** Per map, its anchors' (height, width) in input pixels, read from face-api's 512² table. */
  get anchorShapes(): Array<Array<[number, number]>> {
    return this.anchorSizes;
  }

  /**
   * Same-sized frames resized by `step` (source pixels per input pixel, both axes) into an
   * [B, 3, inH, inW] input, the part past the frame zero (padding at the bottom/right), with TF's
   * legacy bilinear resize (source = dst · step, no half-pixel offset; along x, then along y, as
   * tfjs's kernel), then x·gain/127.5 − 1 (a frame's gain > 1 stretches a dark frame's contrast). `hiCap`
   * (per axis) is the last source pixel the upper neighbour may be: face-api caps it at the padded
   * square's side − 1, so its right/bottom edge blends with the padding; ours at the frame's last
   * pixel. NHWC strides: libtorch's depthwise and pointwise convolutions run faster on them on CPU
   * (oneDNN), and every convolution's output keeps its input's layout.
   */
  private preprocess(frames: RgbFrame[], g: InputGeometry, hiCap: [number, number], gains?: number[]): Tensor {
    const { width: w, height: h } = frames[0]!;
    const pixels = new Uint8Array(frames.length * h * w * 3);
    frames.forEach((f, i) => pixels.set(f.data, i * h * w * 3));
    // [B, h + 1, w + 1, 3]: one zero row and column stand for the whole padding
    const x = F.pad(tensor(pixels, { shape: [frames.length, h, w, 3], device: this.device }), [0, 0, 0, 1, 0, 1]);
    // the source coordinate in float32, as tfjs's kernel computes it
    const step = Math.fround(g.step);
    const axis = (size: number, n: number, cap: number) => {
      const src = Array.from({ length: size }, (_, r) => Math.fround(r * step));
      const lo = src.map(Math.floor);
      const hi = src.map((s) => Math.min(cap, Math.ceil(s)));
      const idx = (v: number[]) =>
        tensor(
          Int32Array.from(v, (i) => Math.min(i, n)),
          { dtype: 'int64', device: this.device },
        ); // n: the zero row/column
      const frac = tensor(
        Float32Array.from(src, (s, i) => s - lo[i]!),
        { device: this.device },
      );
      return { lo: idx(lo), hi: idx(hi), frac };
    };
    const [ax, ay] = [axis(g.width, w, hiCap[0]), axis(g.height, h, hiCap[1])];
    const lerp = (a: Tensor, b: Tensor, f: Tensor) => a.add(b.sub(a).mul(f));
    // [B, h + 1, inW, 3]
    const rows = lerp(x.indexSelect(2, ax.lo).float(), x.indexSelect(2, ax.hi).float(), ax.frac.view(1, 1, -1, 1));
    // [B, inH, inW, 3]
    const out = lerp(rows.indexSelect(1, ay.lo), rows.indexSelect(1, ay.hi), ay.frac.view(1, -1, 1, 1));
    const scaled = gains?.some((v) => v !== 1)
      ? out
          .mul(tensor(Float32Array.from(gains), { device: this.device }).view(-1, 1, 1, 1))
          .clamp_(0, 255)
          .div(127.5)
      : out.div(127.5);
    return scaled.sub(1).permute(0, 3, 1, 2); // [B, 3, inH, inW], NHWC in memory
  }

  /** Decoded boxes [B, N, 4] as (y1, x1, y2, x2) relative to the input, and face scores [B, N] (N: 5118 at 512²). */
  forward(x: Tensor): { boxes: Tensor; scores: Tensor } {
    const [b, , inH, inW] = x.shape as [number, number, number, number];
    let out = x;
    let conv11: Tensor | undefined;
    this.backbone.forEach((layer, i) => {
      if (layer.dw) out = relu6(convSame(out, layer.dw, layer.stride));
      out = relu6(convSame(out, layer.pw, layer.dw ? 1 : layer.stride));
      if (i === 11) conv11 = out;
    });
    const maps: Tensor[] = [conv11!, out];
    let y = out;
    this.extra.forEach((layer, i) => {
      y = relu6(convSame(y, layer.conv, layer.stride));
      if (i % 2) maps.push(y);
    });
    // Heads in NHWC order, as tfjs reshapes them: [B, H·W·anchors, 4] and [B, H·W·anchors, 3].
    const enc = cat(
      maps.map((m, i) => convSame(m, this.heads[i]!.box, 1).permute(0, 2, 3, 1).reshape(b, -1, 4)),
      1,
    );
    const cls = cat(
      maps.map((m, i) => convSame(m, this.heads[i]!.cls, 1).permute(0, 2, 3, 1).reshape(b, -1, 3)),
      1,
    );
    const a = this.anchorsFor(
      inH,
      inW,
      maps.map((m) => [m.shape[2]!, m.shape[3]!] as [number, number]),
    );
    const sizeY = a.select(1, 2).sub(a.select(1, 0));
    const sizeX = a.select(1, 3).sub(a.select(1, 1));
    const centreY = a.select(1, 0).add(sizeY.div(2));
    const centreX = a.select(1, 1).add(sizeX.div(2));
    const cy = enc.select(2, 0).div(10).mul(sizeY).add(centreY);
    const cx = enc.select(2, 1).div(10).mul(sizeX).add(centreX);
    const hh = enc.select(2, 2).div(5).exp().mul(sizeY).div(2);
    const hw = enc.select(2, 3).div(5).exp().mul(sizeX).div(2);
    const boxes = stack([cy.sub(hh), cx.sub(hw), cy.add(hh), cx.add(hw)], 2);
    return { boxes, scores: cls.select(2, 1).sigmoid() };
  }

  /** Frame pixels per input pixel in the 'aspect' layout (zoom 1). */
  inputStep(frame: { width: number; height: number }): number {
    return aspectGeometry(frame.width, frame.height).step;
  }

  /** The faces in each frame, best first, in the frame's pixels. */
  detect(frames: RgbFrame[], opts: SsdDetectOptions = {}): Detection[][] {
    // On CPU a batch is slower per frame: activations past the addon's 32 MB mmap threshold
    // (one 512x512 frame's first layer is 8 MB) are page-faulted in anew on every call.
    const batch = opts.batch ?? (this.device === 'cpu' ? 1 : 16);
    const square = opts.layout === 'square';
    const result: Detection[][] = [];
    for (let start = 0; start < frames.length; ) {
      // a run of same-sized frames, at most `batch`
      let end = start + 1;
      while (
        end < frames.length &&
        end - start < batch &&
        frames[end]!.width === frames[start]!.width &&
        frames[end]!.height === frames[start]!.height
      )
        end++;
      const chunk = frames.slice(start, end);
      const { width: w, height: h } = chunk[0]!;
      const g = square ? squareGeometry(w, h) : aspectGeometry(w, h, opts.zoom);
      // face-api's upper neighbour may reach the padded square's last pixel; ours stops at the frame's
      const hiCap: [number, number] = square ? [Math.max(w, h) - 1, Math.max(w, h) - 1] : [w - 1, h - 1];
      const { boxes, scores } = noGrad(() =>
        tidy(() => {
          const r = this.forward(this.preprocess(chunk, g, hiCap, opts.gains?.slice(start, end)));
          return {
            boxes: r.boxes.cpu().toTypedArray() as Float32Array,
            scores: r.scores.cpu().toTypedArray() as Float32Array,
          };
        }),
      );
      const n = scores.length / chunk.length;
      chunk.forEach((f, i) => {
        const [bi, si] = [boxes.subarray(i * n * 4, (i + 1) * n * 4), scores.subarray(i * n, (i + 1) * n)];
        result.push(square ? toDetections(bi, si, f.width, f.height, opts) : toDetectionsIn(bi, si, f, g, opts));
      });
      start = end;
    }
    return result;
  }
}

/**
 * TF's grid anchors for an inH × inW input whose six maps have the given sizes: centre
 * ((i + ½)/rows, (j + ½)/cols), each anchor's size in pixels as at 512² (`sizes`, per map: the
 * network's filters see pixels), cell by cell in NHWC order as the heads' outputs. At 512² this is
 * face-api's table. [N · 4] as (y1, x1, y2, x2) relative to the input.
 */
export function gridAnchors(
  sizes: Array<Array<[number, number]>>,
  inH: number,
  inW: number,
  maps: Array<[number, number]>,
): Float32Array {
  const n = maps.reduce((s, [r, c], m) => s + r * c * sizes[m]!.length, 0);
  const data = new Float32Array(4 * n);
  let o = 0;
  maps.forEach(([rows, cols], m) => {
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++)
        for (const [sh, sw] of sizes[m]!) {
          const [cy, cx, hh, hw] = [(i + 0.5) / rows, (j + 0.5) / cols, sh / inH / 2, sw / inW / 2];
          data.set([cy - hh, cx - hw, cy + hh, cx + hw], o);
          o += 4;
        }
  });
  return data;
}

/** face-api's IoU of two (y1, x1, y2, x2) boxes, corners in either order. */
function iouCorners(b: Float32Array, i: number, j: number): number {
  const c = (k: number) =>
    [
      Math.min(b[k]!, b[k + 2]!),
      Math.min(b[k + 1]!, b[k + 3]!),
      Math.max(b[k]!, b[k + 2]!),
      Math.max(b[k + 1]!, b[k + 3]!),
    ] as const;
  const [y1i, x1i, y2i, x2i] = c(4 * i);
  const [y1j, x1j, y2j, x2j] = c(4 * j);
  const areaI = (y2i - y1i) * (x2i - x1i);
  const areaJ = (y2j - y1j) * (x2j - x1j);
  if (areaI <= 0 || areaJ <= 0) return 0;
  const inter =
    Math.max(Math.min(y2i, y2j) - Math.max(y1i, y1j), 0) * Math.max(Math.min(x2i, x2j) - Math.max(x1i, x1j), 0);
  return inter / (areaI + areaJ - inter);
}

/**
 * face-api's nonMaxSuppression: candidates above the threshold by falling score, each kept unless
 * it overlaps a kept one by more than IoU 0.5, at most maxResults. Indices of the kept ones.
 */
function nms(boxes: Float32Array, scores: Float32Array, opts: SsdDetectOptions): number[] {
  const threshold = opts.minConfidence ?? 0.5;
  const maxResults = opts.maxResults ?? Infinity;
  const candidates: number[] = [];
  scores.forEach((s, i) => {
    if (s > threshold) candidates.push(i);
  });
  candidates.sort((a, b) => scores[b]! - scores[a]!);
  const kept: number[] = [];
  for (const c of candidates) {
    if (kept.length >= maxResults) break;
    if (!kept.some((k) => iouCorners(boxes, c, k) > IOU_THRESHOLD)) kept.push(c);
  }
  return kept;
}

/**
 * face-api's NMS and box scaling: boxes clipped to the unit square and scaled by the padded
 * square's side (face-api's padX/padY). The 'square' layout's.
 */
export function toDetections(
  boxes: Float32Array,
  scores: Float32Array,
  width: number,
  height: number,
  opts: SsdDetectOptions = {},
): Detection[] {
  const scale = INPUT / Math.max(width, height);
  const padX = INPUT / Math.round(width * scale);
  const padY = INPUT / Math.round(height * scale);
  return nms(boxes, scores, opts).map((k) => {
    const top = Math.max(0, boxes[4 * k]!) * padY * height;
    const bottom = Math.min(1, boxes[4 * k + 2]!) * padY * height;
    const left = Math.max(0, boxes[4 * k + 1]!) * padX * width;
    const right = Math.min(1, boxes[4 * k + 3]!) * padX * width;
    return { box: [left, top, right - left, bottom - top] as Box, score: scores[k]! };
  });
}

/** face-api's NMS, boxes relative to the input g scaled to the frame's pixels and clipped to the frame. */
export function toDetectionsIn(
  boxes: Float32Array,
  scores: Float32Array,
  frame: { width: number; height: number },
  g: InputGeometry,
  opts: SsdDetectOptions = {},
): Detection[] {
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  const [sx, sy] = [g.width * g.step, g.height * g.step];
  return nms(boxes, scores, opts).map((k) => {
    const top = clip(boxes[4 * k]! * sy, frame.height);
    const bottom = clip(boxes[4 * k + 2]! * sy, frame.height);
    const left = clip(boxes[4 * k + 1]! * sx, frame.width);
    const right = clip(boxes[4 * k + 3]! * sx, frame.width);
    return { box: [left, top, right - left, bottom - top] as Box, score: scores[k]! };
  });
}

const loaded = new Map<string, SsdMobilenetV1>();

/** One network per device per process. */
export function ssdMobilenetV1(device: Device = 'cpu'): SsdMobilenetV1 {
  let net = loaded.get(device);
  if (!net) loaded.set(device, (net = new SsdMobilenetV1(device)));
  return net;
}
