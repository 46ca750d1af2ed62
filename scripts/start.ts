/**
 * `npm start`: the product on one machine with nothing set. Makes sure Redis is up (starting
 * one if needed), starts the gateway, creates (or updates) a demo room `demo` that opens about
 * 60 s from now with a pre-queue window, prints the URLs, and stops everything on Ctrl-C (or when
 * start-up fails, after printing why). A Redis or Postgres it starts is stopped by a watchdog if
 * this process is killed, and one that a killed earlier run left behind is stopped before the
 * next run starts its own (shared/leftovers.ts), so a start after any crash comes back by itself.
 */
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { startGateway, type Gateway } from '../waiting-room/server.js';
import { createRedisClient, dropPrefix } from '../shared/redis.js';
import { roomPrefix } from '../shared/keys.js';
import { describeError } from '../shared/errors.js';
import { onLauncherGone } from '../shared/leftovers.js';
import { ensureRedis, NoRedisError, type RedisHandle } from './redis.js';

const DEMO_ROOM = 'demo';

/** What this run started, stopped last-first on Ctrl-C and when start-up fails half-way. */
const stops: (() => Promise<void>)[] = [];
let stopping = false;
async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(`while stopping: ${describeError(err)}`));
  process.exit(code);
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  process.on('SIGHUP', () => void stopAll(0)); // the terminal closed
  onLauncherGone((pid) => {
    console.error(`npm start: the process that ran this one (pid ${pid}) is gone; stopping everything this command started.`);
    void stopAll(1);
  });

  const redis: RedisHandle = await ensureRedis(config.redisUrl, config.dataDir);
  stops.push(() => redis.stop());

  // Every start gets a fresh demo: the room's queue is emptied (a room that already opened cannot
  // be moved back to a pre-queue) and the sale is new, so nothing sold in an earlier run shows.
  const admin = createRedisClient(config);
  await dropPrefix(admin, roomPrefix(config.redisPrefix, DEMO_ROOM));
  admin.disconnect();
  const demoSale = `demo-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`;

  const gateway: Gateway = await startGateway(config, { host: config.gatewayHost ?? '127.0.0.1', trustedProxies: [...config.trustedProxies], admitter: config.admitter });
  stops.push(() => gateway.close());

  const opensAt = new Date(Date.now() + 60_000).toISOString();

  // ---- checkout starts here: Postgres (embedded if none answers), the checkout service and the
  // demo sale. A failure is reported and the gateway keeps running without it. ----
  let checkoutLine = '  checkout       not running (see the message above)';
  let checkoutUrl = `${config.checkoutUrl}/sales/${demoSale}`;
  try {
    const { ensurePostgres } = await import('../checkout/postgres.js');
    const { startCheckout } = await import('../checkout/main.js');
    const pg = await ensurePostgres(config, (line) => console.log(line));
    stops.unshift(() => pg.stop());
    const checkoutConfig: Config = Object.freeze({ ...config, databaseUrl: pg.databaseUrl });
    const checkout = await startCheckout(checkoutConfig);
    stops.push(() => checkout.close());
    const sale = await fetch(`${checkout.url}/admin/sales/${demoSale}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${config.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Demo drop', priceCents: 4900, currency: 'EUR', total: 100, startsAt: opensAt, endsAt: new Date(Date.now() + 86_400_000).toISOString() }),
    });
    if (!sale.ok) console.error(`checkout: could not create the demo sale: ${sale.status} ${await sale.text()}`);
    checkoutUrl = `${checkout.url}/sales/${demoSale}`;
    checkoutLine = `  checkout       ${checkoutUrl}`;
  } catch (err) {
    console.error(`checkout did not start (the waiting room runs without it): ${describeError(err)}`);
  }

  const res = await fetch(`${gateway.url}/admin/rooms/${DEMO_ROOM}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${config.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sale: demoSale, checkoutUrl, opensAt, prequeueSeconds: 120, admitRatePerMin: 60, maxActive: 100, paused: false, closed: false }),
  });
  if (!res.ok) throw new Error(`could not create the demo room: ${res.status} ${await res.text()}`);

  console.log(`
Waiting room running.
  queue page     ${gateway.url}/rooms/${DEMO_ROOM}   (room "${DEMO_ROOM}" opens at ${opensAt}, pre-queue open now)
  admin console  ${gateway.url}/admin   (admin token: ${config.adminToken})
  JWKS           ${gateway.url}/.well-known/jwks.json
${checkoutLine}
Ctrl-C stops everything this command started.`);
}

main().catch((err: unknown) => {
  if (err instanceof NoRedisError || err instanceof ConfigError) console.error(err.message);
  else console.error(`npm start failed: ${describeError(err)}${err instanceof Error && err.stack ? `\n${err.stack}` : ''}`);
  void stopAll(1);
});
