// The flag checks live in flags.ts with the flag tables; the commands not yet on a table import them from here.
export { intFlag, numberFlag, outFolder, seedFlag } from './flags.js';
