/**
 * The one-machine rehearsal of production (docs/api.md section 6) that `npm run cluster` prints
 * and `npm run chaos` attacks: a Redis Cluster of three masters with a replica each (data under
 * DATA_DIR/cluster), GATEWAYS gateway processes sharing GATEWAY_PORT, one `npm run checkout` with
 * CHECKOUTS workers sharing CHECKOUT_PORT, Postgres as `npm start` finds or starts it (or the one
 * at DATABASE_URL), and the demo room. Everything it starts is pushed onto `stops` (stopped by
 * process id, last first).
 */
import path from 'node:path';
import { loadConfig, type Config } from '../shared/config.js';
import { freePort } from '../shared/ports.js';
import { startRedisCluster, type RedisCluster } from './redis-cluster.js';
import { spawnService, type Service } from './procs.js';
import { freshDemo, putDemoRoom, putDemoSale, type Demo } from './demo.js';

export interface Rehearsal {
  config: Config;
  redis: RedisCluster;
  gateways: Service[];
  checkout: Service;
  gatewayUrl: string;
  checkoutUrl: string;
  demo: Demo;
  salePage: string;
  /** Pids of the checkout workers as they printed them, newest last (a killed one is replaced). */
  checkoutWorkers(): number[];
}

export interface RehearsalOptions {
  env: NodeJS.ProcessEnv;
  /** Where stops go: `stops.push` for what ends first, `stops.unshift` for what ends last. */
  stops: (() => Promise<void>)[];
  say(line: string): void;
  /** Each line the services print (default: `say`). */
  echo?(line: string): void;
}

const reachable = (s: Service) => `http://${s.host === '0.0.0.0' ? '127.0.0.1' : s.host}:${s.port}`;

export async function startRehearsal({ env: given, stops, say, echo = say }: RehearsalOptions): Promise<Rehearsal> {
  const base = loadConfig(given);
  const redis = await startRedisCluster({ dir: path.join(base.dataDir, 'cluster'), masters: 3, replicas: 1, log: say });
  stops.push(() => redis.stop());
  const { ensurePostgres } = await import('../checkout/postgres.js');
  const pg = await ensurePostgres(base, say);
  stops.unshift(() => pg.stop());

  const env: NodeJS.ProcessEnv = {
    ...given,
    LOG_LEVEL: given.LOG_LEVEL ?? 'warn',
    LOG_FORMAT: given.LOG_FORMAT ?? 'pretty',
    REDIS_CLUSTER_NODES: redis.seeds,
    DATABASE_URL: pg.databaseUrl,
    GATEWAY_HOST: base.gatewayHost ?? '127.0.0.1',
    CHECKOUT_HOST: base.checkoutHost ?? '127.0.0.1',
  };
  const config: Config = loadConfig(env);
  const gateways: Service[] = [];
  // Every gateway listens on the one port (GATEWAY_PORT=0: a free one, picked here: a socket bound
  // to port 0 cannot be shared).
  const gwEnv = { ...env, GATEWAY_PORT: String(config.gatewayPort || (await freePort())) };
  for (let i = 1; i <= config.gateways; i++) {
    const s = await spawnService(`gateway-${i}`, 'scripts/gateway.ts', { env: gwEnv, onLine: echo });
    gateways.push(s);
    stops.push(() => s.stop());
  }
  const gatewayUrl = reachable(gateways[0]!);
  // Checkout trusts the JWKS of the gateways' port: GATEWAY_URL defaults to GATEWAY_PORT, which is
  // 0 when the port was picked here (every reservation then answered 503: no JWKS at port 0).
  const checkout = await spawnService('checkout', 'scripts/checkout.ts', { env: { ...env, GATEWAY_URL: given.GATEWAY_URL || gatewayUrl, CHECKOUT_WORKERS: String(config.checkouts) }, onLine: echo });
  stops.push(() => checkout.stop());
  const checkoutUrl = reachable(checkout);
  const checkoutWorkers = () => [...checkout.output().matchAll(/\(checkout, pid (\d+)\)/g)].map((m) => Number(m[1]));
  // The primary printed its first worker's line; the URLs are printed once every worker listens.
  for (const deadline = Date.now() + 60_000; checkoutWorkers().length < config.checkouts; await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline || checkout.exited()) throw new Error(`${config.checkouts} checkout workers did not all listen within 60 s:\n${checkout.output()}`);
  }
  const demo = await freshDemo(config);
  const salePage = await putDemoSale(config, checkoutUrl, demo);
  await putDemoRoom(config, gatewayUrl, demo, salePage);
  return { config, redis, gateways, checkout, gatewayUrl, checkoutUrl, demo, salePage, checkoutWorkers };
}
