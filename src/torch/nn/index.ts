export * from './module.js';
export * from './layers.js';
