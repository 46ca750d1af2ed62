import t from 'tap';
import { canonicalIp, cidrList, invalidCidrs, parseAddress, parseCidr, CidrError } from '../../waiting-room/defence/cidr.js';
import { resolveClientIp, subnetOf } from '../../waiting-room/defence/ip.js';
import { headerScore, headerSignals, HEADER_WEIGHTS } from '../../waiting-room/defence/score.js';

t.test('addresses: canonical text, IPv4-mapped unwrapped, garbage refused', async (t) => {
  t.equal(canonicalIp('203.0.113.7'), '203.0.113.7');
  t.equal(canonicalIp(' 203.0.113.7 '), '203.0.113.7');
  t.equal(canonicalIp('203.0.113.7:51234'), '203.0.113.7');
  t.equal(canonicalIp('::ffff:1.2.3.4'), '1.2.3.4');
  t.equal(canonicalIp('::FFFF:102:304'), '1.2.3.4');
  t.equal(canonicalIp('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
  t.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  t.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  t.equal(canonicalIp('2001:db8::0:1'), '2001:db8::1');
  t.equal(canonicalIp('2001:db8:1:2:3:4:5:0'), '2001:db8:1:2:3:4:5:0');
  t.equal(canonicalIp('[2001:db8::1]:443'), '2001:db8::1');
  t.equal(canonicalIp('fe80::1%eth0'), 'fe80::1');
  t.equal(canonicalIp('::'), '::');
  t.equal(canonicalIp('::1'), '::1');
  for (const bad of ['', 'unknown', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4/24', '2001:db8:::1',
    '1::2::3', '12345::1', '1:2:3:4:5:6:7:8:9', 'g::1', '<script>', '1.2.3.4 5.6.7.8', '[::1', ':1:2']) {
    t.equal(parseAddress(bad), null, `refuses ${JSON.stringify(bad)}`);
  }
});

t.test('subnets: IPv4 /24, IPv6 /64 with zero compression', async (t) => {
  t.equal(subnetOf('203.0.113.77'), '203.0.113.0/24');
  t.equal(subnetOf('::ffff:203.0.113.77'), '203.0.113.0/24');
  t.equal(subnetOf('2001:db8::1'), '2001:db8::/64');
  t.equal(subnetOf('2001:db8:0:5::1'), '2001:db8:0:5::/64');
  t.equal(subnetOf('2001:db8:a:b:c:d:e:f'), '2001:db8:a:b::/64');
  t.equal(subnetOf('2001:0db8:000a:000b:ffff::'), '2001:db8:a:b::/64');
  t.equal(subnetOf('::1'), '::/64');
  // two spellings of one /64 share one bucket key
  t.equal(subnetOf('2001:db8:0:0:1::'), subnetOf('2001:DB8::1:0:0:0'));
});

t.test('CIDR lists: IPv4, IPv6, mapped, longest prefix', async (t) => {
  const list = cidrList(['10.0.0.0/8', '10.1.2.0/24', '2001:db8::/32', '::ffff:192.168.0.0/112', '198.51.100.7']);
  const m = (ip: string) => list.match(parseAddress(ip)!);
  t.equal(m('10.200.3.4'), 8);
  t.equal(m('10.1.2.99'), 24);
  t.equal(m('11.0.0.1'), -1);
  t.equal(m('2001:db8:ffff::1'), 32);
  t.equal(m('2001:db9::1'), -1);
  t.equal(m('192.168.44.1'), 16);
  t.equal(m('::ffff:192.168.44.1'), 16);
  t.equal(m('198.51.100.7'), 32);
  t.equal(m('198.51.100.8'), -1);
  // an IPv4 CIDR never matches an IPv6 address of the same bits
  t.equal(cidrList(['0.0.0.0/0']).match(parseAddress('::1')!), -1);
  t.equal(cidrList(['::/0']).match(parseAddress('1.2.3.4')!), -1);
  t.equal(cidrList(['0.0.0.0/0']).match(parseAddress('1.2.3.4')!), 0);
  // odd prefix lengths
  t.equal(cidrList(['172.16.0.0/12']).match(parseAddress('172.31.255.255')!), 12);
  t.equal(cidrList(['172.16.0.0/12']).match(parseAddress('172.32.0.0')!), -1);
  t.same(parseCidr('10.1.2.3/8').bytes, new Uint8Array([10, 0, 0, 0]), 'host bits cleared');
  t.equal(cidrList(['fe80::/10%eth0', 'fe80::1%eth0/64']).match(parseAddress('fe80::1')!), 64, 'a zone is dropped');
  t.equal(cidrList(['junk', '10.0.0.0/8']).match(parseAddress('10.1.1.1')!), 8, 'a bad entry is left out, not thrown');
  const same = ['1.2.3.0/24'];
  t.equal(cidrList(same), cidrList(same), 'compiled once per list');
});

t.test('CIDR validation names every bad entry', async (t) => {
  t.same(invalidCidrs(['10.0.0.0/8', '10.0.0.0/33', 'nope', '::/129', '2001:db8::/48', 7, '1.2.3.4:80', '[::1]']),
    ['10.0.0.0/33', 'nope', '::/129', '7', '1.2.3.4:80', '[::1]']);
  t.throws(() => parseCidr('1.2.3.4/x'), CidrError);
});

t.test('client IP: x-forwarded-for only through trusted proxies, read from the right', async (t) => {
  const none = cidrList([]);
  const lb = cidrList(['127.0.0.1/32', '10.0.0.0/8']);
  t.equal(resolveClientIp('198.51.100.9', '1.1.1.1', none), '198.51.100.9', 'no trusted proxies: header ignored');
  t.equal(resolveClientIp('198.51.100.9', '1.1.1.1', lb), '198.51.100.9', 'untrusted peer: header ignored');
  t.equal(resolveClientIp('127.0.0.1', '203.0.113.5', lb), '203.0.113.5');
  t.equal(resolveClientIp('::ffff:127.0.0.1', '203.0.113.5', lb), '203.0.113.5', 'mapped peer is trusted too');
  t.equal(resolveClientIp('127.0.0.1', '6.6.6.6, 203.0.113.5, 10.1.1.1', lb), '203.0.113.5', 'spoofed left part skipped');
  t.equal(resolveClientIp('127.0.0.1', '10.9.9.9, 10.1.1.1', lb), '10.9.9.9', 'all hops trusted: the leftmost');
  t.equal(resolveClientIp('127.0.0.1', 'garbage, 10.1.1.1', lb), '10.1.1.1', 'garbage stops at the last trusted hop');
  t.equal(resolveClientIp('127.0.0.1', 'garbage', lb), '127.0.0.1');
  t.equal(resolveClientIp('127.0.0.1', '', lb), '127.0.0.1');
  t.equal(resolveClientIp('127.0.0.1', ' [2001:DB8::5]:443 ', lb), '2001:db8::5');
  t.equal(resolveClientIp('127.0.0.1', '::ffff:203.0.113.5', lb), '203.0.113.5');
  t.equal(resolveClientIp('127.0.0.1', '203.0.113.5:4711', lb), '203.0.113.5');
});

t.test('header score', async (t) => {
  const browser = {
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    accept: 'application/json', 'accept-language': 'en-GB,en;q=0.9', 'sec-fetch-site': 'same-origin',
  };
  t.equal(headerScore(browser), 0);
  t.equal(headerScore({ 'user-agent': 'curl/8.5.0', accept: '*/*' }), HEADER_WEIGHTS.toolUserAgent + HEADER_WEIGHTS.noAcceptLanguage);
  t.equal(headerScore({}), HEADER_WEIGHTS.noUserAgent + HEADER_WEIGHTS.noAcceptLanguage + HEADER_WEIGHTS.noAccept);
  t.same(headerSignals({ ...browser, 'user-agent': 'Mozilla/5.0 HeadlessChrome/126.0' }), ['toolUserAgent']);
  t.same(headerSignals({ ...browser, 'sec-fetch-site': 'cross-site' }), ['crossSite']);
  t.ok(headerScore({ 'sec-fetch-site': 'cross-site', 'user-agent': 'python-requests/2.31' }) <= 100);
});
