/** The check both services' OpenAPI tests make of a document's error codes against the service's error table. */
import type { Test } from 'tap';
import type { ErrorSpec } from '../shared/errors.js';
import { documentedErrors, type OpenApiDocument } from '../shared/openapi.js';

/** Every error code the document declares is in `table`, with the status the document gives it; at least `least` are declared. */
export function checkDocumentedErrors(t: Test, doc: OpenApiDocument, table: Record<string, ErrorSpec>, least: number): void {
  const errors = documentedErrors(doc);
  t.ok(errors.length > least, `error codes are declared per route (${errors.length})`);
  for (const e of errors) {
    const spec = table[e.code];
    t.ok(spec, `${e.operation} ${e.status} ${e.code} is in the error table`);
    if (spec) t.equal(spec.status, e.status, `${e.code} is ${spec.status} in the table and in the document`);
  }
}
