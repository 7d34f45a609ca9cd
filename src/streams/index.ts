// OUS's preprocessing block (SPEC.md §2): a clip (video file or frame folder) becomes T sampled
// frames, each split into the face stream (a square crop around the clip's main face) and the
// scene stream (the whole frame, with the face masked out by default). Everything stays in memory
// as raw RGB; the CLI writes PNGs, the feature extractor encodes them.
//
// The folder's entry: what a clip's streams are (types.ts), opening a clip (source.ts), its face
// as crop squares and each frame cut into face and scene (crop.ts), prediction's two passes
// (two-pass.ts) and extraction's views (views.ts). src/streams/recipe.ts says which streams.
export * from './types.js';
export * from './source.js';
export * from './crop.js';
export * from './two-pass.js';
export * from './views.js';
