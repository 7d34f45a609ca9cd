// Loading and saving a CLIP in Hugging Face layout:
//   config.json, model.safetensors (or model-0000X-of-0000Y.safetensors + model.safetensors.index.json),
//   vocab.json + merges.txt and/or tokenizer.json, preprocessor_config.json.
// Every tensor of the model must be in the checkpoint with the shape the config implies; every
// problem names the file and the tensor.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  noGrad,
  readSafetensorsHeader,
  loadSafetensors,
  saveSafetensors,
  type DType,
  type Device,
  type Tensor,
} from '../torch/index.js';
import { ensureDir, fsUserError, pathKind, readJson, writeFileAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { parseClipConfig, type ClipConfig } from './config.js';
import { ClipModel } from './model.js';
import { ClipImageProcessor } from './image-processor.js';
import { ClipTokenizer } from './tokenizer.js';

/** Checkpoint keys that are not weights: HF's older checkpoints persisted these index buffers. */
const IGNORED_KEYS = /(^|\.)position_ids$/;

/** Which file holds each tensor of the checkpoint in `dir`. */
export function checkpointFiles(dir: string): Map<string, string> {
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  const where = new Map<string, string>();
  if (fs.existsSync(single)) {
    for (const key of readSafetensorsHeader(single).tensors.keys()) where.set(key, single);
  } else if (fs.existsSync(index)) {
    const map = readJson<{ weight_map?: Record<string, string> }>(index).weight_map;
    if (!map) throw new UserError(`${index} has no weight_map`);
    for (const [key, file] of Object.entries(map)) where.set(key, path.join(dir, file));
    for (const file of new Set(where.values()))
      if (!fs.existsSync(file))
        throw new UserError(`${index} names ${path.basename(file)}, which is missing from ${dir}`);
  } else {
    const bin = fs.existsSync(path.join(dir, 'pytorch_model.bin'));
    throw new UserError(
      `${dir} has no model.safetensors (nor a sharded model.safetensors.index.json)` +
        (bin ? '; it has pytorch_model.bin, a pickle this project does not read: convert it to safetensors first' : ''),
    );
  }
  return where;
}

export interface LoadOptions {
  /** Compute dtype (float16/bfloat16 weights are converted to it); float32 by default. */
  dtype?: DType;
  device?: Device;
}

/** Reads and validates `dir/config.json`. */
export function readClipConfig(dir: string): ClipConfig {
  if (pathKind(dir) !== 'folder') throw new UserError(`${dir} is not a folder (expected a Hugging Face CLIP folder)`);
  // An unreadable folder is said as such: existsSync would say its config.json is missing.
  try {
    fs.readdirSync(dir);
  } catch (err) {
    throw fsUserError(err, dir, 'cannot read the CLIP folder');
  }
  const file = path.join(dir, 'config.json');
  if (pathKind(file) === 'missing') throw new UserError(`${dir} is not a CLIP checkpoint: config.json is missing`);
  try {
    return parseClipConfig(readJson(file), file);
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}

/**
 * Loads a CLIPModel from a Hugging Face folder, frozen (no gradients) and in eval mode. Tensors
 * are read one at a time into the model, so peak memory is the model plus one tensor.
 */
export function loadClip(dir: string, opts: LoadOptions = {}): ClipModel {
  const config = readClipConfig(dir);
  const files = checkpointFiles(dir);
  const model = new ClipModel(config);
  if (opts.dtype || opts.device) model.to({ dtype: opts.dtype, device: opts.device });
  const own = model.stateDict();
  const missing = [...own.keys()].filter((k) => !files.has(k));
  const unexpected = [...files.keys()].filter((k) => !own.has(k) && !IGNORED_KEYS.test(k));
  // Weights of some other model (no tensor of CLIP's at all): said in one short line, not a list of hundreds.
  if (missing.length === own.size) {
    const some = [...files.keys()].slice(0, 3);
    throw new UserError(
      `${dir}: not a CLIP checkpoint: none of its ${files.size} tensors is one of CLIP's ` +
        `${own.size}${some.length ? ` (it has ${some.join(', ')}${files.size > 3 ? ', ...' : ''})` : ''}`,
    );
  }
  const problems: string[] = [];
  const list = (keys: string[]) =>
    `${keys.slice(0, 8).join(', ')}${keys.length > 8 ? `, ... (${keys.length} in all)` : ''}`;
  if (missing.length) problems.push(`missing tensors: ${list(missing)}`);
  if (unexpected.length) problems.push(`unexpected tensors: ${list(unexpected)}`);
  const headers = new Map([...new Set(files.values())].map((f) => [f, readSafetensorsHeader(f)]));
  for (const [key, t] of own) {
    const file = files.get(key);
    const info = file ? headers.get(file)!.tensors.get(key) : undefined;
    if (info && info.shape.join(',') !== t.shape.join(','))
      problems.push(`${path.basename(file!)}: ${key} has shape [${info.shape}], the config implies [${t.shape}]`);
  }
  if (problems.length) throw new UserError(`${dir}: the checkpoint does not match config.json: ${problems.join('; ')}`);
  noGrad(() => {
    for (const [key, t] of own) {
      const src = loadSafetensors(files.get(key)!, { only: [key] }).get(key)!;
      t.copy_(src); // converts dtype (F16/BF16 -> compute dtype) and device
      src.dispose();
    }
  });
  model.requiresGrad_(false);
  return model.eval();
}

/**
 * A content hash of the checkpoint's weights files (sha256 over every file in order), so that a
 * cache made with other weights is never reused (a few seconds for ViT-L/14).
 */
export function hashCheckpoint(dir: string): string {
  const files = [...new Set(checkpointFiles(dir).values())].sort();
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(path.basename(f));
    let fd: number;
    try {
      fd = fs.openSync(f, 'r');
    } catch (err) {
      throw fsUserError(err, f, 'cannot read');
    }
    try {
      const buf = Buffer.alloc(8 * 1024 * 1024);
      let n: number;
      let pos = 0;
      while ((n = fs.readSync(fd, buf, 0, buf.length, pos)) > 0) {
        h.update(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex');
}

/** CLIP's frozen text tower as the prompt learner uses it (the shape of ous/prompt.ts's FrozenTextTower). */
export interface ClipTextTower {
  tokenize(text: string): { ids: number[]; eotIndex: number };
  embedTokens(ids: Tensor): Tensor;
  encode(tokenEmbeds: Tensor, eotIndex: number[]): Tensor;
  width: number;
}

/** The text tower of a CLIP in memory, with its tokenizer; inputs are moved to `device`. */
export function textTowerOf(model: ClipModel, tokenizer: ClipTokenizer, device?: Device): ClipTextTower {
  const ctx = model.config.text_config.max_position_embeddings;
  return {
    tokenize: (t) => tokenizer.tokenize(t, ctx),
    embedTokens: (ids) => model.text_model.embedTokens(ids.to({ device })),
    encode: (e, eot) => model.encodeTextEmbeddings(e, eot).textEmbeds,
    width: model.config.text_config.hidden_size,
  };
}

/**
 * Everything a CLIP folder gives: the model, its image processor
 * and tokenizer, the weights' hash, and its text tower.
 */
export interface LoadedClip {
  dir: string;
  model: ClipModel;
  processor: ClipImageProcessor;
  tokenizer: ClipTokenizer;
  hash: string;
  textTower: ClipTextTower;
}

/**
 * The one CLIP loader of train, eval, report, predict and serve: the checkpoint (checked key by
 * key), the processor, the tokenizer, and the hash that ties features and runs to these weights.
 * `expectHash` refuses other weights before anything is built on them (`what` says whose hash it
 * is, for the message). `textOnly` frees the vision tower (training reads cached features).
 */
export function loadClipFolder(
  dir: string,
  opts: LoadOptions & { expectHash?: { hash: string; what: string; flag?: string }; textOnly?: boolean } = {},
): LoadedClip {
  readClipConfig(dir); // a folder that is no CLIP is said before its weights are hashed
  const hash = hashCheckpoint(dir);
  if (opts.expectHash && opts.expectHash.hash !== hash) {
    throw new UserError(
      `${opts.expectHash.flag ? `${opts.expectHash.flag} ` : ''}${dir}: ` +
        `its weights (sha256 ${hash.slice(0, 12)}) are not the ones ${opts.expectHash.what} ` +
        `(${opts.expectHash.hash.slice(0, 12)}): give the CLIP folder the features were extracted with`,
    );
  }
  const model = loadClip(dir, opts);
  if (opts.textOnly) for (const p of model.vision_model.parameters()) p.dispose();
  const tokenizer = ClipTokenizer.fromFolder(dir);
  return {
    dir,
    model,
    processor: ClipImageProcessor.fromFolder(dir),
    tokenizer,
    hash,
    textTower: textTowerOf(model, tokenizer, opts.device),
  };
}

/**
 * Writes a model in Hugging Face layout: config.json and model.safetensors (in `dtype`, float32 by
 * default). Tokenizer and preprocessor files are copied from `filesFrom` when given.
 */
export function saveClip(model: ClipModel, dir: string, opts: { dtype?: DType; filesFrom?: string } = {}): void {
  ensureDir(dir);
  const own = model.stateDict();
  const tensors = new Map<string, Tensor>();
  noGrad(() => {
    for (const [k, t] of own) tensors.set(k, opts.dtype && opts.dtype !== t.dtype ? t.to(opts.dtype) : t);
  });
  saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const [k, t] of tensors) if (t !== own.get(k)) t.dispose();
  writeFileAtomic(
    path.join(dir, 'config.json'),
    JSON.stringify({ architectures: ['CLIPModel'], ...model.config }, null, 2) + '\n',
  );
  if (opts.filesFrom) {
    for (const f of [
      'vocab.json',
      'merges.txt',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'preprocessor_config.json',
    ]) {
      const src = path.join(opts.filesFrom, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
    }
  }
}
