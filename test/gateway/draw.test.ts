/**
 * The verifiable draw (docs/api.md section 8), against a real pre-queue of 3,000 joined over HTTP:
 * the commitment is public before anyone joins, the seed is revealed only once the room has opened
 * in Redis, the drawn list pages in ticket order, the verifier (module and `npm run verify-draw`)
 * says the draw holds and where an entrant stands, and fails on a tampered seed, a reordered list
 * or a missing entrant. The ordering rule itself (equal scores, hex key as member prefix) is
 * checked directly on Redis with keys a 53-bit score could not tell apart.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import t from 'tap';
import { Redis } from 'ioredis';
import { DRAW_KEY_HEX, preMember } from '../../waiting-room/draw.js';
import { fetchDraw, verifyDraw, type DrawnEntrant } from '../../waiting-room/draw-verify.js';
import { roomKeys } from '../../shared/keys.js';
import { gateway, getJson, inWaves, join, manualClock, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

const run = promisify(execFile);
const N = 3000;
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const hmac = (seed: Buffer, s: string) => createHmac('sha256', seed).update(s, 'ascii').digest();

t.test('the tie path: members with equal scores sort by the key bytes, exactly', async (t) => {
  const config = testConfig();
  const redis = new Redis(config.redisUrl);
  const key = roomKeys(config.redisPrefix, 'ties').pre;
  t.teardown(async () => { await redis.del(key); redis.disconnect(); });
  // 40 groups of 50 keys sharing their first 7 bytes (56 bits: equal as 53-bit double scores),
  // differing after that, several only in the last byte, and bytes >= 0x80 where signed order differs.
  const keys: Buffer[] = [];
  for (let g = 0; g < 40; g++) {
    const head = randomBytes(7);
    if (g % 2) head[0] = 0x80 | head[0]!;
    for (let i = 0; i < 50; i++) {
      const k = Buffer.concat([head, randomBytes(25)]);
      if (i % 5 === 0) { keys.push(k); const twin = Buffer.from(k); twin[31] = twin[31]! ^ 0x81; keys.push(twin); } else keys.push(k);
    }
  }
  const members = keys.map((k) => k.toString('hex') + randomBytes(16).toString('base64url'));
  for (let i = 0; i < members.length; i += 500) await redis.zadd(key, ...members.slice(i, i + 500).flatMap((m) => ['0', m]));
  const stored = await redis.zrange(key, '0', '-1');
  const byBytes = [...keys].sort(Buffer.compare).map((k) => k.toString('hex'));
  t.equal(stored.length, keys.length);
  t.same(stored.map((m) => m.slice(0, DRAW_KEY_HEX)), byBytes, 'Redis rank order = unsigned byte order of the keys');
  // The same through the gateway's own member function: rank = position of the HMAC key.
  const seed = randomBytes(32);
  const vids = Array.from({ length: 500 }, () => randomBytes(16).toString('base64url'));
  await redis.del(key);
  await redis.zadd(key, ...vids.flatMap((v) => ['0', preMember(seed, v)]));
  const expected = [...vids].sort((a, b) => Buffer.compare(hmac(seed, sha(a)), hmac(seed, sha(b))));
  t.same((await redis.zrange(key, '0', '-1')).map((m) => m.slice(DRAW_KEY_HEX)), expected, 'preMember ranks visitors by HMAC(seed, entrantId)');
});

t.test(`a drop of ${N.toLocaleString()}: committed, revealed at open, listed, verified, and tampering caught`, async (t) => {
  const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
  const clock = manualClock(opensAt - 400_000);
  const config = testConfig();
  const gw = await gateway(t, config, { clock: clock.now });
  await putRoom(gw, 'drop', { opensAt: new Date(opensAt).toISOString(), prequeueSeconds: 300, ...OPEN_LIMITS });
  const state = async () => (await getJson(`${gw.url}/api/rooms/drop`)).body as { state: string; draw: Record<string, unknown> };

  // Scheduled: the commitment is already public, before anyone can join.
  const before = await state();
  t.equal(before.state, 'scheduled');
  t.match(before.draw, { commitment: /^[0-9a-f]{64}$/ });
  t.same(Object.keys(before.draw), ['commitment'], 'no seed before open');
  const commitment = before.draw.commitment as string;

  clock.set(opensAt - 60_000);
  const vids: string[] = [];
  const odd: unknown[] = [];
  for (let w = 0; w < N / 250; w++) {
    for (const r of await Promise.all(Array.from({ length: 250 }, () => join(gw, 'drop')))) {
      if (r.status !== 200 || r.body.entrantId !== sha(r.visitorId)) odd.push(r.body);
      vids.push(r.visitorId);
    }
  }
  t.same(odd, [], 'every join answered 200 with entrantId = SHA-256 of its visitor id');
  const me = async (vid: string) => (await getJson(`${gw.url}/api/rooms/drop/me`, { 'x-visitor-id': vid })).body;
  t.match(await me(vids[0]!), { ticket: null, entrantId: sha(vids[0]!) }, '/me carries the entrantId in the pre-queue');
  t.same((await state()).draw, { commitment }, 'the same commitment through the pre-queue, still no seed');
  const early = await getJson(`${gw.url}/api/rooms/drop/draw`);
  t.same([early.status, early.body.error], [409, 'not_open'], 'no list before open');

  // Past opensAt on this clock but not yet opened in Redis: still secret.
  clock.set(opensAt + 1);
  t.same(Object.keys((await state()).draw), ['commitment'], 'the seed waits for the room to open in Redis, not for a clock');
  await gw.admitOnce!(); // the admitter's call opens the room (admission rate is 0 here: nobody let in)
  const open = (await state()).draw as { commitment: string; seed: string; entrants: number };
  t.equal(open.commitment, commitment);
  t.equal(open.entrants, N);
  t.equal(sha(Buffer.from(open.seed, 'hex')), commitment, 'SHA-256 of the revealed seed is the commitment');
  const post = await join(gw, 'drop');
  t.equal(post.body.ticket, N + 1, 'a joiner after open is behind the draw');

  // Paging.
  const page = (q: string) => getJson(`${gw.url}/api/rooms/drop/draw${q}`);
  for (const q of ['?limit=10001', '?limit=0', '?after=-1', '?after=abc', '?limit=1.5']) {
    const r = await page(q);
    t.same([r.status, r.body.error], [400, 'bad_request'], `${q} is refused`);
  }
  const first = await page('?limit=1000');
  t.same([(first.body.entrants as DrawnEntrant[]).length, first.body.next], [1000, 1000]);
  t.same((await page(`?after=${N}`)).body, { entrants: [], next: null });

  // The draw is exactly the HMAC key order, recomputed here from the visitor ids.
  const seed = Buffer.from(open.seed, 'hex');
  const drawn = [...vids].sort((a, b) => Buffer.compare(hmac(seed, sha(a)), hmac(seed, sha(b))));
  t.same((await page(`?after=${N - 1}&limit=5`)).body, { entrants: [{ ticket: N, entrantId: sha(drawn[N - 1]!) }], next: null });
  const { pub, list } = await fetchDraw(gw.url, 'drop');
  t.same(list.map((e) => e.entrantId), drawn.map(sha), 'the list is the entrants in ascending HMAC(seed, entrantId) order');
  const sample = vids.filter((_, i) => i % 10 === 0);
  const tickets = await inWaves(sample, 100, async (v) => (await me(v)).ticket);
  t.same(tickets, sample.map((v) => drawn.indexOf(v) + 1), "each visitor's /me ticket is its place in the key order");

  const v = verifyDraw(pub, list, { entrant: sha(vids[7]!), commitment });
  t.same([v.ok, v.problems, v.listed, v.entrant?.ticket], [true, [], N, drawn.indexOf(vids[7]!) + 1], 'the verifier says the draw holds');

  // Tampering, one kind at a time, through a proxy in front of the gateway.
  let mode = '';
  const proxy = http.createServer((req, res) => {
    (async () => {
      const up = await fetch(`${gw.url}${req.url}`);
      const body = (await up.json()) as Record<string, any>;
      if (mode === 'seed' && body.draw?.seed) body.draw.seed = (body.draw.seed[0] === '0' ? '1' : '0') + body.draw.seed.slice(1);
      if (mode === 'commitment' && body.draw) body.draw.commitment = sha(randomBytes(32));
      if (body.entrants && req.url?.includes('after=0&')) {
        const es = body.entrants as DrawnEntrant[];
        if (mode === 'reorder') [es[9]!.entrantId, es[10]!.entrantId] = [es[10]!.entrantId, es[9]!.entrantId];
        if (mode === 'drop') es.splice(4, 1);
        if (mode === 'remove') { es.splice(4, 1); es.forEach((e, i) => { e.ticket = i + 1; }); }
        if (mode === 'remove' && body.next !== null) body.next -= 1;
      }
      if (mode === 'remove' && body.draw?.entrants) body.draw.entrants -= 1;
      res.writeHead(up.status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    })().catch(() => res.writeHead(502).end());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => proxy.close(() => r())));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const fifth = list[4]!.entrantId;
  const check = async (m: string, entrant?: string) => { mode = m; const f = await fetchDraw(proxyUrl, 'drop'); return verifyDraw(f.pub, f.list, { entrant }); };
  t.equal((await check('')).ok, true, 'through the untouched proxy the draw holds');
  t.match(await check('seed'), { ok: false, problems: [/does not match the commitment/] }, 'a tampered seed fails');
  t.match(await check('reorder'), { ok: false, problems: [/ticket 10: entrant|ticket 1[01] is out of order|entry 10/] }, 'a reordered list fails');
  t.match(await check('drop'), { ok: false, problems: [/3,?000|2999/] }, 'a list missing an entrant fails (count and tickets)');
  const removed = await check('remove', fifth);
  t.same([removed.ok, removed.entrant?.ticket], [false, null], 'an entrant taken out cleanly (count and tickets renumbered) finds itself missing');
  t.match(removed.problems, [/is not in the draw/]);
  t.match((await check('commitment')).problems, [/does not match the commitment/]);

  // The command line: exit 0 with the entrant's place; exit 1 on a tampered seed.
  const cli = (url: string, ...extra: string[]) => run('npx', ['tsx', 'scripts/verify-draw.ts', '--room', 'drop', '--gateway', url, ...extra], { timeout: 60_000 })
    .then((r) => ({ code: 0, out: r.stdout }), (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }));
  const ok = await cli(gw.url, '--entrant', sha(vids[7]!), '--commitment', commitment);
  t.equal(ok.code, 0, 'npm run verify-draw exits 0');
  t.match(ok.out, new RegExp(`ticket ${drawn.indexOf(vids[7]!) + 1} of ${N}`));
  t.match(ok.out, /the draw holds/);
  mode = 'seed';
  const bad = await cli(proxyUrl);
  t.equal(bad.code, 1, 'and exits 1 when the seed was tampered with');
  t.match(bad.out, /does NOT hold/);
  const notOpen = await cli(gw.url.replace(/:\d+$/, ':1'));
  t.equal(notOpen.code, 2, 'exit 2 when the gateway cannot be reached');
});
