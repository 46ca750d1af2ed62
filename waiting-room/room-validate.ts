/**
 * Strict validation of `PUT /admin/rooms/:room` bodies: unknown fields, wrong types, bad dates,
 * out-of-range numbers and bad CIDRs are refused with the field's name. A valid body is a
 * partial update merged over the stored config (or the defaults on creation).
 */
import { isIP } from 'node:net';
import { MAX_TOKEN_TTL_SECONDS } from './tokens.js';
import type { Bucket, RoomConfig } from './room-config.js';

export type Patch = Partial<Omit<RoomConfig, 'limits' | 'captcha'>> & {
  limits?: Partial<Record<'ip' | 'subnet' | 'room', Partial<Bucket>>>;
  captcha?: Partial<RoomConfig['captcha']>;
};
export type Validated = { ok: true; patch: Patch } | { ok: false; field: string; message: string };

class Invalid extends Error {
  constructor(readonly field: string, message: string) { super(message); }
}

const SALE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Invalid(field, `${field} must be an integer from ${min} to ${max}.`);
  return v;
}
function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Invalid(field, `${field} must be a number from ${min} to ${max}.`);
  return v;
}
function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new Invalid(field, `${field} must be true or false.`);
  return v;
}
function date(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(Date.parse(v))) throw new Invalid(field, `${field} must be an ISO-8601 date-time.`);
  return new Date(Date.parse(v)).toISOString();
}
function obj(v: unknown, field: string, allowed: string[]): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Invalid(field, `${field} must be an object.`);
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new Invalid(`${field}.${k}`, `${field}.${k} is not a known field.`);
  return v as Record<string, unknown>;
}

export function isCidr(s: string): boolean {
  const [addr, bits, ...rest] = s.split('/');
  if (rest.length || !addr) return false;
  const family = isIP(addr);
  if (!family) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
function cidrs(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length > 1000) throw new Invalid(field, `${field} must be a list of at most 1000 CIDRs.`);
  v.forEach((c, i) => { if (typeof c !== 'string' || !isCidr(c)) throw new Invalid(`${field}[${i}]`, `${field}[${i}] is not an IPv4 or IPv6 CIDR.`); });
  return v as string[];
}
function bucket(v: unknown, field: string): Partial<Bucket> {
  const b = obj(v, field, ['capacity', 'refillPerSec']);
  const out: Partial<Bucket> = {};
  if (b.capacity !== undefined) out.capacity = int(b.capacity, `${field}.capacity`, 1, 10_000_000);
  if (b.refillPerSec !== undefined) out.refillPerSec = num(b.refillPerSec, `${field}.refillPerSec`, 0.001, 10_000_000);
  return out;
}

const FIELDS = ['room', 'name', 'sale', 'overbook', 'claimSeconds', 'opensAt', 'closesAt', 'prequeueSeconds', 'admitRatePerMin', 'maxActive', 'tokenTtlSeconds', 'checkoutUrl',
  'limits', 'captcha', 'allow', 'block', 'trustedProxies', 'paused', 'closed', 'record', 'version', 'updatedAt'];

