import t, { type Test } from 'tap';
import { loadConfig, ConfigError } from '../shared/config.js';

/** The ConfigError loadConfig throws for `env`: t.throws fails the test when it does not throw, or throws something else. */
function refusal(t: Test, env: Record<string, string>): Error {
  return t.throws(() => loadConfig(env), ConfigError, `loadConfig(${JSON.stringify(env)}) is refused`) as Error;
}

t.test('defaults need nothing set', async (t) => {
  const c = loadConfig({});
  t.equal(c.gatewayPort, 8080);
  t.equal(c.checkoutPort, 8081);
  t.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  t.equal(c.jwksUrl, 'http://127.0.0.1:8080/.well-known/jwks.json');
  t.equal(c.gatewayHost, undefined, 'GATEWAY_HOST unset: the entry point picks');
  t.equal(c.checkoutHost, undefined);
  t.same(c.trustedProxies, []);
  t.equal(c.admitter, true);
  t.ok(Object.isFrozen(c));
});

t.test('production refuses to start without secrets, naming them', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), ConfigError);
  const err = refusal(t, { NODE_ENV: 'production', ADMIN_TOKEN: 'x' });
  t.match(err.message, /VISITOR_SECRET/);
  t.notMatch(err.message, /ADMIN_TOKEN/);
  const ok = loadConfig({
    NODE_ENV: 'production', ADMIN_TOKEN: 'a', VISITOR_SECRET: 'b', SESSION_SECRET: 'c',
    HCAPTCHA_SECRET: 'd', PAYMENT_WEBHOOK_SECRET: 'e',
  });
  t.equal(ok.adminToken, 'a');
});

t.test('the entry points\' settings are parsed here too', async (t) => {
  const c = loadConfig({ GATEWAY_HOST: '0.0.0.0', CHECKOUT_HOST: '::', TRUSTED_PROXIES: ' 10.0.0.0/8, 172.16.0.0/12 ,', ADMITTER: 'off' });
  t.equal(c.gatewayHost, '0.0.0.0');
  t.equal(c.checkoutHost, '::');
  t.same(c.trustedProxies, ['10.0.0.0/8', '172.16.0.0/12']);
  t.ok(Object.isFrozen(c.trustedProxies));
  t.equal(c.admitter, false);
  t.equal(loadConfig({ ADMITTER: 'on' }).admitter, true);
});

t.test('bad values are refused with a message', async (t) => {
  t.throws(() => loadConfig({ GATEWAY_PORT: 'eighty' }), /GATEWAY_PORT/);
  t.throws(() => loadConfig({ CAPTCHA_FAIL_MODE: 'maybe' }), /CAPTCHA_FAIL_MODE/);
  t.match(refusal(t, { ADMITTER: 'no' }).message, /ADMITTER must be "on" or "off"/);
});

t.test('REDIS_CLUSTER_NODES and the process counts', async (t) => {
  t.same(loadConfig({}).redisClusterNodes, [], 'no seeds: one Redis at REDIS_URL');
  t.same(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000, redis-2:7001,[::1]:7002' }).redisClusterNodes,
    [{ host: '127.0.0.1', port: 7000 }, { host: 'redis-2', port: 7001 }, { host: '::1', port: 7002 }]);
  t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1' }), /REDIS_CLUSTER_NODES/);
  t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:99999' }), /REDIS_CLUSTER_NODES/);
  const c = loadConfig({});
  t.same([c.checkoutWorkers, c.gateways, c.checkouts], [1, 3, 2]);
  t.equal(loadConfig({ GATEWAYS: '5', CHECKOUTS: '1', CHECKOUT_WORKERS: '4' }).gateways, 5);
  t.throws(() => loadConfig({ GATEWAYS: '0' }), /GATEWAYS/);
  t.throws(() => loadConfig({ CHECKOUTS: 'two' }), /CHECKOUTS/);
});
