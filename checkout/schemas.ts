/**
 * The shapes of checkout's API, in TypeBox: Fastify validates requests and serialises answers
 * with them, `GET /openapi.json` publishes them, and the rest of checkout takes its types from
 * them (`Static<...>`) instead of restating them.
 *
 * Every text a client sends is refused at the edge when it holds a control character (NUL
 * included: Postgres cannot store it) or a lone UTF-16 surrogate (not text at all: it would be
 * stored as U+FFFD, a different string from the one sent).
 */
import { Type, type Static } from '@fastify/type-provider-typebox';

/** Characters no text input may hold: C0 controls, DEL, lone surrogates (the pattern runs with Ajv's `u` flag). */
const NOT_TEXT = '\\u0000-\\u001f\\u007f\\ud800-\\udfff';
export const TEXT_PATTERN = `^[^${NOT_TEXT}]*$`;
const EMAIL_PART = `[^\\s@${NOT_TEXT}]+`;
export const EMAIL_PATTERN = `^${EMAIL_PART}@${EMAIL_PART}\\.${EMAIL_PART}$`;

/** A string of printable text, `minLength` to `maxLength` characters. */
export const Text = (maxLength: number, minLength = 0) => Type.String({ minLength, maxLength, pattern: TEXT_PATTERN });

/** A string that is one of `values` (JSON Schema `enum`, which OpenAPI 3.0 and 3.1 both read). */
export const OneOf = <const T extends readonly string[]>(values: T) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });

/** An ISO-8601 date-time with its offset (RFC 3339: `2026-12-02T09:00:00Z`); `"1"` is not one. */
export const DateTime = () => Type.String({ format: 'date-time', maxLength: 40 });

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = () => Type.String({ pattern: UUID_PATTERN });

export const SaleParam = Type.Object({ sale: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }, { additionalProperties: false });
export const IdParam = Type.Object({ id: Uuid() }, { additionalProperties: false });

// Accounts

export const Credentials = (minPassword: number) =>
  Type.Object(
    {
      email: Type.String({ pattern: EMAIL_PATTERN, maxLength: 254 }),
      password: Text(200, minPassword),
    },
    { additionalProperties: false },
  );
export const SessionSchema = Type.Object({ sessionToken: Type.String(), expiresAt: Type.String() });
export const SignedUpSchema = Type.Object({ userId: Type.String(), sessionToken: Type.String(), expiresAt: Type.String() });

// Sales

export const SALE_STATES = ['upcoming', 'active', 'ended', 'sold_out'] as const;
export type SaleState = (typeof SALE_STATES)[number];

export const SaleViewSchema = Type.Object({
  sale: Type.String(),
  name: Type.String(),
  priceCents: Type.Integer(),
  currency: Type.String(),
  state: OneOf(SALE_STATES),
  startsAt: Type.String(),
  endsAt: Type.String(),
  total: Type.Integer(),
  available: Type.Integer(),
  reserved: Type.Integer(),
  sold: Type.Integer(),
  reservationSeconds: Type.Integer(),
});
export type SaleView = Static<typeof SaleViewSchema>;

/** The operator's create or update of a sale: a field left out keeps its value. */
export const SaleInputSchema = Type.Object(
  {
    name: Type.Optional(Text(200, 1)),
    priceCents: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
    currency: Type.Optional(Type.String({ pattern: '^[A-Za-z]{3}$' })),
    total: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    startsAt: Type.Optional(DateTime()),
    endsAt: Type.Optional(DateTime()),
    reservationSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);
export type SaleInput = Static<typeof SaleInputSchema>;

export const AuditSchema = Type.Object({ ok: Type.Boolean() }, { additionalProperties: true });

export const PURCHASE_STATUSES = ['success', 'in_progress', 'failed', 'expired', 'cancelled', 'none'] as const;
export const PurchaseSchema = Type.Object({
  status: OneOf(PURCHASE_STATUSES),
  orderId: Type.Optional(Type.String()),
  reservationId: Type.Optional(Type.String()),
  reservationStatus: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  /** The reservation's payment, when one was started: `refunded` when a capture could not be sold and was given back. */
  paymentStatus: Type.Optional(OneOf(['pending', 'succeeded', 'failed', 'refunded'] as const)),
});
export type Purchase = Static<typeof PurchaseSchema>;

// Reservations and payments

export const ReservedSchema = Type.Object({ reservationId: Type.String(), status: OneOf(['reserved'] as const), expiresAt: Type.String() });
export type Reserved = Static<typeof ReservedSchema>;
export const CancelledSchema = Type.Object({ reservationId: Type.String(), status: OneOf(['cancelled'] as const) });

export const TEST_METHODS = ['test_ok', 'test_decline', 'test_timeout'] as const;
export type TestMethod = (typeof TEST_METHODS)[number];
export const PayBodySchema = Type.Object({ method: OneOf(TEST_METHODS) }, { additionalProperties: false });
export const PaymentPendingSchema = Type.Object({ status: OneOf(['payment_pending'] as const), paymentId: Type.String() });

export const EVENT_TYPES = ['payment.processing', 'payment.succeeded', 'payment.failed'] as const;
/**
 * A payment provider's event, as its webhook carries it. The amount and currency are what the
 * provider charged: a success whose amount or currency is not the payment's sells nothing
 * (outcome `amount_mismatch`, orders.ts applyPaymentEvent). Fields
 * the provider may add later are allowed (and ignored).
 */
export const PaymentEventSchema = Type.Object({
  id: Text(200, 1),
  type: OneOf(EVENT_TYPES),
  created: DateTime(),
  data: Type.Object({
    paymentId: Uuid(),
    reservationId: Type.Optional(Uuid()),
    amountCents: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$' })),
    reason: Type.Optional(Text(200)),
  }),
});
export type PaymentEvent = Static<typeof PaymentEventSchema>;

export const EVENT_OUTCOMES = [
  'duplicate',
  'unknown_payment',
  'noted',
  'ignored_final',
  'paid',
  'paid_after_lapse',
  'refunded',
  'failed_released',
  'failed',
  'amount_mismatch',
] as const;
export type EventOutcome = (typeof EVENT_OUTCOMES)[number];
export const WebhookAnswerSchema = Type.Object({ received: Type.Boolean(), outcome: OneOf(EVENT_OUTCOMES) });

// Service

export const HealthSchema = Type.Object({ ok: Type.Boolean(), postgres: Type.Boolean(), redis: Type.Boolean() });
