/**
 * At most one event per key per window: the first of each key goes out, the rest within `windowMs`
 * are counted, and the next one let through says how many were held back. Used where a fault
 * repeats per request or per reconnect (Redis client errors: shared/redis.ts rateLimitErrors;
 * "redis unavailable" warnings: shared/log.ts throttledWarn).
 */
export function perWindow(windowMs: number, now: () => number = Date.now): (key: string) => number | null {
  const seen = new Map<string, { at: number; held: number }>();
  return (key) => {
    const t = now();
    const last = seen.get(key);
    if (last && t - last.at < windowMs) {
      last.held++;
      return null;
    }
    if (seen.size > 100) seen.clear();
    seen.set(key, { at: t, held: 0 });
    return last?.held ?? 0;
  };
}
