// `ous --help` and `ous <command> --help` answer without loading libtorch (the addon), vega,
// vega-lite, umap-js, sharp or busboy: the commands' modules are imported when they run or show
// their usage, and those libraries when first used. A control child loads each of them, so that
// the probe is shown to see every one.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { commands } from '../src/cli/commands.js';

const root = packageRoot();
const probe = path.join(root, 'dist', 'test', 'load-probe.js');
const HEAVY: Record<string, RegExp> = {
  libtorch: /ous_torch\.node|libtorch/,
  vega: /node_modules\/vega\//,
  'vega-lite': /node_modules\/vega-lite\//,
  'umap-js': /node_modules\/umap-js\//,
  sharp: /node_modules\/(sharp|@img)\//,
  busboy: /node_modules\/busboy\//,
};

/** Which of HEAVY a child running `node <args>` loaded. */
function heavyLoaded(args: string[]): string[] {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ous-lazy-')), 'loaded.txt');
  const r = spawnSync(process.execPath, ['--import', probe, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, OUS_LOAD_PROBE: log },
  });
  assert.equal(r.status, 0, `node ${args.join(' ')}: ${r.stderr}`);
  const loaded = fs.readFileSync(log, 'utf8');
  fs.rmSync(path.dirname(log), { recursive: true });
  return Object.keys(HEAVY).filter((name) => HEAVY[name]!.test(loaded));
}

test('the probe sees each heavy library when it is loaded', () => {
  const load = `
    const torch = await import('./dist/src/torch/index.js');
    torch.tensor([1]).dispose();
    await import('vega'); await import('vega-lite'); await import('busboy');
    const { createRequire } = await import('node:module');
    createRequire(import.meta.url)('umap-js');
    (await import('./dist/src/util/sharp.js')).loadSharp();`;
  assert.deepEqual(heavyLoaded(['--input-type=module', '-e', load]), Object.keys(HEAVY));
});

test('ous --help and every ous <command> --help load none of them', () => {
  const cli = path.join('dist', 'src', 'cli', 'main.js');
  for (const args of [['--help'], ...commands.map((c) => [...c.name.split(' '), '--help'])])
    assert.deepEqual(heavyLoaded([cli, ...args]), [], `ous ${args.join(' ')}`);
});
