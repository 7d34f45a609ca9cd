// A worker process of `ous serve`: loads the run and CLIP once, then predicts the jobs the server
// sends, one at a time, reporting each stage. Inference lives here and never on the server's event
// loop; processes, not threads, because the addon's tensor slot table is process-global.
import { Predictor } from '../predict/predictor.js';
import { POLARITIES } from '../ous/config.js';
import { UserError } from '../util/errors.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { setNumThreads, type Device, type Precision } from '../torch/index.js';
import type { EnginePreference } from '../data/encoder.js';

const send = (m: FromWorker) => process.send!(m);

async function main(): Promise<void> {
  process.on('disconnect', () => process.exit(0)); // the server went away (even while the model loads)
  const [run, clip] = [process.env.OUS_SERVE_RUN!, process.env.OUS_SERVE_CLIP || undefined];
  // checked by ous serve before the workers start
  const device = (process.env.OUS_SERVE_DEVICE || undefined) as Device | undefined;
  const precision = (process.env.OUS_SERVE_PRECISION || 'fp32') as Precision;
  const engine = (process.env.OUS_SERVE_ENGINE || 'auto') as EnginePreference;
  const threads = Number(process.env.OUS_SERVE_THREADS); // the server's share of the cores for each worker
  if (threads > 0) setNumThreads(threads);
  let predictor: Predictor;
  try {
    predictor = Predictor.load(run, { clip, device, precision, engine });
    await predictor.encoder.prepare(predictor.inference.polarityLayer); // onnxruntime's session before the first job
  } catch (err) {
    const userError = err instanceof UserError;
    send({ type: 'fatal', error: userError ? (err as Error).message : String((err as Error).stack ?? err), userError });
    process.exit(1);
  }
  const { inference, encoder, conf } = predictor;
  send({
    type: 'ready',
    model: {
      run,
      classes: predictor.classNames,
      polarities: [...POLARITIES],
      encoder: { clipHash: inference.clipHash, precision: encoder.precision, embed: encoder.dims.embed, visionWidth: encoder.dims.visionWidth, frames: inference.frames, scene: inference.scene, polarityLayer: inference.polarityLayer },
      config: conf.ous as unknown as Record<string, unknown>,
    },
  });
  // One job at a time: the server sends the next only after this one answered.
  let chain = Promise.resolve();
  process.on('message', (m: ToWorker) => {
    if (m.type !== 'job') return;
    chain = chain.then(async () => {
      try {
        const result = await predictor.predict(m.file, { window: m.window, stride: m.stride, faceBox: m.faceBox, onProgress: (stage, fraction) => send({ type: 'progress', id: m.id, stage, fraction }) });
        send({ type: 'done', id: m.id, result });
      } catch (err) {
        const userError = err instanceof UserError;
        send({ type: 'failed', id: m.id, error: userError ? (err as Error).message : `internal error: ${(err as Error).message}`, userError });
      }
    });
  });
}

void main();
