/**
 * Configuration: parsed once from an environment object, frozen, passed in.
 * Nothing reads process.env at import time. Every variable has a default that
 * works on one machine; in production (NODE_ENV=production) a missing secret
 * stops start-up with a clear message.
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type CaptchaFailMode = 'open' | 'closed';

export interface Config {
  readonly nodeEnv: string;
  readonly production: boolean;
  readonly logLevel: string;
  /** LOG_FORMAT: `auto` (readable on a terminal, JSON otherwise), `json` or `pretty` (shared/log.ts). */
  readonly logFormat: LogFormat;
  /** Redis connection URL (REDIS_URL); unused when `redisClusterNodes` is set. */
  readonly redisUrl: string;
  /**
   * Seeds of a Redis Cluster (REDIS_CLUSTER_NODES, comma-separated `host:port`). When set, both
   * services use an ioredis Cluster on them instead of REDIS_URL. Empty: one Redis.
   */
  readonly redisClusterNodes: readonly { readonly host: string; readonly port: number }[];
  /** Prefix of every Redis key this deployment writes (REDIS_PREFIX); tests use their own. */
  readonly redisPrefix: string;
  /** Postgres connection URL (DATABASE_URL). */
  readonly databaseUrl: string;
  readonly gatewayPort: number;
  readonly checkoutPort: number;
  /** Public base URL of the gateway (GATEWAY_URL); checkout fetches the JWKS from here. */
  readonly gatewayUrl: string;
  /** Public base URL of checkout (CHECKOUT_URL); the default `checkoutUrl` of a room. */
  readonly checkoutUrl: string;
  /** JWKS that checkout trusts (JWKS_URL, default `${gatewayUrl}/.well-known/jwks.json`). */
  readonly jwksUrl: string;
  readonly adminToken: string;
  /** HMAC key that signs the `wr_vid` visitor cookie (VISITOR_SECRET). */
  readonly visitorSecret: string;
  /** Key that signs checkout session tokens (SESSION_SECRET). */
  readonly sessionSecret: string;
  readonly hcaptchaSitekey: string;
  readonly hcaptchaSecret: string;
  readonly hcaptchaVerifyUrl: string;
  /** What a join does when hCaptcha itself cannot be reached (CAPTCHA_FAIL_MODE). */
  readonly captchaFailMode: CaptchaFailMode;
  readonly captchaTimeoutMs: number;
  readonly paymentWebhookSecret: string;
  /** scrypt hashes (sign-up, log-in) a checkout process runs at once (PASSWORD_HASH_CONCURRENCY; default cores - 1, at least 1). */
  readonly passwordHashConcurrency: number;
  /** Where the start command keeps local Redis/Postgres data (DATA_DIR). */
  readonly dataDir: string;
  /** `npm run checkout`: worker processes sharing CHECKOUT_PORT through Node's cluster module (CHECKOUT_WORKERS, default 1: no primary). */
  readonly checkoutWorkers: number;
  /** `npm run cluster`: gateway processes on one port (GATEWAYS, default 3). */
  readonly gateways: number;
  /** `npm run cluster`: checkout processes on one port (CHECKOUTS, default 2). */
  readonly checkouts: number;
  /**
   * Listen address of the gateway (GATEWAY_HOST); undefined when unset, and the entry point picks:
   * 127.0.0.1 for `npm start`, 0.0.0.0 for the production entry point.
   */
  readonly gatewayHost: string | undefined;
  /** Listen address of checkout (CHECKOUT_HOST); undefined when unset (checkout's default, 127.0.0.1). */
  readonly checkoutHost: string | undefined;
  /** CIDRs of the load balancers whose x-forwarded-for the gateway believes (TRUSTED_PROXIES, comma-separated). */
  readonly trustedProxies: readonly string[];
  /** Run the admission loop in this gateway process (ADMITTER, "on" or "off"; default on). */
  readonly admitter: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** hCaptcha's published test keys: they always pass against hCaptcha's own siteverify. */
export const HCAPTCHA_TEST_SITEKEY = '10000000-ffff-ffff-ffff-000000000001';
export const HCAPTCHA_TEST_SECRET = '0x0000000000000000000000000000000000000000';

