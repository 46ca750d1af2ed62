/**
 * Address math for the defences: parse IPv4 and IPv6 text into bytes, print the canonical form,
 * and match addresses against lists of CIDRs (allow, block, trusted proxies).
 *
 * IPv4-mapped IPv6 (`::ffff:1.2.3.4`, `::ffff:102:304`) is treated as the IPv4 address it carries,
 * both in addresses and in CIDRs, so a dual-stack socket and an IPv4 list agree.
 */

/** 4 bytes for IPv4, 16 for IPv6. */
export type AddressBytes = Uint8Array;

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Dotted quad, by hand (it runs on every join). A leading zero is refused: "010" is octal to some parsers. */
function parseV4(s: string): AddressBytes | null {
  const out = new Uint8Array(4);
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return null;
      out[part++] = val;
      val = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && val === 0) return null;
      val = val * 10 + (c - 48);
      if (++digits > 3 || val > 255) return null;
    } else {
      return null;
    }
  }
  if (part !== 3 || digits === 0) return null;
  out[3] = val;
  return out;
}

function parseV6(s: string): AddressBytes | null {
  if (s.length > 45) return null;
  let tail: AddressBytes | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    tail = parseV4(s.slice(lastColon + 1));
    if (!tail) return null;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): string[] | null => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => HEX_GROUP.test(x)) ? g : null;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !rest) return null;
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  const all = [...head, ...new Array<string>(8 - total).fill('0'), ...rest];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

function isV4Mapped(b: AddressBytes): boolean {
  if (b.length !== 16 || b[10] !== 0xff || b[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Parses an address as it may appear in a socket or a forwarding header: surrounding spaces,
 * `[v6]:port`, `v4:port` and a `%zone` are tolerated. IPv4-mapped IPv6 becomes IPv4.
 * Anything else that is not an address gives null.
 */
export function parseAddress(text: string): AddressBytes | null {
  const plain = parseV4(text);
  if (plain) return plain;
  let s = text.trim();
  if (s.length === 0 || s.length > 64) return null;
  if (s[0] === '[') {
    const end = s.indexOf(']');
    if (end < 0) return null;
    const after = s.slice(end + 1);
    if (after !== '' && !/^:\d{1,5}$/.test(after)) return null;
    s = s.slice(1, end);
  } else if (/^[\d.]+:\d{1,5}$/.test(s)) {
    s = s.slice(0, s.indexOf(':'));
  }
  const zone = s.indexOf('%');
  if (zone >= 0 && s.includes(':')) s = s.slice(0, zone);
  if (!s.includes(':')) return parseV4(s);
  const b = parseV6(s);
  if (!b) return null;
  return isV4Mapped(b) ? b.slice(12) : b;
}

/** The canonical text of an address: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatAddress(b: AddressBytes): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** The canonical text of an address, or null when `text` is not one. */
export function canonicalIp(text: string): string | null {
  const b = parseAddress(text);
  return b ? formatAddress(b) : null;
}

export interface Cidr {
  bytes: AddressBytes;
  prefix: number;
}

export class CidrError extends Error {
  override name = 'CidrError';
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). Host bits are cleared. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let raw = addrText.trim();
  // The address part of a CIDR is plain: no port or brackets. An IPv6 zone (`fe80::1%eth0`) says
  // nothing about which packets match, so it is dropped.
  if (/[\[\]]/.test(raw) || /^[\d.]+:\d+$/.test(raw)) throw new CidrError(`not a CIDR: "${text}"`);
  if (raw.includes(':') && raw.includes('%')) raw = raw.slice(0, raw.indexOf('%'));
  const full = raw.includes(':') ? parseV6(raw) : parseV4(raw);
  if (!full) throw new CidrError(`not a CIDR: "${text}"`);
  const max = full.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new CidrError(`bad prefix length in "${text}" (0-${max})`);
    prefix = Number(p);
  }
  let bytes = full;
  if (isV4Mapped(full) && prefix >= 96) {
    bytes = full.slice(12);
    prefix -= 96;
  }
  return { bytes: maskTo(bytes, prefix), prefix };
}

function maskTo(b: AddressBytes, prefix: number): AddressBytes {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.min(8, Math.max(0, prefix - i * 8));
    out[i] = bits === 0 ? 0 : b[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function contains(c: Cidr, a: AddressBytes): boolean {
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== a[i]) return false;
  const bits = c.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (a[full]! & mask) === c.bytes[full];
}

function v4Number(b: AddressBytes): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** A list of CIDRs compiled once; `match` answers the longest matching prefix, or -1. */
export class CidrList {
  readonly size: number;
  /** IPv6 entries as bytes; IPv4 entries as 32-bit network and mask, compared in one step. */
  private readonly cidrs: Cidr[];
  private readonly v4: { net: number; mask: number; prefix: number }[] = [];

  /** Entries that are not CIDRs are left out (lists are validated on PUT; a join never throws). */
  constructor(list: readonly string[]) {
    this.cidrs = [];
    for (const c of list) {
      let cidr: Cidr;
      try { cidr = parseCidr(c); } catch { continue; /* validated on PUT */ }
      if (cidr.bytes.length === 16) this.cidrs.push(cidr);
      else this.v4.push({ net: v4Number(cidr.bytes), mask: cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0, prefix: cidr.prefix });
    }
    this.size = this.cidrs.length + this.v4.length;
  }

  match(a: AddressBytes): number {
    let best = -1;
    if (a.length === 4) {
      const n = v4Number(a);
      for (const c of this.v4) if (c.prefix > best && ((n & c.mask) >>> 0) === c.net) best = c.prefix;
      return best;
    }
    for (const c of this.cidrs) if (c.prefix > best && contains(c, a)) best = c.prefix;
    return best;
  }

  has(a: AddressBytes): boolean {
    return this.match(a) >= 0;
  }
}

const compiled = new WeakMap<readonly string[], CidrList>();

/**
 * The compiled form of a room's list, cached by the array's identity: a room config reloaded
 * from Redis is a new object and compiles again; a hot join path reuses the compiled list.
 * An entry that is not a CIDR is left out (the gateway validates lists on PUT; `invalidCidrs` names them).
 */
export function cidrList(list: readonly string[]): CidrList {
  let c = compiled.get(list);
  if (!c) {
    c = new CidrList(list);
    compiled.set(list, c);
  }
  return c;
}

/** The entries of `list` that are not CIDRs, for validating `PUT /admin/rooms/:room`. */
export function invalidCidrs(list: readonly unknown[]): string[] {
  const bad: string[] = [];
  for (const x of list) {
    if (typeof x !== 'string') { bad.push(String(x)); continue; }
    try { parseCidr(x); } catch { bad.push(x); }
  }
  return bad;
}
