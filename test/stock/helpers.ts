/**
 * A whole shop for the stock-admission tests, over real sockets: one gateway in this process and
 * one in a child process, both running the admission loop in real time against one Redis
 * prefix, and a checkout whose JWKS is the gateways'. Its own Postgres database and Redis
 * prefix; everything stopped and dropped at teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../shared/config.js';
import { startCheckout, type Checkout, type CheckoutOptions } from '../../checkout/main.js';
import { startGateway, type Gateway } from '../../waiting-room/server.js';
import { createSale, productEnv } from '../checkout/helpers.js';
import { OPEN_LIMITS, putRoom } from '../gateway/helpers.js';

const CHILD = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));

interface Teardown { teardown(fn: () => unknown): void }

export interface Shop {
  config: Config;
  /** Gateway URLs: [this process, the child process]. */
  gateways: string[];
  gateway: Gateway;
  checkout: Checkout;
}

async function childGateway(env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import=tsx', CHILD], { env: { ...process.env, STOCK_TEST_ENV: JSON.stringify(env) }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child gateway did not start in 30 s')), 30_000);
    createInterface({ input: proc.stdout! }).once('line', (line) => { clearTimeout(timer); resolve((JSON.parse(line) as { url: string }).url); });
    proc.once('exit', (code) => reject(new Error(`child gateway exited (${code})`)));
  });
  return { proc, url };
}

export async function shop(t: Teardown, tag: string, checkoutOpts: CheckoutOptions = {}): Promise<Shop> {
  const { env, stop } = await productEnv(t, tag);
  const config = loadConfig(env);
  const gateway = await startGateway(config, { admitter: true, admitIntervalMs: 50 });
  stop(() => gateway.close());
  const child = await childGateway(env);
  stop(() => new Promise<void>((r) => {
    if (child.proc.exitCode !== null) return r();
    child.proc.once('exit', () => r());
    child.proc.kill('SIGTERM');
  }));
  const checkout = await startCheckout(loadConfig({ ...env, JWKS_URL: `${gateway.url}/.well-known/jwks.json` }), {
    port: 0, poolSize: 6, provider: { delayMs: 100 }, sweeper: { tickMs: 100 }, ...checkoutOpts,
  });
  stop(() => checkout.close());
  return { config, gateways: [gateway.url, child.url], gateway, checkout };
}

export async function putSale(s: Shop, sale: string, fields: Record<string, unknown>) {
  await createSale(s.checkout.url, sale, { priceCents: 100, ...fields });
}

export async function putShopRoom(s: Shop, room: string, fields: Record<string, unknown>) {
  await putRoom(s.gateway, room, {
    sale: room, opensAt: new Date(Date.now() - 1000).toISOString(), prequeueSeconds: 0, checkoutUrl: `${s.checkout.url}/sales/${room}`,
    ...OPEN_LIMITS, ...fields,
  });
}

/** Visitors admitted by each gateway process so far (its wr_admitted_total). */
export async function admittedBy(url: string, room: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^wr_admitted_total\\{room="${room}"\\} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `iat` claim of an admission token (seconds). */
export function issuedAt(token: string): number {
  return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { iat: number }).iat;
}
