/**
 * Check a room's pre-queue draw from what its gateway publishes (docs/api.md section 8): the seed
 * matches the commitment, the list holds every entrant once, tickets 1..N follow the draw keys
 * HMAC-SHA256(seed, entrantId) in ascending byte order, and (with --entrant) where one entrant stands.
 *
 *   npm run verify-draw -- --room R --gateway URL [--entrant ID] [--commitment HEX] [--json]
 *
 * Exit 0: the draw holds. 1: it does not (each problem is printed). 2: it could not be checked
 * (bad arguments, the gateway unreachable, the room not open yet).
 */
import { parseArgs } from 'node:util';
import { DrawFetchError, fetchDraw, verifyDraw } from '../waiting-room/draw-verify.js';

const USAGE = 'usage: npm run verify-draw -- --room R --gateway URL [--entrant ENTRANT_ID] [--commitment HEX] [--json]';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { room: { type: 'string' }, gateway: { type: 'string' }, entrant: { type: 'string' }, commitment: { type: 'string' }, json: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!values.room || !values.gateway) { console.error(USAGE); return 2; }
  let fetched;
  try {
    fetched = await fetchDraw(values.gateway, values.room);
  } catch (e) {
    console.error(e instanceof DrawFetchError ? e.message : `cannot reach ${values.gateway}: ${(e as Error).message}`);
    return 2;
  }
  const v = verifyDraw(fetched.pub, fetched.list, { entrant: values.entrant, commitment: values.commitment });
  if (values.json) {
    console.log(JSON.stringify({ room: values.room, ...fetched.pub, ...v }));
    return v.ok ? 0 : 1;
  }
  console.log(`room ${values.room}: commitment ${fetched.pub.commitment}`);
  console.log(`seed ${fetched.pub.seed}, ${fetched.pub.entrants} entrants drawn, ${v.listed} listed`);
  if (v.entrant) {
    console.log(v.entrant.ticket === null
      ? `entrant ${v.entrant.entrantId}: NOT in the draw`
      : `entrant ${v.entrant.entrantId}: ticket ${v.entrant.ticket} of ${v.listed} (draw key ${v.entrant.key})`);
  }
  if (v.ok) console.log('the draw holds: the seed matches the commitment and every ticket follows its draw key');
  else {
    console.log('the draw does NOT hold:');
    for (const p of v.problems) console.log(`  - ${p}`);
  }
  return v.ok ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (e: unknown) => { console.error(e); process.exitCode = 2; });
