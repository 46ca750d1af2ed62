/**
 * A second gateway process admitting in real time (admission loop on), for the stock-admission
 * tests: config from STOCK_TEST_ENV (JSON env object). Prints one line `{"url": ...}` once
 * listening; stops on disconnect, SIGTERM, or after 150 s at the latest.
 */
import { loadConfig } from '../../shared/config.js';
import { startGateway } from '../../waiting-room/server.js';

const env = JSON.parse(process.env.STOCK_TEST_ENV ?? '{}') as Record<string, string>;
const gw = await startGateway(loadConfig(env), { port: 0, admitter: true, admitIntervalMs: 50 });
process.stdout.write(JSON.stringify({ url: gw.url }) + '\n');
const stop = () => void gw.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', stop);
setTimeout(stop, 150_000).unref();
