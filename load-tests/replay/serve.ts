/**
 * Child-process entry for product.ts: `{type:"start", env}` starts the gateway or checkout
 * (argv[2]) on a free port and answers `{type:"ready", url}`; `{type:"close"}` or the parent
 * going away stops it.
 */
import { loadConfig } from '../../shared/config.js';

const kind = process.argv[2];
let close: (() => Promise<void>) | null = null;

async function start(env: Record<string, string>): Promise<string> {
  const config = loadConfig(env);
  if (kind === 'gateway') {
    const { startGateway } = await import('../../waiting-room/server.js');
    const g = await startGateway(config, { port: 0 });
    close = () => g.close();
    return g.url;
  }
  if (kind === 'checkout') {
    const { startCheckout } = await import('../../checkout/main.js');
    const c = await startCheckout(config, { port: 0 });
    close = () => c.close();
    return c.url;
  }
  throw new Error(`unknown service "${kind}"`);
}

async function stop(code: number): Promise<never> {
  const c = close;
  close = null;
  await c?.().catch(() => {});
  process.exit(code);
}

process.on('message', (m: any) => {
  if (m.type === 'start') {
    start(m.env).then(
      (url) => process.send?.({ type: 'ready', url }),
      (e: Error) => process.send?.({ type: 'error', message: e.stack ?? e.message }, () => process.exit(1)),
    );
  } else if (m.type === 'close') void stop(0);
});
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
