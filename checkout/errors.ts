/**
 * Every error checkout answers, in one table: code → HTTP status + human message.
 * Handlers never invent codes inline; they return `fail(code)` or throw `CheckoutError`.
 */
import { Type, type TUnsafe } from '@fastify/type-provider-typebox';
import { errorBody, type ErrorBody, type ErrorSpec } from '../shared/errors.js';
import { errorResponses as errorResponsesOf } from '../shared/openapi.js';

export const ERRORS = {
  bad_request: { status: 400, message: 'The request is not in the documented shape.' },
  unauthenticated: { status: 401, message: 'Log in first: the session token is missing, invalid or expired.' },
  unauthorized: { status: 401, message: 'This operator route needs a valid admin token.' },
  bad_credentials: { status: 401, message: 'That email and password do not match an account.' },
  bad_signature: { status: 401, message: 'The webhook signature is missing or does not match.' },
  admission_invalid: { status: 403, message: 'The admission token is not valid.' },
  admission_expired: { status: 403, message: 'The admission token has expired.' },
  admission_used: { status: 403, message: 'This admission token has already been used for a reservation.' },
  admission_wrong_sale: { status: 403, message: 'This admission token is for another sale.' },
  forbidden: { status: 403, message: 'This reservation belongs to another account.' },
  not_found: { status: 404, message: 'Nothing is here.' },
  unknown_sale: { status: 404, message: 'There is no such sale.' },
  unknown_reservation: { status: 404, message: 'There is no such reservation.' },
  unknown_payment: { status: 404, message: 'There is no such payment.' },
  email_taken: { status: 409, message: 'An account with this email already exists.' },
  sold_out: { status: 409, message: 'Every unit is taken right now.' },
  already_purchased: { status: 409, message: 'You already have an order for this sale.' },
  stock_below_committed: { status: 409, message: 'Stock cannot go below what is already reserved and sold.' },
  reservation_not_payable: { status: 409, message: 'This reservation can no longer be paid.' },
  reservation_not_cancellable: { status: 409, message: 'This reservation can no longer be cancelled.' },
  idempotency_key_reused: { status: 409, message: 'This idempotency key was used for another request.' },
  request_timeout: { status: 408, message: 'The request was not sent in time.' },
  sale_ended: { status: 410, message: 'This sale has ended.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  sale_not_started: { status: 425, message: 'This sale has not started yet.' },
  rate_limited: { status: 429, message: 'Too many requests: slow down.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal: { status: 500, message: 'Something went wrong on our side.' },
  unavailable: { status: 503, message: 'A backing service does not answer.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class CheckoutError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, readonly fields: Record<string, unknown> = {}, message?: string) {
    super(message ?? ERRORS[code].message);
    this.status = ERRORS[code].status;
  }
  body(): ErrorBody {
    return errorBody(this.code, ERRORS[this.code], this.fields, this.message);
  }
}

/** The error body of `code`, with optional extra fields. */
export function bodyOf(code: ErrorCode, fields: Record<string, unknown> = {}): ErrorBody {
  return errorBody(code, ERRORS[code], fields);
}

type StatusOf<C extends ErrorCode> = (typeof ERRORS)[C]['status'];

/**
 * A route's error responses, declared by code: one schema per status whose `error` lists the
 * codes (`errorResponses('sold_out', 'already_purchased')` → `{409: {error: enum [...]}}`).
 * The server adds the codes every route may answer (shared/openapi.ts `addErrorResponses`).
 */
export function errorResponses<const C extends readonly ErrorCode[]>(...codes: C): { [S in StatusOf<C[number]>]: TUnsafe<ErrorBody> } {
  const bySt = errorResponsesOf(ERRORS, codes);
  return Object.fromEntries(Object.entries(bySt).map(([s, schema]) => [s, Type.Unsafe<ErrorBody>(schema as never)])) as never;
}
