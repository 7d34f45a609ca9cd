// safetensors: round trips of every dtype, the hand-written CLIP fixture, offsets past 2 GiB,
// clear errors on broken files, and atomic writes.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  tensor,
  loadSafetensors,
  saveSafetensors,
  readSafetensorsHeader,
  randn,
  manualSeed,
} from '../src/torch/index.js';
import { fixture } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-st-'));

test('round trip of every dtype, with metadata, in sorted order', () => {
  manualSeed(0);
  const src = {
    'b.f32': randn([3, 4]),
    'a.f64': randn([2], { dtype: 'float64' }),
    'c.f16': tensor([1.5, -2, 65504]).to('float16'),
    'd.bf16': tensor([1, 256, -0.5]).to('bfloat16'),
    'e.i64': tensor(new BigInt64Array([1n, -(2n ** 40n)])),
    'f.bool': tensor([true, false, true]),
    'g.scalar': tensor(3.25),
  };
  const file = path.join(tmp, 'all.safetensors');
  saveSafetensors(file, src, { note: 'hello' });
  const h = readSafetensorsHeader(file);
  assert.deepEqual([...h.tensors.keys()], Object.keys(src).sort());
  assert.deepEqual(h.metadata, { note: 'hello' });
  assert.equal(h.dataStart % 8, 0, 'the header is padded to 8 bytes');
  assert.deepEqual(h.tensors.get('c.f16')!.dtype, 'F16');
  const back = loadSafetensors(file);
  for (const [k, t] of Object.entries(src)) {
    const b = back.get(k)!;
    assert.equal(b.dtype, t.dtype, k);
    assert.deepEqual(b.shape, t.shape, k);
    assert.deepEqual(b.toFlatArray(), t.toFlatArray(), k);
  }
  assert.equal(loadSafetensors(file, { only: ['c.f16'], dtype: 'float32' }).get('c.f16')!.dtype, 'float32');
  assert.equal(fs.readdirSync(tmp).filter((f) => f.includes('.tmp')).length, 0, 'no temporary file is left');
});

test('reads the hand-written CLIP fixture (142 F32 tensors, a [] scalar)', () => {
  const file = fixture('clip-dev', 'model', 'model.safetensors');
  const h = readSafetensorsHeader(file);
  assert.equal(h.tensors.size, 142);
  const t = loadSafetensors(file, { only: ['logit_scale', 'text_projection.weight'] });
  assert.deepEqual(t.get('logit_scale')!.shape, []);
  assert.equal(t.get('logit_scale')!.item(), Math.fround(2.6592600345611572));
  assert.deepEqual(t.get('text_projection.weight')!.shape, [32, 64]);
});

test('offsets past 2 GiB (a sparse file) are read exactly', () => {
  const file = path.join(tmp, 'big.safetensors');
  const pad = 2 ** 31 + 24; // a 2 GiB+ U8 tensor that is never read
  const header = JSON.stringify({
    pad: { dtype: 'U8', shape: [pad], data_offsets: [0, pad] },
    x: { dtype: 'F32', shape: [3], data_offsets: [pad, pad + 12] },
  });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header)]));
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from(new Float32Array([1.5, -2, 3]).buffer), 0, 12, 8 + header.length + pad);
  fs.closeSync(fd);
  assert.deepEqual(
    loadSafetensors(file, { only: ['x'] })
      .get('x')!
      .toFlatArray(),
    [1.5, -2, 3],
  );
  fs.rmSync(file);
});

test('broken files give errors that name the file and the problem', () => {
  const write = (name: string, bytes: Buffer) => (fs.writeFileSync(path.join(tmp, name), bytes), path.join(tmp, name));
  const withHeader = (json: string, extra = 0) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, Buffer.from(json), Buffer.alloc(extra)]);
  };
  assert.throws(
    () => readSafetensorsHeader(path.join(tmp, 'nope.safetensors')),
    /cannot open .*nope\.safetensors: no such file/,
  );
  assert.throws(
    () => readSafetensorsHeader(write('short', Buffer.from([1, 2]))),
    /short: not a valid safetensors file: the file has 2 bytes/,
  );
  assert.throws(
    () => readSafetensorsHeader(write('len', withHeader('{}').fill(0xff, 0, 8))),
    /header length .* does not fit/,
  );
  assert.throws(() => readSafetensorsHeader(write('json', withHeader('{"a":'))), /the header is not JSON/);
  assert.throws(
    () => readSafetensorsHeader(write('dtype', withHeader('{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}', 1))),
    /tensor 'a' has unsupported dtype "Q8"/,
  );
  assert.throws(
    () => readSafetensorsHeader(write('span', withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4))),
    /spans 4 bytes, its dtype and shape need 8/,
  );
  assert.throws(
    () => readSafetensorsHeader(write('past', withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 4))),
    /outside the 4-byte data section/,
  );
  const ok = path.join(tmp, 'ok.safetensors');
  saveSafetensors(ok, { a: tensor([1]) });
  assert.throws(() => loadSafetensors(ok, { only: ['b'] }), /ok\.safetensors: no tensor named 'b'/);
});
