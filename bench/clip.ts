// CLIP vision tower throughput (images/s) for OpenAI's ViT-B/32 and ViT-L/14 shapes with random
// weights, beside the same tower in PyTorch (Python) and in onnxruntime-node (the tower exported
// by PyTorch to ONNX), all in the same run. This is the frozen encoder of OUS, run once per face
// frame and scene frame of every clip (SPEC.md §3). Two rows per shape: the engine extraction and
// prediction use in float32 on the CPU (onnxruntime running the graph clip/onnx.ts writes, where
// onnxruntime-node is installed), and libtorch's tower. Then a second table below float32: int8
// (our graph on onnxruntime, and PyTorch's quantize_dynamic) and bf16 against float32 onnxruntime.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad, randn, tidy, manualSeed, getNumThreads } from '../src/torch/index.js';
import { cpuHasFastBf16, cpuHasVnni } from '../src/torch/precision.js';
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
  // onnxruntime needs the ONNX file that PyTorch writes
  const onnx = torch ? await OnnxReference.load(getNumThreads()) : null;
  if (!onnx)
    console.log(
      torch
        ? 'onnxruntime-node not installed (an optional dependency): no onnxruntime column or row.'
        : 'no PyTorch to export the ONNX model: no onnxruntime column.',
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
      for (const p of model.parameters()) p.dispose();
      pixels.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  printTable(`CLIP vision tower, random weights, float32, CPU (${getNumThreads()} threads)`, rows);
  if (onnxRuntime(engine).ort) await benchPrecisions(torch, quick);
}

/** A variant of the tower for the precision table: its seconds per batch, or null where it cannot run here. */
type Variant = { label: string; time: () => Promise<number>; release: () => Promise<void> };

/**
 * Below float32, in the same run as float32 onnxruntime (the default engine): our int8 graph on
 * onnxruntime, PyTorch's own dynamic int8 tower (quantize_dynamic), and --precision bf16 on
 * libtorch where the CPU has bf16 kernels; batch 16, both shapes. Each round runs every variant
 * once, the order rotating; a variant's ratio is float32's time in that round over its own.
 * Printed as a Markdown table for docs/BENCHMARKS.md.
 */
export async function benchPrecisions(
  torch: TorchReference | null,
  quick: boolean,
  shapes: Array<keyof typeof CLIP_SHAPES> = ['ViT-B/32', 'ViT-L/14'],
): Promise<void> {
  const cpu = readCpuInfo();
  const flags = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8', 'amx_bf16'];
  const rounds = quick ? 2 : 3;
  console.log(
    `\nBelow float32: CLIP vision tower, random weights, CPU (${getNumThreads()} threads), ` +
      `${cpu.model} [${flags.filter((f) => cpu.flags.has(f)).join(' ')}], ` +
      `int8 weights ${cpuHasVnni(cpu) ? '8' : '7'}-bit, ${rounds} rounds\n`,
  );
  console.log('| workload | best round | speed vs float32 onnxruntime (median of rounds, range) |');
  console.log('|---|---|---|');
  for (const name of shapes) {
    const batch = 16;
    const shape = CLIP_SHAPES[name];
    const model = new ClipModel(clipConfigFor(shape)).eval().requiresGrad_(false);
    const R = shape.vision.resolution;
    const pixels = randn([batch, 3, R, R]).keep();
    const input = { data: pixels.toTypedArray() as Float32Array, shape: pixels.shape };
    // ViT-L/14 at batch 16 is many seconds a pass: fewer passes a round
    const iters = name === 'ViT-L/14' || quick ? 1 : 3;
    const onnx = async (label: string, int8: boolean): Promise<Variant> => {
      const session = await OnnxSession.create(visionTowerOnnx(model, { int8 }));
      const run = async () => Object.values(await session.run({ pixels: input })).forEach((t) => t.dispose());
      return { label, time: () => timeItAsync(run, { iters, warmup: 1 }), release: () => session.release() };
    };
    const variants = [await onnx('float32, onnxruntime (default)', false), await onnx('--precision int8', true)];
    const args = { ...shape.vision, embed: shape.embed, batch };
    if (torch)
      variants.push({
        label: 'PyTorch quantize_dynamic int8',
        time: () => torch.run('clip_vision_int8', args, iters, 1),
        release: async () => undefined,
      });
    if (cpuHasFastBf16(cpu)) {
      // a tower of its own: the cast is one-way, and the graphs above are written from float32 weights
      const bf16 = new ClipModel(clipConfigFor(shape)).eval().requiresGrad_(false).setVisionDtype('bfloat16');
      const step = () => noGrad(() => tidy(() => void bf16.encodeImage(pixels).imageEmbeds));
      variants.push({
        label: '--precision bf16 (libtorch)',
        time: async () => timeIt(step, { iters, warmup: 1 }),
        release: async () => {
          for (const p of bf16.parameters()) p.dispose();
        },
      });
    }
    const times = variants.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`  ${name}: round ${r + 1} of ${rounds}\n`); // minutes a round for ViT-L/14
      for (let j = 0; j < variants.length; j++) {
        const v = (j + r) % variants.length; // each round starts with another variant
        times[v]!.push(await variants[v]!.time());
      }
    }
    for (const v of variants) await v.release();
    variants.forEach((v, i) => {
      const ratios = times[i]!.map((t, r) => times[0]![r]! / t).sort((a, b) => a - b);
      const h = ratios.length >> 1; // an even count: the mean of the two middle ones, as printTable
      const mid = ratios.length % 2 ? ratios[h]! : (ratios[h - 1]! + ratios[h]!) / 2;
      const range = `${ratios[0]!.toFixed(2)}–${ratios[ratios.length - 1]!.toFixed(2)}`;
      const rate = batch / Math.min(...times[i]!);
      console.log(
        `| ${name}, batch ${batch}, ${v.label} | ${rate.toFixed(rate < 10 ? 2 : 1)} img/s | ` +
          `${i === 0 ? '1' : `${mid.toFixed(2)} (${range})`} |`,
      );
    });
    for (const p of model.parameters()) p.dispose();
    pixels.dispose();
  }
}
