/**
 * Checkout on its own: `npx tsx checkout/cli.ts` (the README's start command runs it together
 * with the gateway through scripts/start.ts). Postgres as `npm start` finds it (embedded when
 * none answers); it listens on CHECKOUT_HOST (default 127.0.0.1; compose sets 0.0.0.0). SIGINT/SIGTERM finish in-flight requests, stop the sweeper and close pools.
 */
import closeWithGrace from 'close-with-grace';
import { loadConfig } from '../shared/config.js';
import { startCheckout } from './main.js';
import { ensurePostgres } from './postgres.js';

const config = loadConfig(process.env);
const log = (msg: string) => process.stderr.write(`checkout: ${msg}\n`);
const pg = await ensurePostgres(config, log);
const app = await startCheckout({ ...config, databaseUrl: pg.databaseUrl }, { host: config.checkoutHost });
log(`listening on ${app.url} (sale page: ${app.url}/sales/<sale>)`);
closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
  if (err) log(`stopping after an error: ${err.stack ?? err.message}`);
  else log(`stopping (${signal ?? 'exit'})`);
  await app.close();
  await pg.stop();
});
