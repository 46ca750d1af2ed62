/**
 * What both services' OpenAPI documents share: error responses declared by code from a
 * service's error table, and the checks a test runs over a generated document.
 *
 * An error response is the contract's `{error, message, ...fields}` with `error` listing the
 * codes the route may answer with that status; a route that declares `409` for
 * `sold_out` and `already_purchased` gets one schema with `enum: [sold_out, already_purchased]`.
 * The schemas are plain JSON Schema, so they serve validation and serialisation as well as
 * the document.
 */
import type { ErrorSpec } from './errors.js';

export interface ErrorResponseSchema {
  type: 'object';
  description: string;
  required: ['error', 'message'];
  properties: { error: { type: 'string'; enum: string[] }; message: { type: 'string' } };
  additionalProperties: true;
}

/** One response schema per status for `codes`, looked up in `table`. */
export function errorResponses<C extends string>(table: Record<C, ErrorSpec>, codes: readonly C[]): Record<number, ErrorResponseSchema> {
  const out: Record<number, ErrorResponseSchema> = {};
  for (const code of codes) {
    const spec = table[code];
    if (!spec) throw new Error(`error code ${code} is not in the error table`);
    const cur = out[spec.status];
    if (cur) {
      if (!cur.properties.error.enum.includes(code)) cur.properties.error.enum.push(code);
      cur.description = cur.properties.error.enum.join(', ');
    } else out[spec.status] = errorSchema([code]);
  }
  return out;
}

function errorSchema(codes: string[]): ErrorResponseSchema {
  return {
    type: 'object',
    description: codes.join(', '),
    required: ['error', 'message'],
    properties: { error: { type: 'string', enum: codes }, message: { type: 'string' } },
    additionalProperties: true,
  };
}

const isErrorSchema = (s: unknown): s is ErrorResponseSchema =>
  typeof s === 'object' && s !== null && Array.isArray((s as ErrorResponseSchema).properties?.error?.enum);

/**
 * Adds `codes` to a route's response map (in place), merging with the error codes it already
 * declares for the same status. A status the route declares with a success schema is left alone.
 */
export function addErrorResponses<C extends string>(response: Record<string | number, unknown>, table: Record<C, ErrorSpec>, codes: readonly C[]): void {
  for (const [status, schema] of Object.entries(errorResponses(table, codes))) {
    const cur = response[status];
    if (cur === undefined) response[status] = schema;
    else if (isErrorSchema(cur)) {
      for (const code of schema.properties.error.enum) if (!cur.properties.error.enum.includes(code)) cur.properties.error.enum.push(code);
      cur.description = cur.properties.error.enum.join(', ');
    }
  }
}

/** The minimal shape of an OpenAPI 3 document that the checks below read. */
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Every operation of the document as `METHOD /path/{param}`. */
export function documentedOperations(doc: OpenApiDocument): string[] {
  return Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${p}`));
}

/** Every error code the document declares, with the status and operation that declares it. */
export function documentedErrors(doc: OpenApiDocument): { operation: string; status: number; code: string }[] {
  const out: { operation: string; status: number; code: string }[] = [];
  for (const [p, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      for (const [status, r] of Object.entries(op.responses ?? {})) {
        for (const media of Object.values(r.content ?? {})) {
          const s = media.schema as { properties?: { error?: { enum?: string[] } } } | undefined;
          for (const code of s?.properties?.error?.enum ?? []) out.push({ operation: `${m.toUpperCase()} ${p}`, status: Number(status), code });
        }
      }
    }
  }
  return out;
}

/** `/api/sales/:sale` as OpenAPI writes it: `/api/sales/{sale}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
