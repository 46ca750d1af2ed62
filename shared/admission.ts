/** The admission token of docs/api.md section 2: the claims both services agree on. */
export const ADMISSION_ISSUER = 'waiting-room';
export const ADMISSION_AUDIENCE = 'checkout';
export const ADMISSION_ALG = 'EdDSA';
/** Default token lifetime (seconds) when a room does not set `tokenTtlSeconds`. */
export const DEFAULT_TOKEN_TTL_SECONDS = 600;
/**
 * The longest token lifetime (`exp - iat`, seconds) a room may set (`tokenTtlSeconds`, checked
 * in waiting-room/schemas.ts); checkout refuses any token that claims a longer one.
 */
export const MAX_TOKEN_TTL_SECONDS = 3600;
/** Clock skew checkout tolerates on `exp`/`iat`/`nbf` (seconds). */
export const ADMISSION_CLOCK_SKEW_SECONDS = 30;

export interface AdmissionClaims {
  iss: typeof ADMISSION_ISSUER;
  aud: typeof ADMISSION_AUDIENCE;
  /** The visitor id (the signed `wr_vid` value). */
  sub: string;
  room: string;
  sale: string;
  ticket: number;
  jti: string;
  iat: number;
  exp: number;
}
