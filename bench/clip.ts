// CLIP vision tower throughput (images/s) for OpenAI's ViT-B/32 and ViT-L/14 shapes with random
// weights, beside the same tower in PyTorch (Python) and in onnxruntime-node (the tower exported
// by PyTorch to ONNX), all in the same run. This is the frozen encoder of OUS, run once per face
// frame and scene frame of every clip (SPEC.md §3). Two rows per shape: the engine extraction and
// prediction use in float32 on the CPU (onnxruntime running the graph clip/onnx.ts writes, where
// onnxruntime-node is installed), and libtorch's tower.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad, randn, tidy, manualSeed, getNumThreads } from '../src/torch/index.js';
import { cpuHasFastBf16 } from '../src/torch/precision.js';
import { readCpuInfo } from '../src/torch/blas.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipModel } from '../src/clip/model.js';
import { visionTowerOnnx } from '../src/clip/onnx.js';
import { OnnxSession, onnxRuntime, type EnginePreference } from '../src/torch/onnxruntime.js';
import {
  OnnxReference,
  type TorchReference,
  alternate,
  compare,
  printTable,
  timeIt,
  timeItAsync,
  type Row,
} from './lib.js';

export async function benchClip(
  torch: TorchReference | null,
  quick: boolean,
  engine: EnginePreference = 'auto',
): Promise<void> {
  manualSeed(0);
  const rows: Row[] = [];
  const bf16Lines: string[] = [];
  // onnxruntime needs the ONNX file that PyTorch writes
  const onnx = torch ? await OnnxReference.load(getNumThreads()) : null;
  if (!onnx)
    console.log(
      torch
        ? 'onnxruntime-node not installed (an optional dependency): no onnxruntime column or row.'
        : 'no PyTorch to export the ONNX model: no onnxruntime column.',
    );
  const bf16 = cpuHasFastBf16(readCpuInfo());
  if (!bf16)
    console.log(
      'no AVX512_BF16 or AMX on this CPU: no --precision bf16 rows (libtorch would run bf16 in scalar loops).',
    );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-clip-'));
  try {
    for (const [name, batch] of [
      ['ViT-B/32', 16],
      ['ViT-L/14', 4],
    ] as const) {
      const shape = CLIP_SHAPES[name];
      const cfg = clipConfigFor(shape);
      const model = new ClipModel(cfg).eval().requiresGrad_(false);
      const R = shape.vision.resolution;
      const pixels = randn([batch, 3, R, R]).keep();
      const step = () => noGrad(() => tidy(() => void model.encodeImage(pixels).imageEmbeds));
      const iters = quick ? 2 : 4;
      const args = { ...shape.vision, embed: shape.embed, batch };
      const rounds = quick ? 2 : 3;
      // ours: onnxruntime on our graph (the CPU float32 engine) where installed, and libtorch
      const engines: Array<[string, () => number | Promise<number>, () => Promise<void>]> = [];
      if (onnxRuntime(engine).ort) {
        const session = await OnnxSession.create(visionTowerOnnx(model));
        // pixels as FrameEncoder hands them over: the float32 array it fills, shared, not copied
        const input = { data: pixels.toTypedArray() as Float32Array, shape: pixels.shape };
        const run = async () => Object.values(await session.run({ pixels: input })).forEach((t) => t.dispose());
        engines.push([
          `${name} vision tower, batch ${batch}`,
          () => timeItAsync(run, { iters, warmup: 1 }),
          () => session.release(),
        ]);
      }
      engines.push([
        `${name} vision tower, batch ${batch}, libtorch`,
        () => timeIt(step, { iters, warmup: 1 }),
        async () => undefined,
      ]);
      let file: string | null = null;
      if (onnx && torch) {
        file = path.join(dir, 'tower.onnx');
        await torch.exportOnnx('clip_vision', args, file);
      }
      for (const [label, ours, release] of engines) {
        const r = await compare(label, ours, torch, 'clip_vision', args, iters, rounds);
        let onnxSeconds: number | null = null;
        if (onnx && file) {
          // onnxruntime and ours back to back, as many rounds as against PyTorch, the order flipping
          const session = await onnx.open(file, 'pixels', [batch, 3, R, R]);
          const o = await alternate(ours, () => session.time({ warmup: 2, iters }), rounds);
          await session.release();
          onnxSeconds = o.reference;
          r.ours = Math.min(r.ours, o.ours);
          r.rounds = { ...r.rounds, onnx: o.ratios };
        }
        await release();
        rows.push({ ...r, onnx: onnx ? onnxSeconds : undefined, unit: { label: 'img/s', perIter: batch } });
      }
      if (file) fs.rmSync(file);
      // --precision bf16 where this CPU has bf16 kernels; its ratio is to fp32
      if (bf16) {
        model.setVisionDtype('bfloat16');
        const seconds = timeIt(step, { iters, warmup: 1 });
        const fp32 = rows[rows.length - 1]!.ours; // libtorch's float32 row: bf16 runs on libtorch
        bf16Lines.push(
          `${name} --precision bf16: ${(batch / seconds).toFixed(1)} img/s, ` +
            `${(fp32 / seconds).toFixed(2)}x float32 on libtorch`,
        );
      }
      for (const p of model.parameters()) p.dispose();
      pixels.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable(`CLIP vision tower, random weights, float32, CPU (${getNumThreads()} threads)`, rows);
  for (const l of bf16Lines) console.log(l);
}
