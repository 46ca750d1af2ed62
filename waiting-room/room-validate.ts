/**
 * `PUT /admin/rooms/:room` bodies: checked against `RoomPatchBody` (schemas.ts, the schema the
 * OpenAPI document publishes), which refuses unknown fields, wrong types, bad dates, out-of-range
 * numbers and bad CIDRs with the field's name. A valid body is a partial update merged over the
 * stored config (or the defaults on creation): dates normalised to UTC, the name trimmed.
 */
import type { Bucket, RoomConfig } from './room-config.js';
import { RoomPatchBody, validator } from './schemas.js';

export type Patch = Partial<Omit<RoomConfig, 'limits' | 'captcha'>> & {
  limits?: Partial<Record<'ip' | 'subnet' | 'room', Partial<Bucket>>>;
  captcha?: Partial<RoomConfig['captcha']>;
};
export type Validated = { ok: true; patch: Patch } | { ok: false; field: string; message: string };

const checkPatch = validator(RoomPatchBody);
const utc = (v: string) => new Date(Date.parse(v)).toISOString();

export function validateRoomPatch(room: string, body: Record<string, unknown>): Validated {
  const v = checkPatch(body);
  if (!v.ok) return v;
  const { version: _v, updatedAt: _u, room: named, ...b } = body as RoomPatchBody;
  if (named !== undefined && named !== room) return { ok: false, field: 'room', message: 'room must match the URL (or be left out).' };
  const p: Patch = b as Patch;
  if (b.name !== undefined) p.name = b.name.trim();
  if (b.opensAt !== undefined) p.opensAt = utc(b.opensAt);
  if (b.closesAt) p.closesAt = utc(b.closesAt);
  return { ok: true, patch: p };
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
