// Every `ous` subcommand, in the order `ous --help` lists them.
import type { Command } from './command.js';
import { demo } from './demo.js';
import { clipEmbedCommand } from './clip-embed.js';
import { faces } from './faces.js';
import { streams } from './streams.js';
import { extract } from './extract.js';
import { trainCommand, evalCommand } from './train.js';
import { report } from './report.js';
import { ablate } from './ablate.js';
import { predict } from './predict.js';
import { serve } from './serve.js';
import { info } from './info.js';

export const commands: Command[] = [
  demo,
  clipEmbedCommand,
  faces,
  streams,
  extract,
  trainCommand,
  evalCommand,
  predict,
  serve,
  report,
  ablate,
  info,
];
