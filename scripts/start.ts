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
import { describeError } from '../shared/errors.js';
import { onLauncherGone } from '../shared/leftovers.js';
import { ensureRedis, NoRedisError, type RedisHandle } from './redis.js';
import { stopsOnSignals } from './stops.js';
import { DEMO_NAME, freshDemo, putDemoRoom, putDemoSale } from './demo.js';


const { stops, stopAll } = stopsOnSignals();

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  onLauncherGone((pid) => {
    console.error(`npm start: the process that ran this one (pid ${pid}) is gone; stopping everything this command started.`);
    void stopAll(1);
  });

  const redis: RedisHandle = await ensureRedis(config.redisUrl, config.dataDir);
  stops.push(() => redis.stop());

  const demo = await freshDemo(config);

  const gateway: Gateway = await startGateway(config, { host: config.gatewayHost ?? '127.0.0.1', trustedProxies: [...config.trustedProxies], admitter: config.admitter });
  stops.push(() => gateway.close());

  // ---- checkout starts here: Postgres (embedded if none answers), the checkout service and the
  // demo sale. A failure is reported and the gateway keeps running without it. ----
  let checkoutLine = '  checkout       not running (see the message above)';
  let salePage = `${config.checkoutUrl}/sales/${demo.sale}`;
  try {
    const { ensurePostgres } = await import('../checkout/postgres.js');
    const { startCheckout } = await import('../checkout/main.js');
    const pg = await ensurePostgres(config, (line) => console.log(line));
    stops.unshift(() => pg.stop());
    const checkoutConfig: Config = Object.freeze({ ...config, databaseUrl: pg.databaseUrl });
    const checkout = await startCheckout(checkoutConfig);
    stops.push(() => checkout.close());
    salePage = await putDemoSale(config, checkout.url, demo).catch((err: unknown) => {
      console.error(`checkout: ${describeError(err)}`);
      return salePage;
    });
    checkoutLine = `  checkout       ${salePage}`;
  } catch (err) {
    console.error(`checkout did not start (the waiting room runs without it): ${describeError(err)}`);
  }

  await putDemoRoom(config, gateway.url, demo, salePage);

  console.log(`
Waiting room running.
  queue page     ${gateway.url}/rooms/${demo.room}   (room "${demo.room}", ${DEMO_NAME}, opens at ${demo.opensAt}, pre-queue open now)
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
