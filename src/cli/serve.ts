// `ous serve --run RUN`: the web page and HTTP API (src/server), until SIGINT/SIGTERM.
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { COMMON, parseFlags, usageText, type Flags } from './flags.js';
import { parsePrecision } from '../torch/index.js';
import { allowSlowBf16, enginePreference } from './env.js';

const FLAGS = {
  run: { type: { kind: 'text' }, value: 'RUN', required: true, help: 'a folder made by ous train' },
  clip: COMMON.clip,
  device: { ...COMMON.device, help: 'where the workers run the models (cpu by default)' },
  precision: COMMON.precision,
  host: {
    type: { kind: 'text' },
    value: 'H',
    default: '127.0.0.1',
    help: 'the address to listen on (loopback; 0.0.0.0 exposes it)',
  },
  port: { type: { kind: 'int', min: 0, max: 65535 }, value: 'P', default: '8080', help: '0 picks a free port' },
  workers: {
    type: { kind: 'int', min: 1, max: 64 },
    value: 'N',
    default: '1',
    help: 'worker processes, each holding the model once',
  },
  queue: {
    type: { kind: 'int', min: 1 },
    value: 'N',
    default: '8',
    help: 'jobs that may wait; more get 503 with Retry-After',
  },
  'max-upload-mb': { type: { kind: 'number', min: 0.001 }, value: 'M', default: '200', help: 'bigger uploads get 413' },
  'max-seconds': {
    type: { kind: 'seconds' },
    value: 'S',
    default: '600',
    help: 'longer videos get 422 (measured from their packets, and again while decoding)',
  },
  'grace-seconds': {
    type: { kind: 'number', min: 0, max: 3600 },
    value: 'G',
    default: '60',
    help: 'on SIGTERM/SIGINT, how long running jobs may take to finish (queued ones fail at once)',
  },
  'per-client-connections': {
    type: { kind: 'int', min: 1 },
    value: 'N',
    default: '32',
    help: 'open connections one client address may hold (behind a proxy every client is its address)',
  },
  'per-client-uploads': {
    type: { kind: 'int', min: 1 },
    value: 'N',
    default: '2',
    help: 'uploads one client address may have arriving at once; more get 429',
  },
  'min-upload-kbps': {
    type: { kind: 'number', min: 0 },
    value: 'K',
    default: '8',
    help: 'an upload slower than K KB/s over 10 s gets 408 (0: no minimum)',
  },
  'camera-sessions': {
    type: { kind: 'int', min: 0, max: 64 },
    value: 'N',
    default: '1',
    help: "the page's camera mode: sessions at once, a process each (0 turns it off; more get 503)",
  },
  'public-host': {
    type: { kind: 'text' },
    value: 'NAME',
    multiple: true,
    help:
      "a name clients reach this server by (a proxy's, a LAN name); " +
      'repeatable. Other hosts get 421 (DNS rebinding)',
  },
} as const satisfies Flags;

export const serve: Command = {
  usage: usageText('serve', FLAGS),
  async run(argv) {
    const { values } = parseFlags('serve', argv, FLAGS);
    const device = values.device;
    const precision = parsePrecision(values.precision, device ?? 'cpu', { allowSlowBf16: allowSlowBf16() });
    const engine = enginePreference(); // the workers' (a bad value stops here, before any starts)
    const grace = values['grace-seconds'];
    for (const h of values['public-host'])
      if (!/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/i.test(h))
        throw new UsageError(`serve: --public-host must be a host name (no scheme or port), not '${h}'`);
    const { startServer } = await import('../server/server.js'); // busboy and the worker pool: only when serving
    const server = await startServer({
      run: values.run,
      clip: values.clip,
      device,
      precision,
      engine,
      host: values.host,
      port: values.port,
      workers: values.workers,
      queue: values.queue,
      maxUploadMb: values['max-upload-mb'],
      maxSeconds: values['max-seconds'],
      publicHost: values['public-host'],
      perClientConnections: values['per-client-connections'],
      perClientUploads: values['per-client-uploads'],
      minUploadKBps: values['min-upload-kbps'],
      cameraSessions: values['camera-sessions'],
    });
    process.stderr.write(`ous serve: ${server.url}  (${server.model.classes.length} classes; Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => {
      // New jobs are refused, queued ones fail, running ones get the grace; clients polling see how
      // their jobs ended (up to 5 s more) before the port closes.
      const stop = (sig: string) => {
        process.stderr.write(`ous serve: ${sig}: no new jobs; running ones get up to ${grace} s (--grace-seconds)\n`);
        server.shutdown({ graceMs: grace * 1000, lingerMs: 5000 }).then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  },
};