const DEV_SECRETS = {
  ADMIN_TOKEN: 'dev-admin-token',
  VISITOR_SECRET: 'dev-visitor-secret-change-me',
  SESSION_SECRET: 'dev-session-secret-change-me',
  HCAPTCHA_SECRET: HCAPTCHA_TEST_SECRET,
  PAYMENT_WEBHOOK_SECRET: 'dev-webhook-secret-change-me',
} as const;

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function port(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${name} must be a port number (0-65535), got "${raw}"`);
  return n;
}

function count(env: NodeJS.ProcessEnv, name: string, dflt: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(`${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  return n;
}

/** REDIS_CLUSTER_NODES: `host:port,host:port` (IPv6 as `[::1]:7000`). */
function clusterNodes(raw: string | undefined): { host: string; port: number }[] {
  if (!raw || !raw.trim()) return [];
  return raw.split(',').map((s) => s.trim()).filter(Boolean).map((seed) => {
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(seed);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new ConfigError(`REDIS_CLUSTER_NODES must be comma-separated host:port seeds, got "${seed}"`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], dflt: T): T {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

function onOff(env: NodeJS.ProcessEnv, name: string, dflt: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (raw === 'on') return true;
  if (raw === 'off') return false;
  throw new ConfigError(`${name} must be "on" or "off", got "${raw}"`);
}

/** scrypt hashes a checkout process runs at once unless PASSWORD_HASH_CONCURRENCY says: a core is left to the event loop. */
export const DEFAULT_HASH_CONCURRENCY = Math.max(1, os.availableParallelism() - 1);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const nodeEnv = env.NODE_ENV || 'development';
  const production = nodeEnv === 'production';
  const missing: string[] = [];
  const secret = (name: keyof typeof DEV_SECRETS): string => {
    const v = env[name];
    if (v) return v;
    if (production) missing.push(name);
    return DEV_SECRETS[name];
  };
  const gatewayPort = port(env, 'GATEWAY_PORT', 8080);
  const checkoutPort = port(env, 'CHECKOUT_PORT', 8081);
  const gatewayUrl = (env.GATEWAY_URL || `http://127.0.0.1:${gatewayPort}`).replace(/\/$/, '');
  const checkoutUrl = (env.CHECKOUT_URL || `http://127.0.0.1:${checkoutPort}`).replace(/\/$/, '');
  const failMode = env.CAPTCHA_FAIL_MODE || 'closed';
  if (failMode !== 'open' && failMode !== 'closed') throw new ConfigError(`CAPTCHA_FAIL_MODE must be "open" or "closed", got "${failMode}"`);
  const cfg: Config = {
    nodeEnv,
    production,
    logLevel: env.LOG_LEVEL || 'info',
    logFormat: oneOf(env, 'LOG_FORMAT', LOG_FORMATS, 'auto'),
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisClusterNodes: Object.freeze(clusterNodes(env.REDIS_CLUSTER_NODES).map((n) => Object.freeze(n))),
    redisPrefix: env.REDIS_PREFIX || 'wr',
    databaseUrl: env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/waitingroom',
    gatewayPort,
    checkoutPort,
    gatewayUrl,
    checkoutUrl,
    jwksUrl: env.JWKS_URL || `${gatewayUrl}/.well-known/jwks.json`,
    adminToken: secret('ADMIN_TOKEN'),
    visitorSecret: secret('VISITOR_SECRET'),
    sessionSecret: secret('SESSION_SECRET'),
    hcaptchaSitekey: env.HCAPTCHA_SITEKEY || HCAPTCHA_TEST_SITEKEY,
    hcaptchaSecret: secret('HCAPTCHA_SECRET'),
    hcaptchaVerifyUrl: env.HCAPTCHA_VERIFY_URL || 'https://api.hcaptcha.com/siteverify',
    captchaFailMode: failMode,
    captchaTimeoutMs: Number(env.CAPTCHA_TIMEOUT_MS || 3000),
    paymentWebhookSecret: secret('PAYMENT_WEBHOOK_SECRET'),
    passwordHashConcurrency: count(env, 'PASSWORD_HASH_CONCURRENCY', DEFAULT_HASH_CONCURRENCY, 256),
    dataDir: env.DATA_DIR || path.join(PROJECT_ROOT, 'data'),
    checkoutWorkers: count(env, 'CHECKOUT_WORKERS', 1, 64),
    gateways: count(env, 'GATEWAYS', 3, 64),
    checkouts: count(env, 'CHECKOUTS', 2, 64),
    gatewayHost: env.GATEWAY_HOST || undefined,
    checkoutHost: env.CHECKOUT_HOST || undefined,
    trustedProxies: Object.freeze((env.TRUSTED_PROXIES ?? '').split(',').map((x) => x.trim()).filter(Boolean)),
    admitter: onOff(env, 'ADMITTER', true),
  };
  if (missing.length) {
    throw new ConfigError(
      `NODE_ENV=production needs these secrets set: ${missing.join(', ')}. ` +
        'Set each to a long random value (for example `openssl rand -hex 32`).',
    );
  }
  return Object.freeze(cfg);
}
