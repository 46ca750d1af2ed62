/**
 * Every script touches only the keys it declares in KEYS, and all of one room's keys share the
 * room's hash tag: what Redis Cluster requires of a script. Each script runs through the typed
 * layer (waiting-room/scripts.ts) against a redis-server of this test's own, under MONITOR; every
 * command a script ran is asked for its keys (COMMAND GETKEYS) and each must be one of the call's
 * KEYS. The calls go down every path that touches a key (pre-queue, open, buckets, the suspicion
 * score, a rate limit, admission of pre-queue and post-open tickets, lookups, config, signing keys),
 * and their typed results are checked on the way.
 */
import t from 'tap';
import { roomKeys, roomPrefix, saleStockKey, signingKeysKey } from '../../shared/keys.js';
import { scanKeys } from '../../shared/redis.js';
import { defaultRoomConfig } from '../../waiting-room/room-config.js';
import { scripts, type ScriptName } from '../../shared/scripts.js';
import { createStockSignal } from '../../checkout/stock-signal.js';
import {
  admitBatch, Gate, joinBatch, lookupVisitor, putSigningKey, SaveConfigReply, saveRoomConfig, SigningKeyMode,
  type JoinBatchEntry,
} from '../../waiting-room/scripts.js';
import { deliverTokens } from '../../waiting-room/admitter.js';
import { hashTag, privateRedis, trace, type ScriptRun } from './private-redis.js';

const prefix = 't-keys';
const room = 'drop-1';
const opensAt = Date.parse('2030-01-01T12:00:00.000Z');
const limits = { ip: { capacity: 2, refillPerSec: 0.001 }, subnet: { capacity: 100, refillPerSec: 1 }, room: { capacity: 1000, refillPerSec: 100 } };

/** A pre-queue member (draw key .. vid); this test's keys are all zero, so the draw orders by vid. */
const member = (vid: string) => `${'0'.repeat(64)}${vid}`;
const entry = (vid: string, ip: string, over: Partial<JoinBatchEntry> = {}): JoinBatchEntry => ({
  vid, ip, subnet: `${ip.split('.').slice(0, 3).join('.')}.0/24`, allowListed: false, headerScore: 10, captchaPassed: false,
  preMember: member(vid), arrivedAt: opensAt, ...over,
});

