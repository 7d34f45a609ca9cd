// Preloaded (node --import) into a child by test/lazy-load.test.ts: on exit, writes to
// $OUS_LOAD_PROBE every module the process loaded: the ESM files resolved (a resolve hook, on the
// loader's thread), the CommonJS files in require's cache, and the shared objects mapped (a .node
// addon, libtorch).
import * as fs from 'node:fs';
import { createRequire, register } from 'node:module';

const log = process.env.OUS_LOAD_PROBE!;
const hook = `import * as fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  fs.appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
  return r;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

process.on('exit', () => {
  const required = Object.keys(createRequire(import.meta.url).cache);
  const mapped = fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((line) => line.split(/\s+/)[5] ?? '')
    .filter((file) => /\.node$|libtorch/.test(file));
  fs.appendFileSync(log, [...required, ...mapped].join('\n') + '\n');
});
