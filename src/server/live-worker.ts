// A camera session's process (live.ts starts one per session): loads the run once, takes the JPEG
// frames the server forwards, and runs the streaming predictor over them (predict/stream.ts), each
// window sent back as it is classified. A process, not a thread: the addon's tensor slot table is
// process-global, and libtorch holds this process's event loop while it works, so frames that came
// meanwhile wait in a queue of two and the older ones are dropped (counted): the windows stay on
// their source spans and the latency stays bounded (docs/DECISIONS.md, Camera mode).
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { Predictor } from '../predict/predictor.js';
import { streamFps, warmUp, type InFrame } from '../predict/stream.js';
import { setNumThreads } from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { MAX_SIDE } from '../video/decode.js';
import type { FromLive, ToLive } from './live.js';

const send = (m: FromLive) => process.send!(m);

/** The frames waiting for the predictor: at most `max`, the oldest dropped when a newer one comes. */
class FrameQueue implements AsyncIterable<InFrame> {
  dropped = 0;
  private readonly waiting: Array<{ jpeg: Uint8Array; t: number; arrivedAt: number }> = [];
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(private readonly max = 2) {}

  push(jpeg: Uint8Array, t: number): void {
    this.waiting.push({ jpeg, t, arrivedAt: performance.now() });
    while (this.waiting.length > this.max) this.waiting.shift(), this.dropped++;
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<InFrame> {
    for (;;) {
      // let the frames that came while libtorch held this thread in first: the queue keeps the newest
      await new Promise<void>((resolve) => setImmediate(resolve));
      const f = this.waiting.shift();
      if (f) {
        const frame = await decode(f.jpeg).catch(() => undefined);
        if (frame) yield { frame, t: f.t, arrivedAt: f.arrivedAt };
        else this.dropped++; // not a JPEG the decoder reads: counted, not fatal
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** A JPEG as RGB, its longer side at most MAX_SIDE (as a file's frames). */
async function decode(jpeg: Uint8Array) {
  const { data, info } = await sharp(jpeg, { limitInputPixels: 4096 * 4096 })
    .resize({ width: MAX_SIDE, height: MAX_SIDE, fit: 'inside', withoutEnlargement: true })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

async function run(settings: Extract<ToLive, { type: 'init' }>['settings'], queue: FrameQueue): Promise<void> {
  let predictor: Predictor;
  try {
    setNumThreads(settings.threads);
    predictor = Predictor.load(settings.run, {
      clip: settings.clip,
      device: settings.device,
      precision: settings.precision,
      engine: settings.engine,
    });
    await warmUp(predictor);
  } catch (err) {
    const userError = err instanceof UserError;
    send({ type: 'fatal', error: userError ? (err as Error).message : String((err as Error).stack ?? err), userError });
    return process.exit(1);
  }
  const { window, stride, lookahead, persons } = settings;
  send({ type: 'ready', fps: streamFps(predictor, window), frames: predictor.recipe.frames });
  const summary = await predictor.predictStream(queue, {
    window,
    stride,
    lookahead,
    persons,
    dropped: () => queue.dropped,
    onWindow: (w) => send({ type: 'window', window: w }),
  });
  send({ type: 'summary', summary });
}

function main(): void {
  process.on('disconnect', () => process.exit(0)); // the server went away
  const queue = new FrameQueue();
  let started = false;
  process.on('message', (m: ToLive) => {
    if (m.type === 'init' && !started) {
      started = true;
      run(m.settings, queue).catch((err: Error) => {
        send({ type: 'fatal', error: String(err.stack ?? err), userError: false });
        process.exit(1);
      });
    } else if (m.type === 'frame') queue.push(m.jpeg, m.t);
    else if (m.type === 'end') queue.close();
  });
}

main();
