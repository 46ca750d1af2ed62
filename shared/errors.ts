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
