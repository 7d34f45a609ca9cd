// `ous serve --run RUN`: the web page and HTTP API (src/server), until SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import type { Command } from './command.js';
import { UsageError } from '../util/errors.js';
import { PRECISION_HELP } from './args.js';
import { startServer } from '../server/server.js';
import { parseOptionalDevice, parsePrecision } from '../torch/index.js';
import { allowSlowBf16, enginePreference } from './env.js';

const positive = (flag: string, v: string | undefined, fallback: number, integer: boolean): number => {
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!(x > 0) || (integer && !Number.isInteger(x))) throw new UsageError(`serve: ${flag} must be a positive ${integer ? 'integer' : 'number'}, not '${v}'`);
  return x;
};

export const serve: Command = {
  name: 'serve',
  summary: 'a web page and HTTP API: emotion and its timeline for any video (workers hold the model)',
  usage: `ous serve --run RUN [--clip DIR] [--device cpu|cuda] [--precision fp32|bf16|fp16] [--host 127.0.0.1] [--port 8080] [--workers 1] [--queue 8] [--max-upload-mb 200] [--max-seconds 600] [--grace-seconds 60] [--public-host NAME]...

  --run RUN          a folder made by ous train
  --clip DIR         the CLIP folder, when not where the run was trained (checked by hash)
  --device D         where the workers run the models (cpu by default)
  --precision P      ${PRECISION_HELP}
  --host H           the address to listen on (loopback by default; 0.0.0.0 exposes it)
  --port P           0 picks a free port
  --workers N        worker processes, each holding the model once
  --queue N          jobs that may wait; more get 503 with Retry-After
  --max-upload-mb M  bigger uploads get 413
  --max-seconds S    longer videos get 422
  --grace-seconds G  on SIGTERM/SIGINT, how long running jobs may take to finish (queued ones fail at once)
  --public-host NAME a name clients reach this server by (a reverse proxy's, a LAN name); repeatable.
                     Requests naming any other host get 421 (DNS rebinding)`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { run: { type: 'string' }, clip: { type: 'string' }, device: { type: 'string' }, precision: { type: 'string', default: 'fp32' }, host: { type: 'string' }, port: { type: 'string' }, workers: { type: 'string' }, queue: { type: 'string' }, 'max-upload-mb': { type: 'string' }, 'max-seconds': { type: 'string' }, 'grace-seconds': { type: 'string' }, 'public-host': { type: 'string', multiple: true } },
    });
    if (positionals.length) throw new UsageError(`serve: takes no positional arguments, got '${positionals.join(' ')}'`);
    if (!values.run) throw new UsageError('serve: --run RUN is required (a folder made by ous train)');
    const device = parseOptionalDevice(values.device);
    const precision = parsePrecision(values.precision!, device ?? 'cpu', { allowSlowBf16: allowSlowBf16() });
    const engine = enginePreference(); // the workers' (a bad value stops here, before any starts)
    const port = values.port === undefined ? 8080 : Number(values.port);
    if (!/^\d+$/.test(values.port ?? '8080') || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`serve: --port must be 0..65535, not '${values.port}'`);
    const grace = values['grace-seconds'] === undefined ? 60 : Number(values['grace-seconds']);
    if (!/^\d+(\.\d+)?$/.test(values['grace-seconds'] ?? '60') || !(grace <= 3600)) throw new UsageError(`serve: --grace-seconds must be 0..3600, not '${values['grace-seconds']}'`);
    for (const h of values['public-host'] ?? []) if (!/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/i.test(h)) throw new UsageError(`serve: --public-host must be a host name (no scheme or port), not '${h}'`);
    const server = await startServer({
      run: values.run,
      clip: values.clip,
      device,
      precision,
      engine,
      host: values.host ?? '127.0.0.1',
      port,
      workers: positive('--workers', values.workers, 1, true),
      queue: positive('--queue', values.queue, 8, true),
      maxUploadMb: positive('--max-upload-mb', values['max-upload-mb'], 200, false),
      maxSeconds: positive('--max-seconds', values['max-seconds'], 600, false),
      publicHost: values['public-host'],
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
