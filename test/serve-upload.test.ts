// The upload of `ous serve` alone (src/server/upload.ts): the body to a file (raw or multipart,
// with its limits), the client's file name made safe to show, ffprobe's verdict on what the file
// is and how long, and the limiter that bounds probes in flight.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  displayName,
  HttpError,
  Limiter,
  probeUpload,
  receiveUpload,
  refusedFormat,
  uploadRead,
} from '../src/server/upload.js';
import { forEachFrame, probeVideo, rotationOf, VideoTooLongError } from '../src/video/decode.js';
import { openClip } from '../src/streams/index.js';
import { ffmpeg, multipart } from './serve-http.js';
import { rotatedCopy } from './helpers.js';

let dir: string;
let clip: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ous-upload-'));
  clip = path.join(dir, 'clip.mp4');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=96x72:rate=8', '-t', '3', '-pix_fmt', 'yuv420p', clip);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A request as receiveUpload sees it: headers and a body in chunks. */
const fakeReq = (body: Buffer, headers: Record<string, string> = {}) =>
  Object.assign(Readable.from([body.subarray(0, 100), body.subarray(100)]), {
    headers,
  }) as unknown as http.IncomingMessage;
const fresh = () => fs.mkdtempSync(path.join(dir, 'u-'));
const rejectsWith = (p: Promise<unknown>, status: number, re: RegExp) =>
  assert.rejects(p, (e: unknown) => e instanceof HttpError && e.status === status && re.test(e.message));

const receiveTitle =
  "receive: a raw body and a multipart file land in the folder under the server's name, " +
  'complete; limits and broken forms are refused';
test(receiveTitle, async () => {
  const video = fs.readFileSync(clip);
  const d1 = fresh();
  const raw = await receiveUpload(fakeReq(video), d1, 1 << 20);
  assert.deepEqual([raw.file, raw.name, raw.bytes], [path.join(d1, 'video'), 'upload', video.length]);
  assert.ok(fs.readFileSync(raw.file).equals(video));
  assert.deepEqual(fs.readdirSync(d1), ['video'], 'written under a temporary name, then renamed');
  const d2 = fresh();
  const m = multipart(video, '../../etc/passwd.mp4');
  const got = await receiveUpload(fakeReq(m.body, { 'content-type': m.type }), d2, 1 << 20);
  assert.ok(fs.readFileSync(got.file).equals(video), 'the file part, byte for byte');
  assert.equal(got.name, 'passwd.mp4', 'a name to show: no folders, no control characters');
  await rejectsWith(receiveUpload(fakeReq(video), fresh(), 1000), 413, /--max-upload-mb/);
  await rejectsWith(receiveUpload(fakeReq(m.body, { 'content-type': m.type }), fresh(), 1000), 413, /--max-upload-mb/);
  await rejectsWith(
    receiveUpload(fakeReq(m.body.subarray(0, m.body.length - 10), { 'content-type': m.type }), fresh(), 1 << 20),
    422,
    /malformed/,
  );
  const noFile = Buffer.from('--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b--\r\n');
  await rejectsWith(
    receiveUpload(fakeReq(noFile, { 'content-type': 'multipart/form-data; boundary=b' }), fresh(), 1 << 20),
    422,
    /no file part/,
  );
  await rejectsWith(receiveUpload(fakeReq(Buffer.alloc(0)), fresh(), 1 << 20), 422, /empty/);
  await rejectsWith(
    receiveUpload(fakeReq(video, { 'content-type': 'multipart/form-data' }), fresh(), 1 << 20),
    400,
    /Content-Type/,
  );
  const many = Buffer.from(
    Array.from({ length: 12 }, (_, i) => `--b\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nx\r\n`).join('') +
      '--b--\r\n',
  );
  await rejectsWith(
    receiveUpload(fakeReq(many, { 'content-type': 'multipart/form-data; boundary=b' }), fresh(), 1 << 20),
    413,
    /too many/,
  );
  assert.equal(displayName(undefined), 'upload');
  assert.equal(displayName('a\u0007b\u0000.mp4'), 'ab.mp4');
  assert.equal(displayName('C:\\Users\\me\\clip.mp4'), 'clip.mp4');
});

const probeTitle =
  'probe: an allow-listed video is measured (size as displayed, length); ' +
  'a playlist is named and refused without being followed; a rotated phone video has its displayed size';
