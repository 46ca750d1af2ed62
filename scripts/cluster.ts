/**
 * `npm run cluster`: a rehearsal of production on one machine, no Docker (docs/api.md section 6):
 * a Redis Cluster of three masters with a replica each, from the `redis-server` on the PATH (data
 * under DATA_DIR/cluster), GATEWAYS gateway processes (default 3) sharing GATEWAY_PORT (uWS sets
 * SO_REUSEPORT: the kernel spreads connections), one `npm run checkout` with CHECKOUTS workers
 * (default 2) sharing CHECKOUT_PORT (node:cluster), Postgres as `npm start` finds or starts it,
 * and the demo room. Prints the URLs and every process id; Ctrl-C stops everything it started, by
 * process id. Each process's own lines are printed with its name (LOG_LEVEL=warn by default here,
 * so the terminal stays readable).
 */
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { describeError } from '../shared/errors.js';
import { freePort } from '../shared/ports.js';
import { startRedisCluster } from './redis-cluster.js';
import { spawnService, type Service } from './procs.js';
import { stopsOnSignals } from './stops.js';
import { freshDemo, putDemoRoom, putDemoSale } from './demo.js';

const { stops, stopAll } = stopsOnSignals('stopping everything this command started…');

async function main(): Promise<void> {
  const base = loadConfig(process.env);
  const say = (line: string) => console.log(line);

  const redis = await startRedisCluster({ dir: path.join(base.dataDir, 'cluster'), masters: 3, replicas: 1, log: say });
  stops.push(() => redis.stop());
  const { ensurePostgres } = await import('../checkout/postgres.js');
  const pg = await ensurePostgres(base, say);
  stops.unshift(() => pg.stop());

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    LOG_FORMAT: process.env.LOG_FORMAT ?? 'pretty',
    REDIS_CLUSTER_NODES: redis.seeds,
    DATABASE_URL: pg.databaseUrl,
    GATEWAY_HOST: base.gatewayHost ?? '127.0.0.1',
    CHECKOUT_HOST: base.checkoutHost ?? '127.0.0.1',
  };
  const config: Config = loadConfig(env);
  const echo = (line: string) => console.log(line);
  const services: Service[] = [];
  const started = (s: Service) => { services.push(s); stops.push(() => s.stop()); return s; };
  // Every gateway listens on the one port (GATEWAY_PORT=0: a free one, picked here: a socket bound
  // to port 0 cannot be shared).
  const gwEnv = { ...env, GATEWAY_PORT: String(config.gatewayPort || (await freePort())) };
  for (let i = 1; i <= config.gateways; i++) started(await spawnService(`gateway-${i}`, 'scripts/gateway.ts', { env: gwEnv, onLine: echo }));
  const first = services[0]!;
  const checkout = started(await spawnService('checkout', 'scripts/checkout.ts', { env: { ...env, CHECKOUT_WORKERS: String(config.checkouts) }, onLine: echo }));

  const gatewayUrl = `http://${first.host === '0.0.0.0' ? '127.0.0.1' : first.host}:${first.port}`;
  const checkoutUrl = `http://${checkout.host === '0.0.0.0' ? '127.0.0.1' : checkout.host}:${checkout.port}`;
  const demo = await freshDemo(config);
  const salePage = await putDemoSale(config, checkoutUrl, demo);
  await putDemoRoom(config, gatewayUrl, demo, salePage);

  console.log(`
Rehearsal running: ${config.gateways} gateways on one port, ${config.checkouts} checkout workers on one port, Redis Cluster, Postgres.
  queue page     ${gatewayUrl}/rooms/${demo.room}   (opens at ${demo.opensAt}, pre-queue open now)
  admin console  ${gatewayUrl}/admin   (admin token: ${config.adminToken})
  checkout       ${salePage}
  Redis Cluster  ${redis.seeds}   (3 masters + 3 replicas, pids ${redis.nodes.map((n) => n.pid).join(' ')})
  gateways       pids ${services.filter((s) => s.name.startsWith('gateway')).map((s) => s.pid).join(' ')}
  checkout       primary pid ${checkout.pid}
Ctrl-C stops everything this command started.`);
}

main().catch((err: unknown) => {
  console.error(`npm run cluster failed: ${err instanceof ConfigError ? err.message : describeError(err)}`);
  void stopAll(1);
});
