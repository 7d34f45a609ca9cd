// Loading and saving a CLIP in Hugging Face layout:
//   config.json, model.safetensors (or model-0000X-of-0000Y.safetensors + model.safetensors.index.json),
//   vocab.json + merges.txt and/or tokenizer.json, preprocessor_config.json.
// Every tensor of the model must be in the checkpoint with the shape the config implies; every
// problem names the file and the tensor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { noGrad, readSafetensorsHeader, loadSafetensors, saveSafetensors, type DType, type Device, type Tensor } from '../torch/index.js';
import { readJson, writeFileAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { parseClipConfig, type ClipConfig } from './config.js';
import { ClipModel } from './model.js';

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
    for (const file of new Set(where.values())) if (!fs.existsSync(file)) throw new UserError(`${index} names ${path.basename(file)}, which is missing from ${dir}`);
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
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir} is not a folder (expected a Hugging Face CLIP folder)`);
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new UserError(`${dir} is not a CLIP checkpoint: config.json is missing`);
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
  const problems: string[] = [];
  if (missing.length) problems.push(`missing tensors: ${missing.join(', ')}`);
  if (unexpected.length) problems.push(`unexpected tensors: ${unexpected.join(', ')}`);
  const headers = new Map([...new Set(files.values())].map((f) => [f, readSafetensorsHeader(f)]));
  for (const [key, t] of own) {
    const file = files.get(key);
    const info = file ? headers.get(file)!.tensors.get(key) : undefined;
    if (info && info.shape.join(',') !== t.shape.join(',')) problems.push(`${path.basename(file!)}: ${key} has shape [${info.shape}], the config implies [${t.shape}]`);
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
 * Writes a model in Hugging Face layout: config.json and model.safetensors (in `dtype`, float32 by
 * default). Tokenizer and preprocessor files are copied from `filesFrom` when given.
 */
export function saveClip(model: ClipModel, dir: string, opts: { dtype?: DType; filesFrom?: string } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const own = model.stateDict();
  const tensors = new Map<string, Tensor>();
  noGrad(() => {
    for (const [k, t] of own) tensors.set(k, opts.dtype && opts.dtype !== t.dtype ? t.to(opts.dtype) : t);
  });
  saveSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const [k, t] of tensors) if (t !== own.get(k)) t.dispose();
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['CLIPModel'], ...model.config }, null, 2) + '\n');
  if (opts.filesFrom) {
    for (const f of ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json']) {
      const src = path.join(opts.filesFrom, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
    }
  }
}
