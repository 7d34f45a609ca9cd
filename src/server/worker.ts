// A worker process of `ous serve`: waits for its settings over IPC, loads the run and CLIP once,
// then predicts the jobs the server sends, one at a time, reporting each stage and each window as
// it is classified. Inference lives here and never on the server's event loop; processes, not
// threads, because the addon's tensor slot table is process-global.
import * as path from 'node:path';
import { Predictor } from '../predict/predictor.js';
import { POLARITIES } from '../ous/config.js';
import { UserError } from '../util/errors.js';
import { setNumThreads } from '../torch/index.js';
import type { FromWorker, ToWorker, WorkerSettings } from './protocol.js';
import { uploadRead } from './upload.js';

const send = (m: FromWorker) => process.send!(m);

async function load(settings: WorkerSettings): Promise<Predictor | undefined> {
  try {
    setNumThreads(settings.threads);
    const predictor = Predictor.load(settings.run, {
      clip: settings.clip,
      device: settings.device,
      precision: settings.precision,
      engine: settings.engine,
    });
    await predictor.encoder.prepare(predictor.recipe.polarityLayer); // onnxruntime's session before the first job
    if (predictor.precisionNote) process.stderr.write(`ous serve: ${predictor.precisionNote}\n`);
    return predictor;
  } catch (err) {
    const userError = err instanceof UserError;
    send({ type: 'fatal', error: userError ? (err as Error).message : String((err as Error).stack ?? err), userError });
    process.exit(1);
  }
}

function main(): void {
  process.on('disconnect', () => process.exit(0)); // the server went away (even while the model loads)
  let predictor: Promise<Predictor | undefined> | undefined;
  let settings: WorkerSettings;
  // One job at a time: the server sends the next only after this one answered.
  let chain = Promise.resolve();
  process.on('message', (m: ToWorker) => {
    if (m.type === 'init') {
      if (predictor) return;
      settings = m.settings;
      predictor = load(settings).then((p) => {
        if (!p) return p;
        const { recipe, encoder, conf } = p;
        send({
          type: 'ready',
          model: {
            run: path.basename(path.resolve(settings.run)),
            classes: p.classNames,
            polarities: [...POLARITIES],
            encoder: {
              clipHash: recipe.clipHash,
              precision: encoder.precision,
              embed: encoder.dims.embed,
              visionWidth: encoder.dims.visionWidth,
              frames: recipe.frames,
              scene: recipe.scene,
              polarityLayer: recipe.polarityLayer,
            },
            config: conf.ous as unknown as Record<string, unknown>,
          },
        });
        return p;
      });
      return;
    }
    if (m.type !== 'job' || !predictor) return;
    const ready = predictor;
    chain = chain.then(async () => {
      const p = (await ready)!;
      try {
        const result = await p.predict(m.file, {
          window: m.window,
          stride: m.stride,
          faceBox: m.faceBox,
          persons: m.persons,
          maxSeconds: settings.maxSeconds,
          // every ffprobe and ffmpeg on the upload reads it as the server's probe did: allow-listed, at nice
          // 10 (openClip keeps no time limit: decoding stops at --max-seconds instead)
          read: uploadRead(),
          onProgress: (stage, fraction, count) =>
            send({
              type: 'progress',
              id: m.id,
              stage,
              fraction,
              ...(stage === 'classify' && count ? { total: count.total } : {}),
            }),
          onWindow: (window, k, total, person) => send({ type: 'window', id: m.id, window, k, total, person }),
        });
        send({ type: 'done', id: m.id, result });
      } catch (err) {
        const userError = err instanceof UserError;
        send({
          type: 'failed',
          id: m.id,
          error: userError ? (err as Error).message : `internal error: ${(err as Error).message}`,
          userError,
        });
      }
    });
  });
}

main();
