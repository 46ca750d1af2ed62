/**
 * The operator and shopper calls the replay driver, the benchmarks and the tests make,
 * written once against docs/api.md.
 */
import { request, outcomeOf, type Reply, type RequestOptions } from './http.js';

export interface Targets {
  gateway: string;
  checkout: string;
  adminToken: string;
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(message: string, readonly reply: Reply) {
    super(message);
  }
}

function must(r: Reply, what: string, ok: number[] = [200, 201]): any {
  if (!ok.includes(r.status)) throw new ApiError(`${what}: HTTP ${r.status} ${outcomeOf(r)} ${r.text.slice(0, 200)}`, r);
  return r.json;
}

const admin = (t: Targets) => ({ authorization: `Bearer ${t.adminToken}` });

export interface SaleSpec {
  name?: string;
  priceCents?: number;
  currency?: string;
  total: number;
  startsAt?: string;
  endsAt?: string;
  reservationSeconds?: number;
}

export async function putSale(t: Targets, sale: string, spec: SaleSpec, now = Date.now()): Promise<any> {
  const body = {
    name: spec.name ?? `Replay ${sale}`,
    priceCents: spec.priceCents ?? 4999,
    currency: spec.currency ?? 'EUR',
    total: spec.total,
    startsAt: spec.startsAt ?? new Date(now - 60_000).toISOString(),
    endsAt: spec.endsAt ?? new Date(now + 3 * 3600_000).toISOString(),
    reservationSeconds: spec.reservationSeconds ?? 600,
  };
  return must(await request(`${t.checkout}/admin/sales/${encodeURIComponent(sale)}`, { method: 'PUT', headers: admin(t), body }), `PUT sale ${sale}`);
}

export async function putRoom(t: Targets, room: string, cfg: Record<string, unknown>): Promise<any> {
  return must(await request(`${t.gateway}/admin/rooms/${encodeURIComponent(room)}`, { method: 'PUT', headers: admin(t), body: cfg }), `PUT room ${room}`);
}

export async function audit(t: Targets, sale: string): Promise<Record<string, unknown>> {
  return must(await request(`${t.checkout}/admin/sales/${encodeURIComponent(sale)}/audit`, { headers: admin(t) }), `audit ${sale}`);
}

/** The room's signed fairness report (docs/draw.md): its URL, and the answer (a 409 `not_yet` while the room is not over). */
export async function fairnessReport(t: Targets, room: string): Promise<FetchedFairnessReport> {
  const url = `${t.gateway}/api/rooms/${encodeURIComponent(room)}/report`;
  try {
    const r = await request(url, { timeoutMs: 10_000 });
    return { url, status: r.status, body: r.json };
  } catch (e) {
    return { url, status: 0, body: { error: e instanceof Error ? e.message : String(e) } };
  }
}
export interface FetchedFairnessReport { url: string; status: number; body: any }

/** Options of a read-only call: its own agent (a sampler not queued behind shoppers), a timeout. */
type ReadOptions = Pick<RequestOptions, 'agent' | 'timeoutMs'>;

export async function saleState(t: Targets, sale: string, opts: ReadOptions = {}): Promise<any> {
  return must(await request(`${t.checkout}/api/sales/${encodeURIComponent(sale)}`, opts), `sale ${sale}`);
}

export async function roomState(t: Pick<Targets, 'gateway'>, room: string, opts: ReadOptions = {}): Promise<any> {
  return must(await request(`${t.gateway}/api/rooms/${encodeURIComponent(room)}`, opts), `room ${room}`);
}

export class ProductDownError extends Error {
  override name = 'ProductDownError';
}

/**
 * Both services' health checks (`GET /healthz`, docs/api.md sections 1 and 3) must answer 200
 * within `timeoutMs`; otherwise a ProductDownError naming the URL tried and what came back.
 */