export function validateRoomPatch(room: string, body: Record<string, unknown>): Validated {
  try {
    const b = obj(body, 'body', FIELDS);
    const p: Patch = {};
    if (b.room !== undefined && b.room !== room) throw new Invalid('room', 'room must match the URL (or be left out).');
    if (b.sale !== undefined) {
      if (typeof b.sale !== 'string' || !SALE_NAME.test(b.sale)) throw new Invalid('sale', 'sale must be 1-64 letters, digits, "_", "-" or ".".');
      p.sale = b.sale;
    }
    if (b.name !== undefined) {
      if (typeof b.name !== 'string' || b.name.trim() === '' || b.name.length > 80 || /[\u0000-\u001f\u007f]/.test(b.name)) {
        throw new Invalid('name', 'name must be 1-80 characters, without control characters.');
      }
      p.name = b.name.trim();
    }
    if (b.overbook !== undefined) p.overbook = num(b.overbook, 'overbook', 1, 10);
    if (b.claimSeconds !== undefined) p.claimSeconds = int(b.claimSeconds, 'claimSeconds', 10, 3600);
    if (b.opensAt !== undefined) p.opensAt = date(b.opensAt, 'opensAt');
    if (b.closesAt !== undefined) p.closesAt = b.closesAt === null ? null : date(b.closesAt, 'closesAt');
    if (b.prequeueSeconds !== undefined) p.prequeueSeconds = int(b.prequeueSeconds, 'prequeueSeconds', 0, 7 * 86400);
    if (b.admitRatePerMin !== undefined) p.admitRatePerMin = int(b.admitRatePerMin, 'admitRatePerMin', 0, 6_000_000);
    if (b.maxActive !== undefined) p.maxActive = int(b.maxActive, 'maxActive', 1, 100_000_000);
    if (b.tokenTtlSeconds !== undefined) p.tokenTtlSeconds = int(b.tokenTtlSeconds, 'tokenTtlSeconds', 30, MAX_TOKEN_TTL_SECONDS);
    if (b.checkoutUrl !== undefined) {
      let ok = false;
      try { ok = typeof b.checkoutUrl === 'string' && /^https?:$/.test(new URL(b.checkoutUrl).protocol); } catch { ok = false; }
      if (!ok) throw new Invalid('checkoutUrl', 'checkoutUrl must be an http(s) URL.');
      p.checkoutUrl = b.checkoutUrl as string;
    }
    if (b.limits !== undefined) {
      const l = obj(b.limits, 'limits', ['ip', 'subnet', 'room']);
      p.limits = {};
      for (const k of ['ip', 'subnet', 'room'] as const) if (l[k] !== undefined) p.limits[k] = bucket(l[k], `limits.${k}`);
    }
    if (b.captcha !== undefined) {
      const c = obj(b.captcha, 'captcha', ['mode', 'threshold']);
      p.captcha = {};
      if (c.mode !== undefined) {
        if (c.mode !== 'off' && c.mode !== 'suspicious' && c.mode !== 'always') throw new Invalid('captcha.mode', 'captcha.mode must be "off", "suspicious" or "always".');
        p.captcha.mode = c.mode;
      }
      if (c.threshold !== undefined) p.captcha.threshold = num(c.threshold, 'captcha.threshold', 0, 1000);
    }
    if (b.allow !== undefined) p.allow = cidrs(b.allow, 'allow');
    if (b.block !== undefined) p.block = cidrs(b.block, 'block');
    if (b.trustedProxies !== undefined) p.trustedProxies = cidrs(b.trustedProxies, 'trustedProxies');
    if (b.paused !== undefined) p.paused = bool(b.paused, 'paused');
    if (b.closed !== undefined) p.closed = bool(b.closed, 'closed');
    if (b.record !== undefined) p.record = bool(b.record, 'record');
    return { ok: true, patch: p };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, field: e.field, message: e.message };
    throw e;
  }
}

/** Merge a validated patch over a config; returns the new config and the changed fields. */
export function applyPatch(cur: RoomConfig, p: Patch): { next: RoomConfig; changes: { field: string; old: unknown; new: unknown }[] } {
  const next: RoomConfig = structuredClone(cur);
  const changes: { field: string; old: unknown; new: unknown }[] = [];
  const set = (field: string, oldV: unknown, newV: unknown, write: () => void) => {
    if (JSON.stringify(oldV) === JSON.stringify(newV)) return;
    changes.push({ field, old: oldV, new: newV });
    write();
  };
  for (const [k, v] of Object.entries(p)) {
    if (k === 'limits' || k === 'captcha' || v === undefined) continue;
    const key = k as keyof RoomConfig;
    set(k, cur[key], v, () => { (next as unknown as Record<string, unknown>)[k] = v; });
  }
  for (const [k, b] of Object.entries(p.limits ?? {})) {
    const key = k as keyof RoomConfig['limits'];
    const merged = { ...cur.limits[key], ...b };
    set(`limits.${k}`, cur.limits[key], merged, () => { next.limits[key] = merged; });
  }
  if (p.captcha) {
    const merged = { ...cur.captcha, ...p.captcha };
    set('captcha', cur.captcha, merged, () => { next.captcha = merged; });
  }
  return { next, changes };
}
