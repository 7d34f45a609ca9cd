// `ous demo`: the whole method end to end on the built-in synthetic benchmark. It lands with the
// benchmark issue; until then it says so and exits with a distinct code.
import type { Command } from './command.js';

export const demo: Command = {
  name: 'demo',
  summary: 'run OUS end to end on the built-in synthetic benchmark (no downloads)',
  usage: 'ous demo [--out DIR] [--quick] [--seed N] [--json]',
  async run() {
    process.stdout.write('ous demo: not built yet; the synthetic benchmark and the end-to-end run land with issue 7.\n');
    return 0;
  },
};
