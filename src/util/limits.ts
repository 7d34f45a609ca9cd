// Numeric limits checked at the edge (flags, --set, config files), named once.

/** Seeds are 32-bit: the generators take them mod 2^32, so 4294967297 would silently be seed 1. */
export const SEED_MAX = 2 ** 32 - 1;

/**
 * Frames sampled per clip (T). The paper uses 16; a clip's frames and both streams are held in
 * memory as RGB images and CLIP inputs, so a count in the millions ran V8 out of memory instead of
 * saying so. 256 is sixteen times the paper's and a few hundred MB per clip.
 */
export const MAX_FRAMES = 256;