t.test('each script touches only the keys in its KEYS, all in its room\'s hash tag', async (t) => {
  const server = await privateRedis(t);
  const redis = server.connect();
  const watch = await trace(server);
  const byName = new Map(Object.values(scripts()).map((s) => [s.sha, s.name]));
  const names = Object.keys(scripts()) as ScriptName[];
  const ran = new Map<ScriptName, number>();

  /** Run `fn`, then check every script call it made; answers fn's result. */
  const checked = async <T>(what: string, fn: () => Promise<T>, tag: string | null = room): Promise<T> => {
    let result: T;
    const runs: ScriptRun[] = await watch.scriptRuns(async () => { result = await fn(); });
    t.ok(runs.length > 0, `${what}: a script ran`);
    for (const run of runs) {
      // EVALSHA names its SHA; the first call on a connection is an EVAL, named by its header's first word.
      const name = run.sha ? byName.get(run.sha) : names.find((n) => run.sourceHead!.startsWith(`--[[ ${n}:`));
      t.ok(name, `${what}: the script is one of ours (${run.sha ?? run.sourceHead!.slice(0, 30)})`);
      if (name) ran.set(name, (ran.get(name) ?? 0) + 1);
      t.same(run.touched.filter((k) => !run.declared.includes(k)), [], `${what}: every key touched is declared in KEYS`);
      if (tag !== null) t.same(run.declared.filter((k) => hashTag(k) !== tag), [], `${what}: every declared key carries {${tag}}`);
    }
    return result!;
  };

  const cfg = { ...defaultRoomConfig(room, 'http://127.0.0.1:8081'), opensAt: new Date(opensAt).toISOString(), limits, version: 1 };
  t.equal(await checked('saveRoomConfig create', () => saveRoomConfig(redis, prefix, room, {
    expectedVersion: 0, config: cfg, auditEntry: { action: 'create' }, auditCap: 10, movesOpensAt: false,
  })), SaveConfigReply.saved);
  t.equal(await checked('saveRoomConfig stale version', () => saveRoomConfig(redis, prefix, room, {
    expectedVersion: 0, config: cfg, auditEntry: { action: 'update' }, auditCap: 10, movesOpensAt: false,
  })), SaveConfigReply.versionConflict);

  const base = { opensAtMs: opensAt, limits, captcha: { mode: 'suspicious' as const, threshold: 1000 } };
  const pre = await checked('joinBatch in the pre-queue', () => joinBatch(redis, prefix, room, {
    ...base, now: opensAt - 5000, gate: Gate.open,
    entries: [entry('v1', '198.51.100.1'), entry('v2', '198.51.100.2', { allowListed: true }), entry('v3', '203.0.113.3', { captchaPassed: true }), entry('v1', '198.51.100.1')],
  }));
  t.same(pre.places.map((p) => p.code), ['pre', 'pre', 'pre', 'have'], 'pre-queue places, then the same visitor again');
  t.equal(pre.opened, false);

  const limited = await checked('joinBatch past the ip bucket', () => joinBatch(redis, prefix, room, {
    ...base, now: opensAt - 4000, gate: Gate.open, entries: [entry('v4', '198.51.100.1'), entry('v5', '198.51.100.1')],
  }));
  t.same(limited.places.map((p) => p.code), ['pre', 'rate_limited'], 'the ip bucket of 2 runs out');
  t.ok(limited.places[1]!.retryAfterSeconds >= 1);

  const challenged = await checked('joinBatch with a challenge', () => joinBatch(redis, prefix, room, {
    ...base, captcha: { mode: 'always', threshold: 50 }, now: opensAt - 3000, gate: Gate.open, entries: [entry('v6', '192.0.2.6')],
  }));
  t.same(challenged.places.map((p) => p.code), ['captcha_required']);

  const refused = await checked('joinBatch while closed', () => joinBatch(redis, prefix, room, {
    ...base, now: opensAt - 2000, gate: Gate.closed, entries: [entry('v7', '192.0.2.7')],
  }));
  t.same(refused.places.map((p) => p.code), ['closed']);

  const open = await checked('joinBatch after open', () => joinBatch(redis, prefix, room, {
    ...base, now: opensAt + 1000, gate: Gate.open, entries: [entry('v8', '192.0.2.8'), entry('v9', '2001:db8::9', { subnet: '2001:db8::/64' }), entry('v2', '198.51.100.2')],
  }));
  t.equal(open.opened, true, 'the first call after opensAt opens the room');
  t.same(open.places.map((p) => [p.code, p.ticket]), [['new', 5], ['new', 6], ['have', open.places[2]!.ticket]], 'tickets after the 4 drawn');
  t.ok(open.places[2]!.ticket >= 1 && open.places[2]!.ticket <= 4, 'a pre-queue visitor holds its drawn ticket');

  const first = await checked('admitBatch, first call (starts the credit)', () => admitBatch(redis, prefix, room, {
    now: opensAt + 59_000, opensAtMs: opensAt, admitRatePerMin: 600, maxActive: 100, tokenTtlMs: 600_000, most: 250, gate: Gate.open, fairnessSampleCap: 100,
  }));
  t.same([first.admitted, first.waiting], [[], 6], 'no credit yet; 6 waiting');
  const admitted = await checked('admitBatch', () => admitBatch(redis, prefix, room, {
    now: opensAt + 60_000, opensAtMs: opensAt, admitRatePerMin: 600, maxActive: 100, tokenTtlMs: 600_000, most: 250, gate: Gate.open, fairnessSampleCap: 100,
  }));
  t.same(admitted.admitted.map((a) => a.ticket), [1, 2, 3, 4, 5, 6], 'pre-queue and post-open tickets admitted in order');
  t.same(admitted.admitted.slice(4).map((a) => a.vid), ['v8', 'v9']);
  t.same([admitted.at, admitted.waiting, admitted.active], [6, 0, 6]);
  const paused = await checked('admitBatch while paused', () => admitBatch(redis, prefix, room, {
    now: opensAt + 61_000, opensAtMs: opensAt, admitRatePerMin: 600, maxActive: 100, tokenTtlMs: 600_000, most: 250, gate: Gate.paused, fairnessSampleCap: 100,
  }));
  t.same(paused.admitted, [], 'nobody admitted at gate paused');

  await redis.hset(roomKeys(prefix, room).tok, 'v8', 'token-of-v8');
  const v8 = await checked('lookupVisitor, admitted', () => lookupVisitor(redis, prefix, room, 'v8', member('v8')));
  t.same(v8, { kind: 'ticket', ticket: 5, at: 6, next: 6, opened: true, token: 'token-of-v8' });
  t.equal((await checked('lookupVisitor, unknown', () => lookupVisitor(redis, prefix, room, 'nobody', member('nobody')))).kind, 'none');

  // Delivery (docs/api.md section 7): while the stock cap holds someone back, an admission nobody
  // received within deliverMs is withdrawn; the visitor comes back as next in line and is admitted
  // again first. Outstanding so far: the 6 admitted above (claims of 120 s).
  const later = await checked('joinBatch, three more after open', () => joinBatch(redis, prefix, room, {
    ...base, now: opensAt + 62_000, gate: Gate.open, entries: [entry('v10', '192.0.2.10'), entry('v11', '192.0.2.11'), entry('v12', '192.0.2.12')],
  }));
  t.same(later.places.map((p) => p.ticket), [7, 8, 9]);
  const admit = (now: number, available: number) => admitBatch(redis, prefix, room, {
    now, opensAtMs: opensAt, admitRatePerMin: 600, maxActive: 100, tokenTtlMs: 600_000, most: 250, gate: Gate.open, fairnessSampleCap: 100,
    available, usedCutoff: 0, overbook: 1, claimMs: 10_000, deliverMs: 1000,
  });
  const two = await checked('admitBatch with a delivery window', () => admit(opensAt + 63_000, 8));
  t.same(two.admitted.map((a) => a.vid), ['v10', 'v11'], '8 units, 6 outstanding: two admitted, v12 held back');
  const delivered = await checked('deliverTokens', () => deliverTokens(redis, prefix, room, opensAt + 63_100, [{ vid: 'v10', ticket: 7, token: 'token-of-v10' }]));
  t.same(delivered, ['token-of-v10'], 'v10 has its token: delivered');
  const withdrew = await checked('admitBatch withdrawing an undelivered admission', () => admit(opensAt + 64_100, 8));
  t.same(withdrew.admitted, [{ vid: 'v12', ticket: 9 }], 'v11 withdrawn after 1 s undelivered: its place goes to v12 at once');
  const v11 = await checked('lookupVisitor, withdrawn', () => lookupVisitor(redis, prefix, room, 'v11', member('v11'), opensAt + 64_200));
  t.same(v11, { kind: 'ticket', ticket: 8, at: 7, next: 9, opened: true, token: null }, 'v11 is next in line, not admitted');
  t.same(await checked('deliverTokens, withdrawn', () => deliverTokens(redis, prefix, room, opensAt + 64_300, [{ vid: 'v11', ticket: 8, token: 'x' }])), [null]);
  t.same((await admit(opensAt + 64_400, 8)).admitted, [], 'no place yet');
  const again = await checked('admitBatch admitting a visitor come back', () => admit(opensAt + 64_500, 9));
  t.same(again.admitted, [{ vid: 'v11', ticket: 8 }], 'a unit more: v11 admitted again, with its ticket');
  t.same((await lookupVisitor(redis, prefix, room, 'v11', member('v11'))).at, 9, 'and admitted as such');

  t.equal(await checked('saveRoomConfig moving opensAt after open', () => saveRoomConfig(redis, prefix, room, {
    expectedVersion: 1, config: { ...cfg, version: 2 }, auditEntry: { action: 'update' }, auditCap: 10, movesOpensAt: true,
  })), SaveConfigReply.opensAtLocked);

  const kid = await checked('putSigningKey init', () => putSigningKey(redis, prefix, { kid: 'k1', keyJson: '{}', mode: SigningKeyMode.init, now: opensAt }), null);
  t.equal(kid, 'k1');
  t.equal(await checked('putSigningKey init again', () => putSigningKey(redis, prefix, { kid: 'k2', keyJson: '{}', mode: SigningKeyMode.init, now: opensAt }), null), 'k1', 'a racing init keeps the first key');
  t.equal(await checked('putSigningKey rotate', () => putSigningKey(redis, prefix, { kid: 'k3', keyJson: '{}', mode: SigningKeyMode.rotate, now: opensAt }), null), 'k3');

  // checkout's script: the sale's stock signal, in the sale's own hash tag.
  const signal = createStockSignal(redis, prefix, () => opensAt, (e) => { throw e; });
  const counters = { total: 10, available: 9, reserved: 1, sold: 0 };
  t.equal(await checked('publishStock', () => signal.write('sale-1', { ...counters, version: 2 }, 'active'), 'sale-1'), 'written');
  t.equal(await checked('publishStock, an older version', () => signal.write('sale-1', { ...counters, version: 1 }, 'active'), 'sale-1'), 'older');

  t.same([...ran.keys()].sort(), Object.keys(scripts()).sort(), 'every script was exercised');

  // What the scripts left behind: every room key in the room's tag, and the one tagless key is the signing keys'.
  const left = await scanKeys(redis, `${prefix}:*`);
  t.same(left.filter((k) => hashTag(k) !== room && k !== signingKeysKey(prefix) && k !== saleStockKey(prefix, 'sale-1')), [], 'no key outside the room\'s slot but the signing keys and the sale\'s stock');
  const k = roomKeys(prefix, room);
  for (const key of [k.tbRoom, k.fairPost, k.active]) {
    t.ok(left.includes(key), `${key.slice(prefix.length + 1)} was written (the path that writes it ran)`);
  }
  // The ip and subnet buckets: fields of their generation's hash (lua/joinBatch).
  const ipGen = left.filter((key) => key.startsWith(`${roomPrefix(prefix, room)}:bi:`));
  const snGen = left.filter((key) => key.startsWith(`${roomPrefix(prefix, room)}:bs:`));
  t.ok(ipGen.length >= 1 && snGen.length >= 1, 'ip and subnet bucket generations were written');
  const ipFields = (await Promise.all(ipGen.map((key) => redis.hkeys(key)))).flat();
  const snFields = (await Promise.all(snGen.map((key) => redis.hkeys(key)))).flat();
  t.ok(ipFields.includes('198.51.100.1'), 'the ip bucket of 198.51.100.1 was written');
  t.ok(snFields.includes('198.51.100.0/24'), 'the subnet bucket of 198.51.100.0/24 was written');
});
