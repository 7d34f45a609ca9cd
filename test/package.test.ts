// The package as a user gets it: `npm pack`, the tarball unpacked into a scratch project's
// node_modules/ous, and the README's two code examples run there as written ('ous' and 'ous/torch'
// through package.json's exports). Offline: the package's node_modules is a symlink to this
// checkout's (what npm would install from the lockfile), and the addon is the one built here
// (an install builds it against the machine's libtorch: scripts/setup, npm run build:native).
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { tinyCache } from './helpers.js';

const root = packageRoot();
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-package-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

function sh(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The README's fenced ```ts block that follows `heading`. */
function readmeExample(heading: string): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README: no heading ${heading}`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, `README: no ts example under ${heading}`);
  return block[1]!;
}

/** npm pack, then the tarball unpacked as scratch/node_modules/ous with its dependencies under it. */
function install(): string {
  const packed = JSON.parse(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], root));
  const modules = path.join(scratch, 'node_modules');
  fs.mkdirSync(modules);
  sh('tar', ['-xzf', path.join(scratch, packed[0].filename), '-C', modules], scratch);
  const ous = path.join(modules, 'ous');
  fs.renameSync(path.join(modules, 'package'), ous);
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(ous, 'node_modules')); // never run npm in scratch
  fs.symlinkSync(path.join(root, 'native', 'build'), path.join(ous, 'native', 'build'));
  fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', type: 'module' }));
  return ous;
}

test("the packed package runs the README's examples through its exports", () => {
  const ous = install();
  assert.ok(!fs.existsSync(path.join(ous, 'dist', 'test')), 'the tests are not packed');
  const bin = JSON.parse(fs.readFileSync(path.join(ous, 'package.json'), 'utf8')).bin.ous;
  assert.match(sh(process.execPath, [path.join(ous, bin), '--help'], scratch), /^usage: ous <command>/);
  const run = (name: string, code: string) => {
    fs.writeFileSync(path.join(scratch, name), code);
    return sh(process.execPath, [name], scratch);
  };
  // The tensor engine's example as written: 100 Adam steps of a small MLP.
  run('torch.mjs', readmeExample('## The tensor engine: `ous/torch`'));
  // The training example on a tiny cache where it expects DFEW's, for 2 epochs instead of the paper's 60.
  tinyCache(path.join(scratch, 'caches', 'dfew-1'));
  const example = readmeExample('## From code');
  assert.match(example, /overrides: \{ train: \{ /);
  const uar = Number(
    run('train.mjs', example.replace('overrides: { train: { ', 'overrides: { train: { epochs: 2, ')).trim(),
  );
  assert.ok(uar >= 0 && uar <= 1, `evalRun(...).uar printed ${uar}`);
  assert.ok(fs.existsSync(path.join(scratch, 'runs', 'dfew-1', 'config.json')), 'the run folder');
});
