// Where the package lives on disk, so that bundled files (fixtures for tests, the native addon)
// are found whether the code runs from `src` through tsx or from `dist` after the build.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder that holds the package's package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'ous') return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the ous package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
