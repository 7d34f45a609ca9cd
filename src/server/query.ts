// The query of POST /api/predict read into checked values (pure: the same query always gives the
// same answer or the same 400). contract.ts PredictQuerySchema documents it.
import { UsageError } from '../util/errors.js';
import { parseBox } from '../util/box.js';
import { HttpError } from './upload.js';

export type FaceBox = [number, number, number, number];

export interface PredictQuery {
  window?: number; // seconds
  stride?: number;
  faceBox?: FaceBox; // ?box=x,y,w,h: a known face, no detection
  persons?: 'all' | number; // ?persons=all, ?person=ID
  sample?: string; // ?sample=N: a built-in clip instead of an upload
}

const bad = (message: string) => new HttpError(400, message, { Connection: 'close' });

/** ?window= or ?stride=: a positive number of seconds up to `maxSeconds`. */
export function parseSeconds(q: URLSearchParams, key: 'window' | 'stride', maxSeconds: number): number | undefined {
  const v = q.get(key);
  if (v === null) return undefined;
  if (!(Number(v) > 0 && Number(v) <= maxSeconds))
    throw bad(`${key} must be a positive number of seconds up to ${maxSeconds}, not '${v}'`);
  return Number(v);
}

/** ?box=x,y,w,h in the video's pixels (its fit to the frame is checked once the video is probed). */
export function parseBoxParam(q: URLSearchParams): FaceBox | undefined {
  const v = q.get('box');
  if (v === null) return undefined;
  try {
    return parseBox(v, 'box');
  } catch (err) {
    if (err instanceof UsageError) throw bad(`${err.message} (?box=x,y,w,h)`);
    throw err;
  }
}

/** ?persons=all: a timeline for every person; ?person=ID: one of them (ids by first appearance, then left to right). */
export function parsePersons(q: URLSearchParams): 'all' | number | undefined {
  const [all, person] = [q.get('persons'), q.get('person')];
  if (all !== null && all !== 'all') throw bad(`persons must be 'all', not '${all}' (?person=ID asks for one)`);
  if (person !== null && !/^\d{1,6}$/.test(person))
    throw bad(`person must be a person's id (0, 1, ...), not '${person}'`);
  if ((all !== null || person !== null) && q.get('box') !== null)
    throw bad('box is one known face: it does not go with persons or person');
  if (all !== null && person !== null) throw bad('give persons=all or person=ID, not both');
  return all !== null ? 'all' : person !== null ? Number(person) : undefined;
}

/** The whole query, checked in the order a client reads the refusals: timeline, box, persons. */
export function parsePredictQuery(q: URLSearchParams, maxSeconds: number): PredictQuery {
  const window = parseSeconds(q, 'window', maxSeconds);
  const stride = parseSeconds(q, 'stride', maxSeconds);
  const faceBox = parseBoxParam(q);
  const persons = parsePersons(q);
  const sample = q.get('sample') ?? undefined;
  return { window, stride, faceBox, persons, sample };
}
