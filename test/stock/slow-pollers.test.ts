/**
 * Issue 13 follow-up: a visitor who follows its place by polling GET /me (no WebSocket) every few
 * seconds is there, and keeps its admission (docs/api.md section 7, delivery grace). 36 pollers
 * for 12 units, overbook 1, claimSeconds 10 (a delivery window of 1 s), over two gateway
 * processes admitting at once; each poller asks GET /me every 4-5 s (one gateway or the other),
 * and once told `admitted` takes its token (POST /claim) and reserves at once. The stock cap holds
 * 24 back the whole time, so any admission undelivered for 1 s used to be withdrawn: the pollers
 * were admitted, withdrawn before their next poll, told "next in line", admitted again... and
 * those whose units went to others meanwhile never got a token. Now a visitor seen within
 * POLL_GRACE_MS keeps its window: no poller's admission is withdrawn, every poller the room
 * admitted gets its token on its first claim, and the 12 units go to 12 of them.
 */
import t from 'tap';
import { createRedis } from '../../shared/redis.js';
import { roomKeys } from '../../shared/keys.js';
import { call, until, usersWithSessions } from '../checkout/helpers.js';
import { putSale, putShopRoom, shop, sleep } from './helpers.js';

const POLLERS = 36;
const UNITS = 12;

interface Poller { vid: string; ticket: number; gw: string; admittedSeen: number; claims: number; notYet: number; token: string | null; reserved: boolean; refused: string | null }

t.test('slow pollers keep their admissions: none withdrawn, every admitted poller gets its token', async (t) => {
  const s = await shop(t, 'pollers');
  const room = 'sp13';
  await putSale(s, room, { total: UNITS });
  await putShopRoom(s, room, { admitRatePerMin: 600, maxActive: 1000, overbook: 1, claimSeconds: 10 });
  const users = await usersWithSessions({ url: s.checkout.url, config: s.config }, POLLERS, room);
  await until(async () => (await call(s.gateways[0]!, 'GET', `/api/rooms/${room}`)).body.unitsLeft === UNITS, 5000, 'the stock signal');

  const deadline = Date.now() + 60_000;
  // Every unit reserved (held: reservations not paid yet): those still waiting stop.
  let reservedSoFar = 0;
  const poll = async (p: Poller, user: { token: string }) => {
    const headers = { 'x-visitor-id': p.vid };
    // A page's first poll comes a few seconds after its join, then every 4-5 s.
    await sleep(1000 + Math.random() * 3000);
    while (Date.now() < deadline && reservedSoFar < UNITS) {
      const me = await call(p.gw, 'GET', `/api/rooms/${room}/me`, { headers });
      if (me.status === 200 && me.body.admitted) {
        p.admittedSeen++;
        const c = await call(p.gw, 'POST', `/api/rooms/${room}/claim`, { body: {}, headers });
        p.claims++;
        if (c.status === 200) {
          p.token = c.body.token;
          const r = await call(s.checkout.url, 'POST', `/api/sales/${room}/reservations`, { token: user.token, headers: { 'x-admission-token': p.token! } });
          if (r.status === 201) { p.reserved = true; reservedSoFar++; }
          else p.refused = String(r.body?.error ?? r.status);
          return;
        }
        p.notYet++;
      } else if (me.status === 200 && (me.body.state === 'sold_out' || me.body.state === 'closed')) {
        return;
      }
      await sleep(4000 + Math.random() * 1000);
    }
  };
  // Each poller joins (one gateway or the other, in turn) and starts polling at once.
  const pollers: Poller[] = [];
  const running: Promise<void>[] = [];
  for (let i = 0; i < POLLERS; i++) {
    const gw = s.gateways[i % 2]!;
    const j = await call(gw, 'POST', `/api/rooms/${room}/join`, { body: {}, headers: { 'x-forwarded-for': `10.13.${i}.1` } });
    t.equal(j.status, 200, `poller ${i} joined`);
    const p: Poller = { vid: j.body.visitorId, ticket: Number(j.body.ticket), gw, admittedSeen: 0, claims: 0, notYet: 0, token: null, reserved: false, refused: null };
    pollers.push(p);
    running.push(poll(p, users[i]!));
  }
  await Promise.all(running);

  const redis = createRedis(s.config.redisUrl);
  t.teardown(() => redis.disconnect());
  const k = roomKeys(s.config.redisPrefix, room);
  const [readmitted, stillWithdrawn] = await Promise.all([redis.hget(k.stats, 'readmitted'), redis.zcard(k.claimsWithdrawn)]);
  const withdrawn = Number(readmitted ?? 0) + stillWithdrawn;
  const admitted = Number((await call(s.gateways[0]!, 'GET', `/api/rooms/${room}`)).body.admittedThrough);
  const told = pollers.filter((p) => p.admittedSeen > 0);
  const tokens = pollers.filter((p) => p.token);
  const reserved = pollers.filter((p) => p.reserved).length;
  const neverToken = pollers.filter((p) => p.ticket <= admitted && !p.token).length;
  const summary = `admitted ${admitted} (of them never a token: ${neverToken}), withdrawn ${withdrawn} (${readmitted ?? 0} admitted again), told admitted ${told.length}, ` +
    `with a token ${tokens.length}, told admitted but no token ${told.length - tokens.length}, claims refused not_yet ${pollers.reduce((n, p) => n + p.notYet, 0)}, ` +
    `reserved ${reserved}, refused at checkout ${pollers.filter((p) => p.refused).length}`;
  t.comment(summary);
  t.equal(withdrawn, 0, `no poller's admission withdrawn (${summary})`);
  t.equal(told.length - tokens.length, 0, 'every poller told it is admitted gets its token on claiming');
  t.equal(pollers.reduce((n, p) => n + p.notYet, 0), 0, 'no claim after an admitted answer is refused not_yet');
  t.equal(neverToken, admitted - UNITS, 'every poller the room admitted got a token, but those admitted after the sell-out');
  t.equal(reserved, UNITS, 'the units go to pollers');
  t.same(pollers.filter((p) => p.refused).map((p) => p.refused), [], 'no admitted poller meets sold_out');
});
