import t from 'tap';
import { kendallTau } from '../../shared/kendall.js';
import { parseRecording, inferOpen, toNdjson, RecordingError, type ReplayArrival } from '../../load-tests/replay/ndjson.js';
import { makeProfile, mulberry32, PROFILES } from '../../load-tests/replay/profiles.js';
import { AddressMap, subnet24 } from '../../load-tests/replay/addresses.js';
import { fairness, percentiles } from '../../load-tests/replay/report.js';

function bruteTau(x: number[], y: number[]) {
  let c = 0, d = 0, tx = 0, ty = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const a = Math.sign(x[i]! - x[j]!), b = Math.sign(y[i]! - y[j]!);
    if (a === 0 && b === 0) continue;
    if (a === 0) tx++;
    else if (b === 0) ty++;
    else if (a === b) c++;
    else d++;
  }
  const tau = (c - d) / Math.sqrt((c + d + tx) * (c + d + ty));
  return { c, d, tau };
}

t.test('Kendall tau-b matches the O(n^2) definition on random data, with and without ties', async (t) => {
  const rnd = mulberry32(42);
  for (let round = 0; round < 60; round++) {
    const n = 2 + Math.floor(rnd() * 300);
    const range = round % 3 === 0 ? 5 : round % 3 === 1 ? 50 : 1e6; // many ties, some, none
    const x = Array.from({ length: n }, () => Math.floor(rnd() * range));
    const y = Array.from({ length: n }, () => Math.floor(rnd() * range));
    const fast = kendallTau(x, y);
    const slow = bruteTau(x, y);
    if (Number.isNaN(slow.tau)) {
      t.equal(fast.tau, null, `round ${round}: constant side gives null`);
      continue;
    }
    t.equal(fast.discordant, slow.d, `round ${round}: discordant pairs`);
    t.equal(fast.concordant, slow.c, `round ${round}: concordant pairs`);
    t.ok(Math.abs(fast.tau! - slow.tau) < 1e-12, `round ${round}: tau ${fast.tau} vs ${slow.tau}`);
  }
  t.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]).tau, 1);
  t.equal(kendallTau([1, 2, 3, 4], [40, 30, 20, 10]).tau, -1);
  t.equal(kendallTau([1], [1]).tau, null);
  t.throws(() => kendallTau([1, 2], [1]), RangeError);
});

t.test('Kendall tau handles 200,000 pairs (n log n)', async (t) => {
  const n = 200_000;
  const x = Array.from({ length: n }, (_, i) => i);
  const y = x.map((i) => (i % 1000 === 0 ? i + 1.5 : i)); // 200 adjacent swaps
  const k = kendallTau(x, y);
  t.equal(k.discordant, 200);
  t.ok(k.tau! > 0.99999 && k.tau! < 1);
});

t.test('fairness counts out-of-order admissions and skipped earlier arrivals', async (t) => {
  // Arrivals at 1..5; admitted tickets: 1, 3, 2, never, 4.
  const f = fairness([1, 2, 3, 4, 5], [1, 3, 2, null, 4]);
  t.equal(f.n, 4);
  t.equal(f.discordant, 1);
  t.equal(f.skipped, 1);
  t.equal(f.overtakes, 2);
  t.equal(f.tau, Math.round(((5 - 1) / 6) * 10000) / 10000);
  const perfect = fairness([3, 1, 2], [3, 1, 2]);
  t.same(perfect, { n: 3, tau: 1, discordant: 0, skipped: 0, overtakes: 0 });
});

