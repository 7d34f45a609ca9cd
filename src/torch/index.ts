// ous/torch: a PyTorch-shaped tensor library for TypeScript over libtorch.
//   import { tensor, tidy, nn, optim, F } from 'ous/torch';
export * from './tensor.js';
export { parseDevice, parseOptionalDevice } from './device.js';
export * as F from './functional.js';
export * as nn from './nn/index.js';
export * as optim from './optim.js';
export { loadSafetensors, saveSafetensors, readSafetensorsHeader } from './safetensors.js';
export type { SafetensorsHeader, TensorInfo } from './safetensors.js';
export { PRECISIONS, parsePrecision, precisionDtype, type Precision } from './precision.js';
