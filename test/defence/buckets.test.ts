/**
 * Token buckets per IP, per subnet and the lists, through the gateway over real sockets,
 * from source addresses across 127.0.0.0/8. The gateway's clock is injected: a burst happens
 * at one instant, and refill is exactly what the clock says.
 */
import t from 'tap';
import { fixture, openRoom, request, tally, within, type Answer } from './fixture.js';

const times = <T>(n: number, f: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));

function tickets(answers: Answer[]): number[] {
  return answers.filter((a) => a.status === 200).map((a) => a.body.ticket as number).sort((a, b) => a - b);
}

t.test('one IP sending 500 joins in a second: exactly the IP bucket allowance joins, the rest 429', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  const start = f.clock.now;
  const put = await gw.put('burst', openRoom(start, {
    limits: { ip: { capacity: 20, refillPerSec: 4 } }, captcha: { mode: 'off', threshold: 50 },
  }));
  t.equal(put.status, 201, JSON.stringify(put.body));
  const all: Answer[] = [];
  // five bursts of 100 over 800 ms: refill 4/s adds 3.2 tokens, so 20 + 3 join
  for (let step = 0; step < 5; step++) {
    f.clock.now = start + step * 200;
    all.push(...(await times(100, () => gw.join('burst', { from: '127.0.3.1' }))));
  }
  t.same(tally(all), { joined: 23, rate_limited: 477 });
  t.same(tickets(all), Array.from({ length: 23 }, (_, i) => i + 1), 'tickets 1..23, one per joined visitor');
  for (const a of all.filter((x) => x.status === 429)) {
    if (a.headers['retry-after'] !== '1' || a.body.retryAfterSeconds !== 1) {
      t.fail(`bad Retry-After: ${a.headers['retry-after']} / ${JSON.stringify(a.body)}`);
      break;
    }
  }
  t.equal(all.filter((a) => a.status === 429 && a.headers['retry-after'] === '1').length, 477, 'every 429 says Retry-After: 1');
});

t.test('Retry-After is the wait until the bucket holds a token again', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  const start = f.clock.now;
  await gw.put('slow', openRoom(start, { limits: { ip: { capacity: 5, refillPerSec: 0.2 } }, captcha: { mode: 'off', threshold: 50 } }));
  const burst = await times(50, () => gw.join('slow', { from: '127.0.4.1' }));
  t.same(tally(burst), { joined: 5, rate_limited: 45 });
  const limited = burst.find((a) => a.status === 429)!;
  t.equal(limited.headers['retry-after'], '5');
  t.same(limited.body, { error: 'rate_limited', message: limited.body.message, retryAfterSeconds: 5 });
  f.clock.now = start + 4_000;
  const early = await gw.join('slow', { from: '127.0.4.1' });
  t.equal(early.status, 429, 'one second early is still limited');
  t.equal(early.headers['retry-after'], '1');
  f.clock.now = start + 5_000;
  t.equal((await gw.join('slow', { from: '127.0.4.1' })).status, 200, 'after Retry-After the join passes');
  t.equal((await gw.join('slow', { from: '127.0.4.2' })).status, 200, 'another IP was never limited');
});

t.test('300 visitors from 300 different subnets at the same time: none limited or challenged', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  await gw.put('wide', openRoom(f.clock.now)); // default limits and CAPTCHA (suspicious, threshold 50)
  const all = await times(300, (i) => gw.join('wide', { from: `127.${20 + Math.floor(i / 250)}.${i % 250}.1` }));
  t.same(tally(all), { joined: 300 });
  t.same(tickets(all), Array.from({ length: 300 }, (_, i) => i + 1));
});

t.test('200 IPs in one /24: the subnet bucket bites; allow list passes; block list gets 403', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  const room = openRoom(f.clock.now, { limits: { subnet: { capacity: 50, refillPerSec: 1 } } });
  await gw.put('nat', room);
  const all = await times(200, (i) => gw.join('nat', { from: `127.0.5.${i + 1}` }));
  t.same(tally(all), { joined: 50, rate_limited: 150 }, 'default CAPTCHA mode: none challenged, the subnet limits');
  t.equal(all.find((a) => a.status === 429)!.headers['retry-after'], '1');

  t.equal((await gw.put('nat', { allow: ['127.0.5.0/28'], block: ['127.0.6.0/24', '127.0.5.9/32'] })).status, 200);
  let blockedAnswers = 0;
  const applied = await within(3000, async () => {
    const a = await gw.join('nat', { from: '127.0.6.7' });
    if (a.status === 403) blockedAnswers++;
    return a.status === 403;
  });
  t.ok(applied >= 0, 'the lists apply');
  const blocked = await gw.join('nat', { from: '127.0.6.200' });
  t.equal(blocked.status, 403);
  t.equal(blocked.body.error, 'blocked');
  t.equal(blocked.body.reason, 'block_list');
  // the allow list skips every bucket: 30 joins from one allowed IP in a full subnet all pass
  const allowed = await times(30, () => gw.join('nat', { from: '127.0.5.3' }));
  t.same(tally(allowed), { joined: 30 });
  t.equal((await gw.join('nat', { from: '127.0.5.9' })).body.error, 'blocked', 'a longer block prefix beats the allow /28');
  t.equal((await gw.join('nat', { from: '127.0.5.100' })).status, 429, 'outside the allow list the subnet still limits');
  t.equal((await gw.join('nat', { from: '127.0.7.7' })).status, 200, 'another subnet is untouched');
  blockedAnswers += 2;
  const counted = await within(2000, async () => {
    const s = await request(gw.url, 'GET', '/admin/rooms/nat/stats', { headers: { authorization: 'Bearer test-admin' } });
    return s.body.blocked === blockedAnswers && s.body.rateLimited === 151;
  });
  t.ok(counted >= 0, `stats count ${blockedAnswers} blocked and 151 rate limited`);
});

