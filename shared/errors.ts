/**
 * The error body of the contract: `{error, message, ...fields}`.
 * Each service keeps its own table of codes (waiting-room/errors.ts, checkout/errors.ts);
 * this is only the shape they share.
 */
export interface ErrorBody {
  error: string;
  message: string;
  [field: string]: unknown;
}

/** The `Retry-After` (seconds) of every 503 `unavailable`, on both services: the store is expected back within seconds. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export function errorBody(code: string, spec: ErrorSpec, fields: Record<string, unknown> = {}, message?: string): ErrorBody {
  return { error: code, message: message ?? spec.message, ...fields };
}

/**
 * One line saying what went wrong, for a person: the message and the error code (`EADDRINUSE`,
 * a Postgres SQLSTATE), the errors inside an AggregateError (a connection refused on every address
 * has no message of its own), and the causes. Never `undefined`.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) {
    if (err === undefined || err === null) return 'failed without saying why (no error was given)';
    return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  }
  const code = (err as { code?: unknown }).code;
  let text = err.message || err.name;
  if (code !== undefined && !text.includes(String(code))) text += ` (${String(code)})`;
  if (err instanceof AggregateError && err.errors.length) {
    const inner = [...new Set(err.errors.map((e) => describeError(e)))];
    text = err.message ? `${text}: ${inner.join('; ')}` : inner.join('; ');
  }
  if (err.cause !== undefined) text += `; caused by: ${describeError(err.cause)}`;
  return text;
}
