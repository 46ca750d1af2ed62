/**
 * The gateway fuzzed (issue 10): every route family of the uWebSockets.js gateway over raw
 * sockets against the real Redis, with generated paths, headers, cookies, queries, bodies,
 * visitor ids, admin tokens and WebSocket frames. Every answer keeps the contract (see
 * fuzz.ts `problemOf`), and after each family the gateway still answers /healthz 200 and the
 * queue is as it was. FUZZ_RUNS / FUZZ_SEED: see fuzz.ts.
 */
import t, { type Test as Tap } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import WebSocket from 'ws';
import { ERRORS } from '../../waiting-room/errors.js';
import { ADMIN, gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig } from '../gateway/helpers.js';
import { rawBytes } from '../gateway/raw.js';
import {
  bodyText, bytesOf, contentType, exchange, fuzz, headerJunk, headersOf, junk, mutateToken, oddNumber, pct, problemOf, query, rawHttp, SEED, segment, shaped, tally, type Wire,
} from './fuzz.js';

t.comment(`fast-check seed ${SEED} (FUZZ_SEED=${SEED} replays this run)`);

t.test('the gateway keeps the contract under generated input', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'fuzz-gw-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  // siteverify at a closed local port: a CAPTCHA check fails fast (fail closed), nothing leaves the machine.
  const config = testConfig({ DATA_DIR: dataDir, HCAPTCHA_VERIFY_URL: 'http://127.0.0.1:9/siteverify', CAPTCHA_TIMEOUT_MS: '300' });
  const gw = await gateway(t, config);
  const now = Date.now();
  const open = { opensAt: new Date(now - 1000).toISOString(), ...OPEN_LIMITS };
  await putRoom(gw, 'r', { ...open, admitRatePerMin: 600_000, maxActive: 1000 });
  await putRoom(gw, 'pre', { opensAt: new Date(now + 3600_000).toISOString(), prequeueSeconds: 7200, ...OPEN_LIMITS });
  await putRoom(gw, 'cap', { ...open, captcha: { mode: 'always' } });
  await putRoom(gw, 'lim', { opensAt: open.opensAt, limits: { ip: { capacity: 2, refillPerSec: 0.01 } } });
  await putRoom(gw, 'shut', { opensAt: new Date(now - 7200_000).toISOString(), closesAt: new Date(now - 3600_000).toISOString() });
  await putRoom(gw, 'blk', { ...open, block: ['127.0.0.0/8'] });
  await putRoom(gw, 'held', { ...open, paused: true });
  const rooms = ['r', 'pre', 'cap', 'lim', 'shut', 'blk', 'held', 'nope'];

  const waiting: string[] = [];
  for (let i = 0; i < 6; i++) waiting.push((await join(gw, 'r')).visitorId);
  await gw.admitOnce!();
  await new Promise((r) => setTimeout(r, 200)); // admission credit accrues with time
  await gw.admitOnce!();
  const admitted = waiting.splice(0, 3);
  for (let i = 0; i < 4; i++) waiting.push((await join(gw, 'r')).visitorId); // after the admission: these wait
  const pre = (await join(gw, 'pre')).visitorId;
  const claim = await fetch(`${gw.url}/api/rooms/r/claim`, { method: 'POST', headers: { 'x-visitor-id': admitted[0]! } });
  t.equal(claim.status, 200, 'an admitted visitor claims its token');
  const admissionToken = ((await claim.json()) as { token: string }).token;
  const vids = [...admitted, ...waiting, pre];

  // Each known visitor's place: no fuzzed input may take it, move it or give it to another.
  const snapshot = async () => Promise.all(vids.map(async (v, i) => {
    const me = (await getJson(`${gw.url}/api/rooms/${v === pre ? 'pre' : 'r'}/me`, { 'x-visitor-id': v })).body;
    return [i, me.ticket, me.entrantId];
  }));
  const before = await snapshot();
  const count = tally();
  const families: Record<string, number> = {};
  const healthy = async (family: string, tt: Tap = t) => {
    tt.same(await getJson(`${gw.url}/healthz`), { status: 200, body: { ok: true, redis: 'up' } }, `after ${family}: /healthz 200`);
  };
  const run = async <T>(tt: Tap, family: string, arb: fc.Arbitrary<T>, runs: number, check: (input: T) => Promise<void>, maxRuns?: number) => {
    families[family] = await fuzz(tt, `gateway ${family}`, arb, runs, check, maxRuns);
    await healthy(family, tt);
  };
  // uWebSockets.js itself closes, unanswered, a request whose method it does not know (`get`,
  // `BREW`) or whose head passes ~128 KiB: nothing the gateway's code sees (see the report).
  const UWS_METHODS = /^(GET|POST|PUT|DELETE|PATCH|OPTIONS|HEAD|CONNECT|TRACE)$/;
  const uwsDrops = (w: Wire) => !UWS_METHODS.test(w.method) || bytesOf({ ...w, body: undefined }).length > 100 * 1024;
  const check = (w: Wire) => exchange(gw.port, ERRORS, w, count, { mayDrop: uwsDrops });

  // Identities: real visitor ids and their forgeries, cookies, admin tokens.
  const vid = fc.oneof(
    { arbitrary: fc.constantFrom(...vids), weight: 4 },
    { arbitrary: fc.constantFrom(...vids).chain((v) => mutateToken(v)), weight: 2 },
    { arbitrary: fc.constantFrom(...vids).map((v) => `${v.slice(0, 23)}${vids[0]!.slice(23)}`), weight: 1 }, // another visitor's tag
    { arbitrary: headerJunk, weight: 1 },
  );
  const cookie = fc.oneof(
    vid.map((v) => `wr_vid=${v}`),
    fc.tuple(vid, vid).map(([a, b]) => `x=1; wr_vid=${a}; wr_vid=${b}`),
    vid.map((v) => `wr_vid="${v}"`),
    fc.constantFrom('wr_vid', 'wr_vid=', ';;;', '=', 'wr_vid=%E0%A4%A', 'wr_pass=1.x; wr_vid=x', '\u00ff\u00fe'),
    headerJunk,
  );
  const adminAuth = fc.oneof(
    { arbitrary: fc.constant(`Bearer ${ADMIN}`), weight: 6 },
    { arbitrary: fc.constantFrom(`bearer ${ADMIN}`, `Bearer  ${ADMIN}`, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.slice(0, -1)}`, ADMIN, 'Bearer', 'Bearer ', `Basic ${ADMIN}`, `Bearer ${ADMIN}\u00e9`), weight: 2 },
    { arbitrary: headerJunk.map((s) => `Bearer ${s}`), weight: 1 },
  );
  const header = (values: Record<string, fc.Arbitrary<string>>) =>
    headersOf(values, ['user-agent', 'accept', 'accept-language', 'sec-fetch-site', 'x-forwarded-for', 'x-forwarded-proto', 'x']);
  const shopper = header({ cookie, 'x-visitor-id': vid, 'content-type': contentType });
  const operator = header({ authorization: adminAuth, 'content-type': contentType, cookie });
  const roomSeg = segment(rooms);

  await t.test('paths: any method, any path, any query', async (t) => {
    const known = ['', 'api', 'rooms', 'admin', 'healthz', 'metrics', '.well-known', 'jwks.json', 'join', 'me', 'claim', 'ws', 'draw', 'report', 'stats', 'audit', 'pause', 'resume', 'keys', 'rotate', ...rooms];
    const arb = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'BREW', 'get'),
      segs: fc.array(segment(known), { minLength: 1, maxLength: 6 }),
      q: query(['vid', 'after', 'limit', 'x']),
      headers: fc.oneof(shopper, operator),
      body: fc.option(bodyText(fc.object()), { freq: 2 }),
    });
    await run(t, 'paths', arb, 300, async ({ method, segs, q, headers, body }) => {
      await check({ method, target: `/${segs.join('/')}${q}`, headers, body: body ?? undefined });
    });
  });

  await t.test('queue routes: state, join, me, claim', async (t) => {
    const joinBody = shaped({ captchaToken: fc.oneof(fc.constantFrom('10000000-aaaa-bbbb-cccc-000000000001'), junk) });
    const arb = fc.record({
      route: fc.constantFrom('GET ', 'POST join', 'GET me', 'POST claim', 'GET draw', 'GET report', 'GET page'),
      room: roomSeg,
      q: query(['vid', 'captchaToken', 'after', 'limit'], fc.oneof(fc.constantFrom('0', '1', '10000', '10001', '-1', '1.5', '999999999', '9999999999'), junk)),
      headers: shopper,
      body: bodyText(joinBody),
    });
    await run(t, 'queue', arb, 500, async ({ route, room, q, headers, body }) => {
      const [method, tail] = route.split(' ') as [string, string];
      const target = tail === 'page' ? `/rooms/${room}${q}` : `/api/rooms/${room}${tail ? `/${tail}` : ''}${q}`;
      await check({ method, target, headers, body: method === 'POST' ? body : undefined });
    });
  });

  await t.test('operator routes: rooms, pause/resume, stats, audit, recording, key rotation', async (t) => {
    const iso = fc.oneof(
      fc.integer({ min: -3600_000, max: 7 * 86400_000 }).map((d) => new Date(now + d).toISOString()),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('tomorrow', '2026-13-45T00:00:00Z', '2026-01-01T25:61:61Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '2026-01-01T00:00:00+99:99', '2026-01-01T'),
    );
    const int = (min: number, max: number) => fc.oneof(fc.integer({ min, max }), oddNumber);
    const cidr = fc.oneof(fc.constantFrom('10.0.0.0/8', '192.168.1.1', '::1/128', '2001:db8::/64', '10.0.0.0/33', '::/129', '1.2.3.4/', '/8', 'not-an-ip', '10.0.0.0/08', '1.2.3.4/1/2'), fc.ipV4(), fc.ipV6(), junk);
    const bucket = shaped({ capacity: int(1, 10_000_000), refillPerSec: fc.oneof(fc.double({ min: 0.001, max: 1e7, noNaN: true }), oddNumber) });
    const roomBody = shaped({
      sale: fc.oneof(fc.constantFrom('s', 'sale-1'), junk), name: junk, opensAt: iso, closesAt: fc.oneof(iso, fc.constant(null)), prequeueSeconds: int(0, 7 * 86400),
      admitRatePerMin: int(0, 6_000_000), maxActive: int(1, 100_000_000), tokenTtlSeconds: int(30, 3600), overbook: fc.oneof(fc.double({ min: 1, max: 10, noNaN: true }), oddNumber), claimSeconds: int(10, 3600),
      checkoutUrl: fc.oneof(fc.constantFrom('http://127.0.0.1:8081/sales/s', 'https://shop.example/x', 'javascript:alert(1)', 'ftp://x', '//x', 'http://'), fc.webUrl(), junk),
      limits: shaped({ ip: bucket, subnet: bucket, room: bucket }), captcha: shaped({ mode: fc.constantFrom('off', 'suspicious', 'always', 'sometimes', ''), threshold: int(0, 1000) }),
      allow: fc.array(cidr, { maxLength: 4 }), block: fc.array(cidr, { maxLength: 4 }), trustedProxies: fc.array(cidr, { maxLength: 4 }),
      paused: fc.boolean(), closed: fc.boolean(), record: fc.boolean(), room: fc.constantFrom('a1', 'a2', 'r'), version: int(0, 100), updatedAt: iso,
    });
    const adminRooms = segment(['a1', 'a2', 'a3', 'held', 'shut']); // not 'nope': it stays unknown
    const arb = fc.record({
      route: fc.constantFrom('GET /admin/rooms', 'GET :room', 'PUT :room', 'PUT :room', 'PUT :room', 'POST :room/pause', 'POST :room/resume', 'GET :room/stats', 'GET :room/audit', 'GET :room/recording', 'POST /admin/keys/rotate', 'GET /admin'),
      room: adminRooms,
      q: query(['x']),
      headers: operator,
      body: bodyText(roomBody),
    });
    await run(t, 'operator', arb, 400, async ({ route, room, q, headers, body }) => {
      const [method, p] = route.split(' ') as [string, string];
      const target = p.startsWith('/') ? `${p}${q}` : `/admin/rooms/${p.replace(':room', room)}${q}`;
      await check({ method, target, headers, body: method === 'GET' ? undefined : body });
    });
  });

  await t.test('ops routes and framing that is not HTTP', async (t) => {
    const arb = fc.oneof(
      fc.record({ kind: fc.constant('ops' as const), p: fc.constantFrom('/healthz', '/metrics', '/.well-known/jwks.json'), q: query(['x']), headers: shopper }),
      fc.record({ kind: fc.constant('raw' as const), text: rawHttp }),
    );
    await run(t, 'ops+framing', arb, 80, async (input) => {
      if (input.kind === 'ops') {
        await check({ method: 'GET', target: `${input.p}${input.q}`, headers: input.headers });
        return;
      }
      // uWebSockets.js drops a request it cannot parse without an answer (it closes at its idle
      // timeout): what it does answer must keep the contract, and nothing may stop the server.
      const a = await rawBytes(gw.port, Buffer.from(input.text, 'utf8'), 100);
      const p = a.status ? problemOf(ERRORS, { method: 'GET', target: '/', headers: [] }, a, count) : null;
      if (p) throw new Error(`${p}\n  request: ${JSON.stringify(input.text)}`);
    }, 300);
  });

  await t.test('WebSocket upgrades and frames', async (t) => {
    const upgrade = fc.record({
      kind: fc.constant('upgrade' as const),
      room: roomSeg,
      q: query(['vid'], vid),
      headers: shopper,
      key: fc.oneof(fc.constant('dGhlIHNhbXBsZSBub25jZQ=='), headerJunk),
      version: fc.constantFrom('13', '8', '', 'x'),
    });
    const frame = fc.oneof(
      { arbitrary: junk.map((s) => ({ text: s })), weight: 3 },
      { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ binary: Buffer.from(b) })), weight: 2 },
      { arbitrary: fc.constantFrom('{"type":"admitted","token":"x"}', '{"type":"position","position":-1}', 'null', '[]', '{"__proto__":{}}').map((s) => ({ text: s })), weight: 1 },
      { arbitrary: fc.constantFrom(1024, 1025, 64 * 1024).map((n) => ({ binary: Buffer.alloc(n, 0xff) })), weight: 1 },
    );
    const frames = fc.record({
      kind: fc.constant('frames' as const),
      room: fc.constantFrom('r', 'pre', 'held'),
      via: fc.constantFrom('cookie', 'header', 'query', 'none'),
      who: vid,
      frames: fc.oneof(fc.array(frame, { maxLength: 8 }), frame.chain((f) => fc.integer({ min: 20, max: 200 }).map((n) => Array.from({ length: n }, () => f)))),
    });
    const TYPES = ['position', 'admitted', 'state'];
    const sockets: Record<string, number> = {};
    const note = (what: string) => { sockets[what] = (sockets[what] ?? 0) + 1; };
    await run(t, 'ws', fc.oneof({ arbitrary: upgrade, weight: 2 }, { arbitrary: frames, weight: 3 }), 250, async (input) => {
      if (input.kind === 'upgrade') {
        const headers: [string, string][] = [...input.headers, ['upgrade', 'websocket'], ['connection', 'Upgrade'], ['sec-websocket-key', input.key], ['sec-websocket-version', input.version]];
        const a = await check({ method: 'GET', target: `/api/rooms/${input.room}/ws${input.q}`, headers });
        if (a.status === 101 && !rooms.slice(0, -1).some((r) => input.room === r || input.room === pct(r))) throw new Error(`upgraded for room ${input.room}`);
        return;
      }
      const { room, via, who } = input;
      const url = `${gw.url.replace('http', 'ws')}/api/rooms/${room}/ws${via === 'query' ? `?vid=${pct(who)}` : ''}`;
      const headers = via === 'cookie' ? { cookie: `wr_vid=${who}` } : via === 'header' ? { 'x-visitor-id': who } : {};
      const problem = await new Promise<string | null>((resolve) => {
        let ws: WebSocket;
        try {
          ws = new WebSocket(url, { headers, maxPayload: 1 << 20 });
        } catch {
          resolve(null); // a header the client itself refuses to send
          return;
        }
        const timer = setTimeout(() => { ws.terminate(); resolve('the upgrade was not answered in 5 s'); }, 5000);
        let finished = false;
        const done = (p: string | null) => { finished = true; clearTimeout(timer); ws.terminate(); resolve(p); };
        ws.on('unexpected-response', (_req, res) => note(`refused ${res.statusCode}`));
        ws.on('unexpected-response', (_req, res) => done(res.statusCode && res.statusCode < 500 ? null : `upgrade answered ${res.statusCode}`));
        ws.on('error', (err) => { if (!finished) note(`error ${err.message.slice(0, 40)}`); done(null); }); // e.g. closed by the server mid-frame
        ws.on('message', (data, isBinary) => {
          let m: { type?: unknown } | undefined;
          try { m = JSON.parse(String(data)) as { type?: unknown }; } catch { m = undefined; }
          if (isBinary || !m || !TYPES.includes(String(m.type))) done(`the server sent ${String(data).slice(0, 100)}`);
        });
        ws.on('close', (code) => { if (!finished) note(`closed by the server ${code}`); done(null); }); // an oversized frame closes this socket only
        ws.on('open', () => {
          for (const f of input.frames) if (ws.readyState === WebSocket.OPEN) ws.send('text' in f ? f.text : f.binary, { binary: 'binary' in f });
          // A ping round trip: the server read every frame and still serves this socket (or closed it).
          ws.ping();
          ws.once('pong', () => { note('open after its frames'); done(null); });
        });
      });
      if (problem) throw new Error(`${problem}\n  input: ${JSON.stringify({ room, via, who, frames: input.frames.length })}`);
    });
    t.comment(`gateway ws sockets: ${JSON.stringify(sockets)}`);
  });

  t.same(await snapshot(), before, 'every known visitor keeps its place');
  const tried = Object.values(families).reduce((a, b) => a + b, 0);
  t.comment(`gateway: ${tried} inputs in all (${Object.entries(families).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  t.comment(`gateway answers by status: ${JSON.stringify(count.statuses)}; ${count.dropped} malformed requests dropped unanswered; ${count.unavailable} 503 unavailable`);
});
