/**
 * What the services write to their logs (shared/log.ts): at the default level no line per
 * request (a drop is a hundred thousand of them, and `npm start`'s terminal must stay readable);
 * at debug one line per request with the route's pattern, never the raw URL and its query
 * string; JSON lines for a collector, readable lines on a terminal or with LOG_FORMAT=pretty.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/log.js';
import { call, world } from '../checkout/helpers.js';

function capture(isTTY = false) {
  const lines: string[] = [];
  const stream = Object.assign(new Writable({
    write(chunk, _enc, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done(); },
  }), { isTTY });
  return { lines, stream };
}

async function traffic(url: string) {
  await call(url, 'GET', '/healthz');
  await call(url, 'GET', '/api/sales/no-such-sale?token=bearer-secret-in-a-query');
  await call(url, 'POST', '/api/users', { body: { email: `logs-${Date.now()}@example.com`, password: 'password123' } });
}

for (const level of ['info', 'debug'] as const) {
  t.test(`checkout at LOG_LEVEL=${level}`, async (t) => {
    const out = capture();
    const config = { logLevel: level, logFormat: 'json' as const };
    const w = await world(t, `logs${level}`, { logger: createLogger(config, 'checkout', out.stream) }, { LOG_LEVEL: level });
    const before = out.lines.length;
    await traffic(w.url);
    const lines = out.lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    t.notOk(out.lines.join('\n').includes('bearer-secret'), 'no query string in any line');
    const requests = lines.filter((l) => l.msg === 'request' || l.msg === 'incoming request' || l.msg === 'request completed');
    if (level === 'info') {
      t.same(requests, [], 'no line per request at the default level');
    } else {
      t.same(requests.map((l) => [l.method, l.route, l.status]), [
        ['GET', '/healthz', 200],
        ['GET', '/api/sales/:sale', 404],
        ['POST', '/api/users', 201],
      ], 'one line per request: method, route pattern, status');
      t.ok(requests.every((l) => typeof l.ms === 'number' && l.name === 'checkout'), 'with its time and the service name');
    }
  });
}

t.test('LOG_FORMAT: JSON lines off a terminal, readable lines on one or when asked', async (t) => {
  const auto = loadConfig({ LOG_LEVEL: 'info' });
  t.equal(auto.logFormat, 'auto', 'auto by default');
  t.throws(() => loadConfig({ LOG_FORMAT: 'xml' }), /LOG_FORMAT must be one of auto, json, pretty/);

  const pipe = capture(false);
  createLogger(auto, 'gateway', pipe.stream).info({ room: 'demo' }, 'room config changed');
  t.match(JSON.parse(pipe.lines[0]!), { name: 'gateway', room: 'demo', msg: 'room config changed' }, 'JSON when not a terminal');

  for (const [what, config, isTTY] of [['a terminal', auto, true], ['LOG_FORMAT=pretty', loadConfig({ LOG_FORMAT: 'pretty' }), false]] as const) {
    const out = capture(isTTY);
    createLogger(config, 'gateway', out.stream).info({ room: 'demo' }, 'room config changed');
    const raw = out.lines.join('\n');
    const text = raw.replace(/\x1b\[[0-9;]*m/g, '');
    t.equal(raw !== text, isTTY, isTTY ? 'in colour on a terminal' : 'no colour codes when not a terminal');
    t.throws(() => JSON.parse(out.lines[0]!), `not JSON on ${what}`);
    t.match(text, /INFO.*\(gateway\).*room config changed/, `readable on ${what}`);
    t.match(text, /room: "demo"/, 'its fields on the next lines');
  }
});