t.test('percentiles: nearest rank', async (t) => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  t.same(percentiles(v), { n: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  t.same(percentiles([]), { n: 0, p50: null, p95: null, p99: null, max: null });
});

const line = (o: Partial<ReplayArrival>) => JSON.stringify({ t: 0, ip: 'i', subnet: 's', visitor: 'v', ua: 'browser', outcome: 'joined', ticket: null, ...o });

t.test('NDJSON: header, blank lines, sorting, errors with line numbers', async (t) => {
  const text = [
    JSON.stringify({ type: 'recording', v: 1, room: 'r', t0: 5 }),
    line({ t: 20, ticket: 2 }),
    '',
    line({ t: 10, ticket: 1, open: 8 }),
    line({ t: 5, ua: 'empty', outcome: 'rate_limited' }),
  ].join('\n');
  const r = parseRecording(text);
  t.same(r.header, { type: 'recording', v: 1, room: 'r', t0: 5 });
  t.same(r.arrivals.map((a) => a.t), [5, 10, 20]);
  t.equal(r.open, 8);
  t.same(parseRecording(toNdjson(r.arrivals)).arrivals, r.arrivals, 'round trip');
  t.throws(() => parseRecording('{"t":1}\nnot json'), RecordingError);
  t.throws(() => parseRecording(line({ t: 1 }) + '\n' + line({ ua: 'fax' as never })), /line 2: "ua"/);
  t.throws(() => parseRecording(line({ ticket: 1.5 })), /line 1: "ticket"/);
  t.throws(() => parseRecording('[1]'), /line 1: not an object/);
});

t.test('open is inferred from pre-queue joins and the first ticket when lines lack it', async (t) => {
  const arr = (xs: [number, string, number | null][]) => xs.map(([tt, outcome, ticket]) => JSON.parse(line({ t: tt, outcome, ticket })));
  t.equal(inferOpen(arr([[0, 'joined', null], [100, 'joined', null], [300, 'joined', 1]])), 200);
  t.equal(inferOpen(arr([[50, 'joined', 1], [60, 'joined', 2]])), 50);
  t.equal(inferOpen(arr([[0, 'joined', null], [10, 'rate_limited', null]])), 1);
});

t.test('profiles: sizes, labels, deterministic by seed, pre-queue share', async (t) => {
  for (const name of PROFILES) {
    const p = makeProfile(name, 1000, 7);
    const humans = new Set(p.arrivals.filter((a) => !a.bot).map((a) => a.visitor));
    t.equal(humans.size, name === 'bots30' ? 700 : 1000, `${name}: humans`);
    t.same(makeProfile(name, 1000, 7).arrivals, p.arrivals, `${name}: same seed, same arrivals`);
    t.equal(p.arrivals[0]!.t, 0, `${name}: offsets start at 0`);
    t.ok(p.arrivals.every((a, i) => i === 0 || a.t >= p.arrivals[i - 1]!.t), `${name}: sorted`);
  }
  const pre = makeProfile('prequeue', 2000, 3);
  const before = new Set(pre.arrivals.filter((a) => a.t < pre.open).map((a) => a.visitor)).size;
  t.ok(before > 1200 && before < 1600, `about 70% in the pre-queue (${before})`);
  const b = makeProfile('bots30', 1000, 1);
  const bots = b.arrivals.filter((a) => a.bot);
  const hammerIps = new Set(bots.filter((a) => a.ip.startsWith('bh')).map((a) => a.ip)).size;
  t.equal(new Set(bots.filter((a) => !a.noCookie).map((a) => a.visitor)).size + bots.filter((a) => a.noCookie && !a.ip.startsWith('bh')).length + hammerIps, 300);
  const hammer = bots.filter((a) => a.ip === 'bh0');
  t.equal(hammer.length, 40, 'a hammering IP sends 40 attempts');
  t.ok(hammer.every((a) => a.noCookie), 'without a cookie');
  t.equal(new Set(bots.filter((a) => a.subnet === 'bfs0').map((a) => a.ip)).size, 148, 'one /24 with many IPs');
  t.ok(bots.some((a) => a.noCookie), 'cookie-less clients');
  t.not(makeProfile('spike', 100, 1).arrivals[5]!.t, makeProfile('spike', 100, 2).arrivals[5]!.t);
});

t.test('addresses: stable per IP, same /24 per subnet, distinct /24s, all in 127/8', async (t) => {
  const m = new AddressMap();
  const a1 = m.addressOf('ipA', 'net1');
  const a2 = m.addressOf('ipB', 'net1');
  const b1 = m.addressOf('ipC', 'net2');
  t.equal(m.addressOf('ipA', 'net1'), a1, 'same IP, same address');
  t.not(a1, a2);
  t.equal(subnet24(a1), subnet24(a2), 'same subnet, same /24');
  t.not(subnet24(a1), subnet24(b1), 'other subnet, other /24');
  t.equal(a1, '127.1.0.1');
  for (let i = 0; i < 600; i++) m.addressOf(`n${i}`, `net-${i}`);
  const last = m.addressOf('x', 'net-599');
  t.equal(last, '127.3.89.2', 'the 602nd subnet is 127.3.89.0/24, its 2nd host .2');
  const seen = new Set<string>();
  for (let i = 0; i < 300; i++) seen.add(m.addressOf(`h${i}`, 'big'));
  t.equal(seen.size, 254, 'a /24 holds 254 hosts; more IPs share them');
  t.ok([...seen].every((s) => /^127\.(\d+)\.(\d+)\.(\d+)$/.test(s) && Number(s.split('.')[3]) >= 1 && Number(s.split('.')[3]) <= 254));
});