export async function checkHealth(t: Pick<Targets, 'gateway' | 'checkout'>, timeoutMs = 3000): Promise<void> {
  for (const [kind, base] of [['gateway', t.gateway], ['checkout', t.checkout]] as const) {
    const url = `${base}/healthz`;
    let why: string;
    try {
      const r = await request(url, { timeoutMs });
      if (r.status === 200) continue;
      why = `answered HTTP ${r.status} ${outcomeOf(r)}`;
    } catch (e) {
      why = `did not answer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
    }
    throw new ProductDownError(`the ${kind}'s health check ${url} ${why}: start the product (npm start) or point --${kind} at a running one`);
  }
}

export async function recording(t: Targets, room: string): Promise<string | null> {
  const r = await request(`${t.gateway}/admin/rooms/${encodeURIComponent(room)}/recording`, { headers: admin(t) });
  if (r.status === 404) return null;
  must(r, `recording ${room}`, [200]);
  return r.text;
}

/** The payload of a JWT, unverified (the driver only reads the `ticket` claim of its own token). */
export function jwtPayload(token: string): Record<string, unknown> | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

export type PurchaseResult =
  | { kind: 'success'; orderId?: string }
  | { kind: 'failed'; step: string; code: string };

const fail = (step: string, r: Reply): PurchaseResult => ({ kind: 'failed', step, code: outcomeOf(r) });

/**
 * Sign up, which logs the new account in; an existing account logs in instead: the session
 * token, or why not.
 */
export async function signIn(checkout: string, email: string, password = 'replay-Passw0rd!'): Promise<{ session: string } | PurchaseResult> {
  const su = await request(`${checkout}/api/users`, { body: { email, password } });
  if (su.status === 201 && typeof su.json?.sessionToken === 'string') return { session: su.json.sessionToken };
  if (su.status !== 201 && !(su.status === 409 && su.json?.error === 'email_taken')) return fail('signup', su);
  const li = await request(`${checkout}/api/sessions`, { body: { email, password } });
  if (li.status !== 200) return fail('login', li);
  return { session: String(li.json.sessionToken) };
}

/**
 * Reserve with the admission token, pay with the simulated provider, poll the result until it
 * settles (or `deadline`).
 */
export async function purchase(
  checkout: string, sale: string, session: string, token: string, idempotencyKey: string,
  opts: { deadline?: number; pollMs?: number; method?: string; onReserve?: () => void } = {},
): Promise<PurchaseResult> {
  const auth = `Bearer ${session}`;
  opts.onReserve?.();
  const rs = await request(`${checkout}/api/sales/${encodeURIComponent(sale)}/reservations`, {
    headers: { authorization: auth, 'x-admission-token': token, 'idempotency-key': idempotencyKey },
    body: {},
  });
  if (rs.status !== 201) return fail('reserve', rs);
  const pay = await request(`${checkout}/api/reservations/${encodeURIComponent(rs.json.reservationId)}/payment`, {
    headers: { authorization: auth },
    body: { method: opts.method ?? 'test_ok' },
  });
  if (pay.status !== 202 && pay.status !== 200) return fail('pay', pay);
  const deadline = opts.deadline ?? Date.now() + 30_000;
  for (;;) {
    const pr = await request(`${checkout}/api/sales/${encodeURIComponent(sale)}/purchase`, { headers: { authorization: auth } });
    if (pr.status !== 200) return fail('purchase', pr);
    const status = pr.json?.status;
    if (status === 'success') return { kind: 'success', orderId: pr.json.orderId };
    if (status !== 'in_progress' && status !== 'none') return { kind: 'failed', step: 'purchase', code: String(status) };
    if (Date.now() > deadline) return { kind: 'failed', step: 'purchase', code: 'timeout' };
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
  }
}

/** A shopper's checkout after admission: sign up, log in, then `purchase`. */
export async function buy(
  checkout: string, sale: string, email: string, token: string,
  opts: { password?: string; deadline?: number; pollMs?: number; method?: string; onReserve?: () => void } = {},
): Promise<PurchaseResult> {
  const s = await signIn(checkout, email, opts.password);
  if (!('session' in s)) return s;
  return purchase(checkout, sale, s.session, token, email, opts);
}
