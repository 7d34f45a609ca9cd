// What a clip's streams are, and the options that make them (SPEC.md §2).
import type { SamplingMode } from '../video/sampling.js';
import type { RgbFrame } from '../video/decode.js';
import type { Box, DetectorEngine } from '../face/detector.js';
import type { Device } from '../torch/index.js';
import type { Crop, SubjectRule } from './recipe.js';

export interface StreamsOptions {
  frames?: number; // T (16)
  scene?: 'mask' | 'full'; // mask the face in the scene stream (default), or keep the frame whole
  mode?: SamplingMode; // test: segment middles; train: a random frame per segment
  seed?: number; // for train sampling
  faceFrames?: string; // a folder of face crops the data set ships (DFEW): the face stream comes from it
  faceBox?: Box; // a known face box for every frame (in the source's pixels): detection is skipped
  crop?: Crop; // the crop square around a face box (recipe.ts; default: the longer side × 1.25, centred)
  minConfidence?: number; // detector threshold (0.5)
  // the frames to take, in place of T sampled ones (a timeline's
  // frame grid): one detection pass links them into one track
  indices?: number[];
  detector?: DetectorEngine; // another detector implementation (tests, benchmarks); default: SSD on libtorch
  device?: Device; // where the libtorch detector runs ('cpu')
  maxSeconds?: number; // refuse a video longer than this, measured from its packets and while decoding
  // which face the clip is about (face/tracks.ts subjectTrack): 'main'
  // (default), 'largest', 'center', or a box in the source's pixels
  subject?: SubjectRule;
}

export interface StreamFrame {
  index: number; // frame index in the clip
  timeSec: number;
  box: Box; // the face box used (detected, interpolated, or the centre square when no face), in the source's pixels
  detected: boolean; // the main face was detected in this frame (not interpolated)
  face: RgbFrame; // the square crop, padded with black
  scene: RgbFrame;
}

export interface Streams {
  source: string;
  frames: StreamFrame[];
  faceMissing: boolean; // no face in any sampled frame: the centre square stands in
  otherFaces: Box[][]; // per frame, the boxes of the faces not chosen
  // the chosen track's index among the clip's face tracks (-1: none) and their number
  subject: { track: number; tracks: number };
  fps: number;
  frameCount: number;
  width: number; // of the source (before any downscaling while decoding): the pixels boxes are in
  height: number;
  rotation: number;
  missingFrames: number; // sampled frames the decoder could not deliver (repeated from the last good one)
  undecodedFrames: number; // frames of the whole clip the decoder could not deliver (truncated or corrupt file)
  still: boolean; // the source has one frame (an image, a one-frame GIF or video): it stands for every sampled frame
  timings: { decode: number; detect: number; crop: number }; // seconds
  // with the data set's face crops: where its middle crop sits around the detector's box in the
  // same scene frame (matchShipped); absent when no face was detected in that frame
  shippedFit?: Crop;
}
