// safetensors (the Hugging Face weights format): an 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}},
// then the raw little-endian data, offsets counted from the end of the header.
// Reading goes straight from the file into tensor memory (files over 2 GiB need no JS buffer);
// writing is atomic (temporary file, then rename).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from './native.js';
import { Tensor, type Device, type DType } from './tensor.js';
import { ensureDir, fsUserError, pathKind, writeChunksAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';

const FROM_ST: Record<string, DType> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};
const TO_ST: Record<DType, string> = Object.fromEntries(Object.entries(FROM_ST).map(([k, v]) => [v, k])) as Record<
  DType,
  string
>;
const ITEM_SIZE: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };

export interface TensorInfo {
  dtype: string; // safetensors name: F32, F16, BF16, I64, ...
  shape: number[];
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file. */
  dataStart: number;
}

/** Reads and validates the header; every inconsistency is an error that names the file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fail = (why: string): never => {
    throw new UserError(`${file}: not a valid safetensors file: ${why}`);
  };
  // Opening a FIFO for reading waits for a writer: what it is is said first, as is a folder.
  const kind = pathKind(file);
  if (kind === 'missing') throw new UserError(`cannot open ${file}: no such file`);
  if (kind !== 'file')
    throw new UserError(`${file}: not a valid safetensors file: it is ${kind === 'folder' ? 'a folder' : kind.other}`);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw fsUserError(err, file, 'cannot open');
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) fail(`the file has ${size} bytes, fewer than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > size - 8 || n > 100 * 1024 * 1024) fail(`header length ${n} does not fit in a file of ${size} bytes`);
    const jsonBuf = Buffer.alloc(n);
    fs.readSync(fd, jsonBuf, 0, n, 8);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(jsonBuf.toString('utf8'));
    } catch (err) {
      return fail(`the header is not JSON (${(err as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('the header is not a JSON object');
    const dataStart = 8 + n;
    const dataLen = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, entry] of Object.entries(json)) {
      if (name === '__metadata__') {
        metadata = entry as Record<string, string>;
        continue;
      }
      const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e.dtype !== 'string' || !(e.dtype in ITEM_SIZE))
        fail(
          `tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)} ` +
            `(supported: ${Object.keys(ITEM_SIZE).join(', ')})`,
        );
      const shape = e.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
        fail(`tensor '${name}' has a bad shape ${JSON.stringify(shape)}`);
      const off = e.data_offsets as [number, number];
      if (!Array.isArray(off) || off.length !== 2 || !(off[0] <= off[1]) || off[1] > dataLen)
        fail(`tensor '${name}' has data_offsets ${JSON.stringify(off)} outside the ${dataLen}-byte data section`);
      const want = (shape as number[]).reduce((a, b) => a * b, 1) * ITEM_SIZE[e.dtype as string]!;
      if (off[1] - off[0] !== want)
        fail(`tensor '${name}' spans ${off[1] - off[0]} bytes, its dtype and shape need ${want}`);
      tensors.set(name, { dtype: e.dtype as string, shape: shape as number[], dataOffsets: [off[0], off[1]] });
    }
    return { tensors, metadata, dataStart };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Loads tensors from a safetensors file (all, or the names in `only`), in their stored dtype
 * unless `dtype` is given (floating tensors only are converted).
 */
export function loadSafetensors(
  file: string,
  opts: { only?: Iterable<string>; dtype?: DType; device?: Device } = {},
): Map<string, Tensor> {
  const header = readSafetensorsHeader(file);
  const names = opts.only ? [...opts.only] : [...header.tensors.keys()];
  const out = new Map<string, Tensor>();
  for (const name of names) {
    const info = header.tensors.get(name);
    if (!info) throw new Error(`${file}: no tensor named '${name}'`);
    let t = new Tensor(native.fromFile(file, header.dataStart + info.dataOffsets[0], FROM_ST[info.dtype]!, info.shape));
    const floating = ['F32', 'F64', 'F16', 'BF16'].includes(info.dtype);
    if ((opts.dtype && floating && FROM_ST[info.dtype] !== opts.dtype) || opts.device) {
      const moved = t.to({ dtype: floating ? opts.dtype : undefined, device: opts.device });
      t.dispose();
      t = moved;
    }
    out.set(name, t);
  }
  return out;
}

/**
 * Writes tensors (sorted by name, as the Python library does) and string metadata, atomically.
 * Tensors are copied to the CPU one at a time, so peak memory is one tensor.
 */
export function saveSafetensors(
  file: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const st = TO_ST[t.dtype];
    if (!st) throw new Error(`saveSafetensors: tensor '${name}' has dtype ${t.dtype}, which safetensors cannot store`);
    const bytes = t.numel() * ITEM_SIZE[st]!;
    header[name] = { dtype: st, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const jsonBuf = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(jsonBuf.length));
  function* chunks(): Generator<Uint8Array> {
    yield len;
    yield jsonBuf;
    for (const [, t] of entries) yield native.toBytes(t.handle);
  }
  ensureDir(path.dirname(path.resolve(file)));
  writeChunksAtomic(file, chunks());
}
