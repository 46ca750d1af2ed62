/**
 * A local server speaking hCaptcha's siteverify protocol, for tests and the offline demo.
 *
 * POST form-encoded `secret`, `response`, optional `remoteip`, `sitekey` → 200 JSON
 * `{success, challenge_ts, hostname, credit}` or `{success: false, "error-codes": [...]}`.
 * It accepts hCaptcha's published test response for the test secret, and any token it minted
 * itself (`mint()`), each once: a second sight answers `invalid-or-already-seen-response`, as
 * hCaptcha does for a real token. Other tokens answer `invalid-input-response`.
 *
 * Standalone: `tsx waiting-room/defence/fake-siteverify.ts [port]` prints its URL; point
 * `HCAPTCHA_VERIFY_URL` at it.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { HCAPTCHA_TEST_SECRET, HCAPTCHA_TEST_SITEKEY } from '../../shared/config.js';

/** hCaptcha's published passing response for its test keys. */
export const HCAPTCHA_TEST_RESPONSE = '10000000-aaaa-bbbb-cccc-000000000001';

/** How the fake behaves: answer, fail with 500 (hCaptcha down), or never answer (a timeout). */
export type FakeBehaviour = 'normal' | 'error' | 'hang';

export interface FakeSiteverifyOptions {
  port?: number;
  secret?: string;
  sitekey?: string;
  /** Accept a passing token every time it is seen, to prove the gateway's own replay guard. */
  allowReuse?: boolean;
  behaviour?: FakeBehaviour;
}

export interface SiteverifyCall {
  secret: string | null;
  response: string | null;
  remoteip: string | null;
  sitekey: string | null;
}

export interface FakeSiteverify {
  /** The siteverify URL (`HCAPTCHA_VERIFY_URL`). */
  url: string;
  port: number;
  /** Every request received, in order. */
  calls: SiteverifyCall[];
  /** A fresh token this server accepts (once, unless `allowReuse`). */
  mint(): string;
  setBehaviour(b: FakeBehaviour): void;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

export async function startFakeSiteverify(opts: FakeSiteverifyOptions = {}): Promise<FakeSiteverify> {
  const secret = opts.secret ?? HCAPTCHA_TEST_SECRET;
  const sitekey = opts.sitekey ?? HCAPTCHA_TEST_SITEKEY;
  let behaviour: FakeBehaviour = opts.behaviour ?? 'normal';
  const valid = new Set<string>([HCAPTCHA_TEST_RESPONSE]);
  const seen = new Set<string>();
  const calls: SiteverifyCall[] = [];
  const hanging = new Set<http.ServerResponse>();

  const answer = (c: SiteverifyCall): Record<string, unknown> => {
    const fail = (code: string) => ({ success: false, 'error-codes': [code] });
    if (!c.secret) return fail('missing-input-secret');
    if (c.secret !== secret) return fail('invalid-input-secret');
    if (c.sitekey && c.sitekey !== sitekey) return fail('sitekey-secret-mismatch');
    if (!c.response) return fail('missing-input-response');
    if (!valid.has(c.response)) return fail('invalid-input-response');
    if (seen.has(c.response) && !opts.allowReuse) return fail('invalid-or-already-seen-response');
    seen.add(c.response);
    return { success: true, challenge_ts: new Date().toISOString(), hostname: 'localhost', credit: false };
  };

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { success: false, 'error-codes': ['bad-request'] });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const call: SiteverifyCall = {
        secret: form.get('secret'), response: form.get('response'),
        remoteip: form.get('remoteip'), sitekey: form.get('sitekey'),
      };
      calls.push(call);
      if (behaviour === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (behaviour === 'error') return send(500, { error: 'internal' });
      send(200, answer(call));
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/siteverify`,
    port,
    calls,
    mint() {
      const t = `fake-${randomUUID()}`;
      valid.add(t);
      return t;
    },
    setBehaviour(b) {
      behaviour = b;
    },
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const fake = await startFakeSiteverify({ port: Number(process.argv[2] ?? 0) });
  console.log(`fake hCaptcha siteverify listening: HCAPTCHA_VERIFY_URL=${fake.url}`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