test(probeTitle, async () => {
  const p = await probeUpload(clip, { maxBytes: Infinity, maxSeconds: 10 });
  assert.equal(p.format, 'mov,mp4,m4a,3gp,3g2,mj2');
  assert.deepEqual([p.width, p.height], [96, 72]);
  assert.ok(Math.abs(p.duration - 3) < 0.2, String(p.duration));
  await rejectsWith(
    probeUpload(clip, { maxBytes: Infinity, maxSeconds: 2 }),
    422,
    /3\.0 s long; this server takes at most 2 s/,
  );
  const rotated = path.join(dir, 'rotated.mp4');
  rotatedCopy(clip, rotated);
  const r = await probeUpload(rotated, { maxBytes: Infinity, maxSeconds: 10 });
  assert.deepEqual([r.width, r.height], [72, 96]);
  // A raw H.264 stream (no container) of 20 s at 2 fps: timed by its packets, as ffmpeg decodes it
  // (ffmpeg 7 reports its demuxer's default 25 fps as the average rate: 40 frames would be 1.6 s).
  const raw = path.join(dir, 'two-fps.h264');
  ffmpeg('-f', 'lavfi', '-i', 'color=c=gray:size=64x48:rate=2', '-t', '20', '-c:v', 'libx264', '-f', 'h264', raw);
  const rawInfo = await probeVideo(raw);
  assert.deepEqual([rawInfo.frameCount, rawInfo.fps, rawInfo.duration], [40, 2, 20]);
  await rejectsWith(probeUpload(raw, { maxBytes: Infinity, maxSeconds: 10 }), 422, /20\.0 s long/);
  // A playlist naming a file that does not exist: refused by name before anything is opened
  // (following it would say "No such file").
  const hls = path.join(dir, 'video');
  fs.writeFileSync(hls, '#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:3,\nfile:///nonexistent/x.mp4\n#EXT-X-ENDLIST\n');
  await rejectsWith(
    probeUpload(hls, { maxBytes: Infinity, maxSeconds: 10 }),
    422,
    /^the upload is an HLS playlist \(hls\)/,
  );
  fs.writeFileSync(hls, 'just text\n');
  await rejectsWith(probeUpload(hls, { maxBytes: Infinity, maxSeconds: 10 }), 422, /not a readable video|text file/);
  const webm = path.join(dir, 'clip.webm');
  ffmpeg('-i', clip, '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', webm);
  assert.equal((await probeUpload(webm, { maxBytes: Infinity, maxSeconds: 10 })).format, 'matroska,webm');
});

test('the limiter runs at most n at once, the rest in order', async () => {
  const l = new Limiter(2);
  let now = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      l.run(async () => {
        now++;
        peak = Math.max(peak, now);
        order.push(i);
        await new Promise((r) => setTimeout(r, 20));
        now--;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  assert.equal(l.inFlight, 0);
});

test('ffmpeg 7: a rotation given only as a display matrix turns the displayed size (one probe for all)', () => {
  // The side data as ffprobe 7 prints it without a `rotation` field, and the older `rotate` tag.
  const matrix = '\n00000000:            0       65536           0\n00000001:      -65536           0           0\n';
  const quarter = { side_data_list: [{ side_data_type: 'Display Matrix', displaymatrix: matrix }] };
  assert.equal(rotationOf(quarter), 270); // -atan2(65536, 0) = -90°
  assert.equal(rotationOf({ side_data_list: [{ side_data_type: 'Display Matrix', rotation: -90 }] }), 270);
  assert.equal(rotationOf({ tags: { rotate: '90' } }), 90);
  assert.equal(rotationOf({}), 0);
});

test('ffmpeg 7: an HLS playlist refused with "Invalid data" only is still named, from its first bytes', () => {
  const file = path.join(dir, 'playlist');
  fs.writeFileSync(file, '#EXTM3U\n#EXT-X-TARGETDURATION:10\n');
  assert.equal(refusedFormat('the upload: Invalid data found when processing input', file), 'hls');
  fs.writeFileSync(file, '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">');
  assert.equal(refusedFormat('', file), 'dash');
  fs.writeFileSync(file, 'just text\n');
  assert.equal(refusedFormat('', file), undefined);
});

const lyingTitle =
  "a header that claims 3 s for 60 s of video: refused by the upload's probe, by the worker's " +
  'open of the clip, and by decoding alone (at the limit, whatever the header says)';
test(lyingTitle, async () => {
  const long = path.join(dir, 'long.avi');
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10', '-t', '60', '-c:v', 'mpeg4', long);
  // AVI keeps its frame count in the avih and strh headers: both say 30 frames (3 s at 10 fps).
  const bytes = fs.readFileSync(long);
  bytes.writeUInt32LE(30, bytes.indexOf('avih') + 8 + 16);
  bytes.writeUInt32LE(30, bytes.indexOf('strh') + 8 + 32);
  const lying = path.join(dir, 'lying.avi');
  fs.writeFileSync(lying, bytes);
  const info = await probeVideo(lying, uploadRead());
  assert.deepEqual([info.frameCount, info.duration], [30, 3]); // what the header says
  await rejectsWith(probeUpload(lying, { maxBytes: Infinity, maxSeconds: 10 }), 422, /60\.0 s long/);
  await assert.rejects(openClip(lying, { maxSeconds: 10, ...uploadRead() }), VideoTooLongError);
  let frames = 0;
  await assert.rejects(
    forEachFrame(lying, info, [0, 29], () => void frames++, { maxSeconds: 10, ...uploadRead() }),
    (e: unknown) => e instanceof VideoTooLongError && /longer than --max-seconds 10/.test((e as Error).message),
  );
  assert.equal(frames, 2, 'the wanted frames came out before the limit stopped decoding');
});
