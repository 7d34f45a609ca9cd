// `npm run bench [-- engine|clip|streams|faces|train|extract|serve|long|persons ...] [--quick]`: runs the
// benchmarks, each printed beside the same work in PyTorch (Python) measured in the same run when
// python3-torch is installed.
// `demo-seeds` (the demo's spread over seeds and engines) runs only when named.
import { getNumThreads } from '../src/torch/index.js';
import { TorchReference, printTable } from './lib.js';
import { infoHeader } from '../src/cli/info.js';
import { applyThreads, enginePreference } from '../src/cli/env.js';
import type { EnginePreference } from '../src/clip/frame-encoder.js';
import { benchEngine, title as engineTitle } from './engine.js';
import { benchClip } from './clip.js';
import { benchStreams } from './streams.js';
import { benchFaces } from './faces.js';
import { benchTrain } from './train.js';
import { benchExtract } from './extract.js';
import { benchServe } from './serve.js';
import { benchLong } from './long.js';
import { benchPersons } from './persons.js';
import { benchLive } from './live.js';
import { benchDemoSeeds } from './demo-seeds.js';

// OUS_ENGINE and OUS_NUM_THREADS apply here as in the CLI (src/cli/env.ts).
const suites: Record<
  string,
  (torch: TorchReference | null, quick: boolean, engine: EnginePreference) => Promise<void>
> = {
  engine: async (torch, quick) => printTable(engineTitle(), await benchEngine(torch, quick)),
  streams: async (_torch, quick) => benchStreams(quick),
  faces: async (_torch, quick) => benchFaces(quick),
  train: async (torch, quick) => benchTrain(torch, quick),
  extract: async (_torch, quick, engine) => benchExtract(quick, engine),
  serve: async (_torch, quick, engine) => benchServe(quick, engine),
  long: async (_torch, quick, engine) => benchLong(quick, engine),
  persons: async (_torch, quick, engine) => benchPersons(quick, engine),
  live: async (_torch, quick, engine) => benchLive(quick, engine),
  clip: async (torch, quick, engine) => benchClip(torch, quick, engine),
  // minutes of training: only when named (`bench demo-seeds`), never in the default set
  'demo-seeds': async (_torch, quick) => benchDemoSeeds(quick),
};
const onlyWhenNamed = new Set(['demo-seeds']);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const chosen = names.length ? names : Object.keys(suites).filter((n) => !onlyWhenNamed.has(n));
  for (const n of chosen)
    if (!suites[n]) throw new Error(`unknown benchmark '${n}' (${Object.keys(suites).join(', ')})`);
  applyThreads();
  const engine = enginePreference();
  console.log(infoHeader()); // the machine, BLAS kernel and threads every number below depends on
  const torch = TorchReference.start(getNumThreads());
  if (!torch) console.log('PyTorch for Python not found (apt-get install python3-torch): printing our numbers alone.');
  try {
    for (const n of chosen) await suites[n]!(torch, quick, engine);
  } finally {
    torch?.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