t.test('x-forwarded-for: ignored from an untrusted peer, used through a trusted proxy', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  await gw.put('xff', openRoom(f.clock.now, { limits: { ip: { capacity: 3, refillPerSec: 0.001 } }, captcha: { mode: 'off', threshold: 50 } }));
  const xff = (ip: string) => ({ 'x-forwarded-for': ip, 'user-agent': 'Mozilla/5.0', accept: '*/*', 'accept-language': 'en' });

  const spoofed = [];
  for (let i = 0; i < 6; i++) spoofed.push(await gw.join('xff', { from: '127.0.8.1', headers: xff(`198.51.100.${i + 1}`) }));
  t.same(tally(spoofed), { joined: 3, rate_limited: 3 }, 'a different forwarded address per join changes nothing');

  t.equal((await gw.put('xff', { trustedProxies: ['127.0.0.1/32'], block: ['192.0.2.1/32'] })).status, 200);
  const applied = await within(3000, async () =>
    (await gw.join('xff', { from: '127.0.0.1', headers: xff('192.0.2.1') })).body.error === 'blocked');
  t.ok(applied >= 0, 'the forwarded address is judged once the proxy is trusted');

  const same = await times(5, () => gw.join('xff', { from: '127.0.0.1', headers: xff('198.51.100.77') }));
  t.same(tally(same), { joined: 3, rate_limited: 2 }, 'the bucket counts the forwarded IP');
  const distinct = await times(5, (i) => gw.join('xff', { from: '127.0.0.1', headers: xff(`198.51.100.${100 + i}`) }));
  t.same(tally(distinct), { joined: 5 }, 'not the proxy: five clients behind it each have their own bucket');
  const chain = await gw.join('xff', { from: '127.0.0.1', headers: xff('6.6.6.6, 198.51.100.77') });
  t.equal(chain.status, 429, 'a spoofed left part is skipped: the rightmost untrusted hop counts');
  const still = await gw.join('xff', { from: '127.0.8.1', headers: xff('198.51.100.200') });
  t.equal(still.status, 429, 'an untrusted peer is still counted by its own address');
});

t.test('IPv6 behind a trusted proxy: one /64 shares a subnet bucket however it is spelled', async (t) => {
  const f = fixture(t);
  const gw = await f.start();
  await gw.put('six', openRoom(f.clock.now, {
    trustedProxies: ['127.0.0.1/32'],
    limits: { ip: { capacity: 2, refillPerSec: 0.001 }, subnet: { capacity: 5, refillPerSec: 0.001 } },
    captcha: { mode: 'off', threshold: 50 },
  }));
  const via = (ip: string) => gw.join('six', { from: '127.0.0.1', headers: { 'x-forwarded-for': ip, 'user-agent': 'Mozilla/5.0', accept: '*/*', 'accept-language': 'en' } });
  // one address in three spellings is one IP: its bucket of 2 bites on the third
  const spellings = ['2001:db8:0:1::7', '2001:0DB8:0000:0001:0000:0000:0000:0007', '[2001:db8:0:1:0:0:0:7]:4711'];
  const same = [];
  for (const s of spellings) same.push(await via(s));
  t.same(tally(same), { joined: 2, rate_limited: 1 });
  // three more addresses of the same /64 fill its bucket of 5; a sixth is limited; the next /64 is not
  const more = [];
  for (const s of ['2001:db8:0:1::8', '2001:db8:0:1:ffff::9', '2001:db8:0:1:1::a', '2001:db8:0:1::b']) more.push(await via(s));
  t.same(tally(more), { joined: 3, rate_limited: 1 });
  t.equal((await via('2001:db8:0:2::1')).status, 200);
  t.equal((await via('::ffff:198.51.100.1')).status, 200, 'an IPv4-mapped address counts as IPv4');
});
