import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../shared/config.js';
import { createRecorder, classifyUserAgent, hashWith, type Arrival } from '../../waiting-room/recorder.js';
import { parseRecording } from '../../load-tests/replay/ndjson.js';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'rec-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return loadConfig({ DATA_DIR: dir, VISITOR_SECRET: 'test-secret' });
}

const base = 1_700_000_000_000;
function arrival(i: number, over: Partial<Arrival> = {}): Arrival {
  return {
    room: 'r1', at: base + i * 10, ip: `10.0.${i % 3}.${i}`, subnet: `10.0.${i % 3}.0/24`, visitorId: `v${i}`,
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', outcome: 'joined', ticket: i + 1, ...over,
  };
}

t.test('writes a header and one hashed line per attempt, offsets from the first arrival and opensAt', async (t) => {
  const config = await setup(t);
  const rec = createRecorder(config);
  for (let i = 0; i < 5; i++) rec.record(arrival(i, { opensAt: new Date(base + 25).toISOString() }));
  rec.record(arrival(5, { outcome: 'rate_limited', ticket: null, userAgent: 'curl/8.4.0' }));
  await rec.close();
  const text = await readFile(path.join(config.dataDir, 'recordings', 'r1.ndjson'), 'utf8');
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines[0], { type: 'recording', v: 1, room: 'r1', t0: base });
  t.equal(lines.length, 7);
  t.same(lines.slice(1).map((l) => l.t), [0, 10, 20, 30, 40, 50]);
  t.equal(lines[1].open, 25);
  t.equal(lines[6].open, undefined);
  t.equal(lines[6].outcome, 'rate_limited');
  t.equal(lines[6].ua, 'curl');
  t.equal(lines[6].ticket, null);
  t.notOk(text.includes('10.0.'), 'no raw IP or subnet in the file');
  t.notOk(text.includes('"v1"'), 'no raw visitor id in the file');
  t.equal(lines[1].ip, hashWith('test-secret', 'ip', '10.0.0.0'));
  // Same subnet, different IPs: same subnet hash, different IP hashes.
  t.equal(lines[1].subnet, lines[4].subnet);
  t.not(lines[1].ip, lines[4].ip);
  t.not(lines[1].subnet, lines[2].subnet);
});

t.test('a refusal recorded without a subnet gets the /24 of its IP', async (t) => {
  const config = await setup(t);
  const rec = createRecorder(config);
  rec.record(arrival(2, { subnet: '', outcome: 'blocked', ticket: null }));
  rec.record(arrival(5));
  await rec.close();
  const lines = parseRecording((await rec.read('r1'))!).arrivals;
  t.equal(lines[0]!.subnet, hashWith('test-secret', 'subnet', '10.0.2.0/24'));
  t.equal(lines[0]!.subnet, lines[1]!.subnet);
});

t.test('read flushes pending lines; a second recorder keeps the first t0; unknown room is null', async (t) => {
  const config = await setup(t);
  const a = createRecorder(config);
  t.equal(await a.read('r1'), null);
  a.record(arrival(0));
  a.record(arrival(1));
  const text = await a.read('r1');
  t.equal(text!.trim().split('\n').length, 3);
  await a.close();
  const b = createRecorder(config);
  b.record(arrival(100));
  const rec = parseRecording((await b.read('r1'))!);
  await b.close();
  t.equal(rec.header!.t0, base);
  t.same(rec.arrivals.map((x) => x.t), [0, 10, 1000]);
});

t.test('two processes recording one room at once share the first t0', async (t) => {
  const config = await setup(t);
  const a = createRecorder(config);
  const b = createRecorder(config);
  a.record(arrival(1));
  b.record(arrival(2));
  await Promise.all([a.close(), b.close()]);
  const text = await readFile(path.join(config.dataDir, 'recordings', 'r1.ndjson'), 'utf8');
  const parsed = parseRecording(text);
  t.equal(text.split('\n').filter((l) => l.includes('"type":"recording"')).length, 1, 'one header');
  t.ok(parsed.header!.t0 === base + 10 || parsed.header!.t0 === base + 20);
  t.same(parsed.arrivals.map((x) => x.t + parsed.header!.t0), [base + 10, base + 20], 'both on the same axis');
});

t.test('record never blocks: 20,000 attempts are all written once, in order', async (t) => {
  const config = await setup(t);
  const rec = createRecorder(config);
  for (let i = 0; i < 20_000; i++) rec.record(arrival(i));
  await rec.close();
  const parsed = parseRecording((await readFile(path.join(config.dataDir, 'recordings', 'r1.ndjson'), 'utf8')));
  t.equal(parsed.arrivals.length, 20_000);
  t.same(parsed.arrivals.slice(0, 3).map((a) => a.ticket), [1, 2, 3]);
  t.equal(parsed.arrivals[19_999]!.ticket, 20_000);
});

t.test('user-agent classes', async (t) => {
  t.equal(classifyUserAgent(''), 'empty');
  t.equal(classifyUserAgent('curl/8.4.0'), 'curl');
  t.equal(classifyUserAgent('python-requests/2.31'), 'curl');
  t.equal(classifyUserAgent('Mozilla/5.0 (compatible; Googlebot/2.1)'), 'bot');
  t.equal(classifyUserAgent('Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120'), 'bot');
  t.equal(classifyUserAgent('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148'), 'mobile');
  t.equal(classifyUserAgent('Mozilla/5.0 (Windows NT 10.0; Win64) Chrome/120 Safari/537.36'), 'browser');
  t.equal(classifyUserAgent('whatever'), 'bot');
});
