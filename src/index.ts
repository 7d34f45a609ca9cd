export * as torch from './torch/index.js';
