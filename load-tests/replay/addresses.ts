/**
 * Source addresses for a replay: every hashed subnet of a recording gets its own /24 inside
 * 127.0.0.0/8 (127.a.b.0/24, in order of first appearance), and every hashed IP a host in its
 * subnet's /24. The same hashed IP always maps to the same address and the same hashed subnet to
 * the same /24, so the gateway's per-IP and per-subnet buckets see what production saw.
 * Linux routes all of 127.0.0.0/8 to loopback, so any of these can be bound with `localAddress`.
 */
export const MAX_SUBNETS = 255 * 256; // 127.1.0.0/24 .. 127.255.255.0/24
export const HOSTS_PER_SUBNET = 254; // .1 .. .254

export class AddressMap {
  private readonly subnets = new Map<string, { index: number; hosts: Map<string, number> }>();

  /** The loopback address standing in for `ip` of `subnet` (both hashed). */
  addressOf(ip: string, subnet: string): string {
    let s = this.subnets.get(subnet);
    if (!s) {
      if (this.subnets.size >= MAX_SUBNETS) throw new RangeError(`more than ${MAX_SUBNETS} subnets in one replay`);
      s = { index: this.subnets.size, hosts: new Map() };
      this.subnets.set(subnet, s);
    }
    let h = s.hosts.get(ip);
    if (h === undefined) {
      // Past 254 hosts a /24 is full: later IPs share hosts (round robin), which only makes the
      // per-IP limits stricter for that subnet than in production.
      h = (s.hosts.size % HOSTS_PER_SUBNET) + 1;
      s.hosts.set(ip, h);
    }
    const a = 1 + (s.index >> 8);
    const b = s.index & 255;
    return `127.${a}.${b}.${h}`;
  }

  get subnetCount(): number {
    return this.subnets.size;
  }
}

export function subnet24(addr: string): string {
  return addr.split('.').slice(0, 3).join('.') + '.0/24';
}
