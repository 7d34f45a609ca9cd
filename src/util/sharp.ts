// sharp (libvips), loaded on first use: importing a module that can read images loads nothing, so
// `ous --help` and the commands that never decode an image do not load libvips.
import { createRequire } from 'node:module';
import type Sharp from 'sharp';

let lib: typeof Sharp | undefined;

/** The sharp function (the package is CommonJS: loaded with require, once). */
export function loadSharp(): typeof Sharp {
  lib ??= createRequire(import.meta.url)('sharp') as typeof Sharp;
  return lib;
}
