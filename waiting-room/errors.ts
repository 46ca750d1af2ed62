/**
 * The gateway's error table (docs/api.md section 1): every code a route may answer, with its
 * HTTP status and default message. Handlers pick a code from here; they never invent one.
 */
import type { ErrorSpec } from '../shared/errors.js';

export const ERRORS = {
  bad_request: { status: 400, message: 'The request is not the documented shape.' },
  unauthorized: { status: 401, message: 'This route needs authorization: Bearer <ADMIN_TOKEN>.' },
  captcha_required: { status: 403, message: 'Please complete the CAPTCHA to join the queue.' },
  captcha_failed: { status: 403, message: 'The CAPTCHA could not be verified. Please try again.' },
  blocked: { status: 403, message: 'Requests from your network are blocked for this room.' },
  unknown_room: { status: 404, message: 'There is no such room.' },
  not_in_queue: { status: 404, message: 'You are not in this queue. Join it first.' },
  not_found: { status: 404, message: 'There is nothing here.' },
  not_yet: { status: 409, message: 'Your turn has not come yet.' },
  not_open: { status: 409, message: 'The queue is not open yet.' },
  sold_out: { status: 409, message: 'Everything is sold.' },
  closed: { status: 409, message: 'The room is closed.' },
  payload_too_large: { status: 413, message: 'The request body is larger than 4 KiB.' },
  rate_limited: { status: 429, message: 'Too many requests. Please retry after a moment.' },
  internal: { status: 500, message: 'Something went wrong on our side.' },
  unavailable: { status: 503, message: 'The service is temporarily unavailable.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 204: '204 No Content', 302: '302 Found', 400: '400 Bad Request', 401: '401 Unauthorized',
  403: '403 Forbidden', 404: '404 Not Found', 405: '405 Method Not Allowed', 409: '409 Conflict',
  413: '413 Payload Too Large', 429: '429 Too Many Requests', 500: '500 Internal Server Error', 503: '503 Service Unavailable',
};
