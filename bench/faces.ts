// Face finder benchmark (issue 36): faces found and false boxes on scenes composed of the real faces of
// fixtures/media (test/face-scenes.ts: the true boxes follow from the composition), face-api's own look
// at a frame (layout 'square', at most 20 faces: the detector before issue 36) against the finder, and
// the finder without its tiles or its contrast stretch (what each part adds).
import type { DetectorOptions } from '../src/face/detector.js';
import { detectFaces } from '../src/face/detector.js';
import {
  darken,
  groupScene,
  padScene,
  photoFaces,
  score,
  solvayScenes,
  talkingFaces,
  type Scene,
} from '../test/face-scenes.js';

const VARIANTS: Array<[string, DetectorOptions]> = [
  ["face-api's look", { layout: 'square', maxResults: 20 }],
  ['finder', {}],
  ['no tiles', { tiles: false }],
  ['no stretch', { stretch: false }],
];

export async function benchFaces(quick: boolean): Promise<void> {
  const faces = await photoFaces();
  const talking = await talkingFaces(quick ? 8 : 24);
  const group = groupScene(faces, 1280, 720, 6, [60, 75, 90, 110, 130]);
  const [solvay, solvayStrip] = await solvayScenes();
  const sets: Array<[string, Scene[]]> = [
    ['Solvay 1927 photo, 1280x926 (ViSP 30 boxes)', [solvay]],
    ['its strip of 18 faces, 1280x160', [solvayStrip]],
    ['group: 30 faces of 60-130 px, 1280x720', [group]],
    ['strip: 10 faces of 90 px, 1280x200', [groupScene(faces, 1280, 200, 10, [90])]],
    ['talking face padded to 1080x288', talking.map((f) => padScene(f, 1080, 288, 360, 0))],
    ['talking face padded to 360x864', talking.map((f) => padScene(f, 360, 864, 0, 288))],
    ['talking face, 360x288', talking.map((f) => padScene(f, 360, 288, 0, 0))],
    ['24 faces of 40 px, 1280x720', [groupScene(faces, 1280, 720, 6, [40, 40, 40, 40])]],
    ['24 faces of 58 px, 1280x720', [groupScene(faces, 1280, 720, 6, [58, 58, 58, 58])]],
    ['24 faces of 90 px, 1280x720', [groupScene(faces, 1280, 720, 6, [90, 90, 90, 90])]],
    ['group, pixels x 0.2', [darken(group, 0.2)]],
    ['talking face, pixels x 0.25', talking.map((f) => darken(padScene(f, 360, 288, 0, 0), 0.25))],
    ['talking face, pixels x 0.4', talking.map((f) => darken(padScene(f, 360, 288, 0, 0), 0.4))],
  ];
  console.log('\nFaces found / true faces (false boxes), IoU >= 0.5 with the annotated or composed boxes');
  console.log(['scene'.padEnd(44), ...VARIANTS.map(([n]) => n.padEnd(16))].join(' '));
  for (const [name, scenes] of sets) {
    const cells: string[] = [];
    for (const [, opts] of VARIANTS) {
      let [found, falseBoxes, total] = [0, 0, 0];
      for (const s of scenes) {
        const r = score(await detectFaces(s.frame, opts), s.faces);
        [found, falseBoxes, total] = [found + r.found, falseBoxes + r.falseBoxes, total + s.faces.length];
      }
      cells.push(`${found}/${total} (${falseBoxes})`.padEnd(16));
    }
    console.log([name.padEnd(44), ...cells].join(' '));
  }
}
