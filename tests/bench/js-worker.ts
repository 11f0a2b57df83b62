// The comparison Worker for `npm run bench`: the same GET /v1/balance and POST /v1/generate (the
// RPC, then the queue wake-up) as the Rust Worker, written
// the way a TypeScript Worker on Supabase usually is: the HS256 access token verified with
// WebCrypto (crypto.subtle, the key imported once per isolate), then `.rpc('get_balance')` through
// @supabase/postgrest-js with the caller's token. Only for measuring; never deployed. Bundled by
// tests/bench/run.sh with esbuild and run in the same workerd (Miniflare) as the Rust Worker.
//
// Built twice by tests/bench/run.sh: as is (`TS`), and with `SAME_RULES` defined true (`TS, same
// rules`), which adds most of what the Rust Worker does on these routes and the minimal twin skips:
// - the token (at most 4096 bytes, `typ` JWT when present) checked by `jose` (the package
//   TypeScript code on Supabase uses) with the Rust Worker's claim rules (issuer, audience,
//   algorithm, `exp`/`iat`/`sub`/`session_id` required, `nbf`, `crit`, 30 s skew, at most 7 days
//   between `iat` and `exp`, role, UUID `sub`), the HMAC key imported once per isolate;
// - unknown methods refused (405);
// - the PostgREST call bounded by `POSTGREST_TIMEOUT_MS` (an `AbortSignal`; 504 when it fired);
// - the body's media type and declared size checked before it is read, its size after; the
//   Idempotency-Key's shape (1 to 255 visible ASCII characters);
// - `Vary: Origin` when CORS origins are configured.
// Not added: the refusal of a repeated JSON key (in the token and the body) and of NUL escapes,
// which JSON.parse cannot see without a second parser.
import { PostgrestClient } from '@supabase/postgrest-js';
import { jwtVerify } from 'jose';

declare const SAME_RULES: boolean;

interface Env {
  POSTGREST_URL: string;
  SUPABASE_URL: string;
  SUPABASE_JWT_SECRET: string;
  SUPABASE_ANON_KEY?: string;
  POSTGREST_TIMEOUT_MS?: string;
  CORS_ALLOWED_ORIGINS?: string;
  JOBS_QUEUE?: { send(message: unknown, options?: unknown): Promise<void> };
}

let keyPromise: Promise<CryptoKey> | undefined;
const enc = new TextEncoder();

function b64urlDecode(s: string): Uint8Array {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function error(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** SAME_RULES: the claim rules of shared::jwt, through jose (given the imported key, as the minimal twin). */
async function verifySame(token: string, env: Env): Promise<Record<string, unknown> | null> {
  if (token.length > 4096) return null;
  keyPromise ??= crypto.subtle.importKey('raw', enc.encode(env.SUPABASE_JWT_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  try {
    const { payload, protectedHeader } = await jwtVerify(token, await keyPromise, {
      algorithms: ['HS256'], issuer: `${env.SUPABASE_URL}/auth/v1`, audience: 'authenticated',
      clockTolerance: 30, maxTokenAge: '7d', requiredClaims: ['exp', 'iat', 'sub', 'session_id'],
    });
    if (protectedHeader.typ !== undefined && protectedHeader.typ.toUpperCase() !== 'JWT') return null;
    const { exp, iat, sub, role, session_id: session } = payload as Record<string, unknown>;
    if (typeof exp !== 'number' || typeof iat !== 'number' || exp - iat <= 0 || exp - iat > 7 * 86400) return null;
    if (role !== 'authenticated' || typeof sub !== 'string' || !UUID.test(sub)) return null;
    if (typeof session !== 'string' || session.length === 0 || session.length > 64) return null;
    return payload as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The same claim rules as shared::jwt for the fields that matter here: alg, signature, exp, aud, iss, sub. */
async function verify(token: string, env: Env): Promise<Record<string, unknown> | null> {
  if (SAME_RULES) return verifySame(token, env);
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header: { alg?: string };
  try {
    header = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[0])));
  } catch {
    return null;
  }
  if (header.alg !== 'HS256') return null;
  keyPromise ??= crypto.subtle.importKey('raw', enc.encode(env.SUPABASE_JWT_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  const ok = await crypto.subtle.verify('HMAC', await keyPromise, b64urlDecode(parts[2]), enc.encode(`${parts[0]}.${parts[1]}`));
  if (!ok) return null;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(new TextDecoder().decode(b64urlDecode(parts[1])));
  } catch {
    return null;
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp + 30 < now) return null;
  if (claims.aud !== 'authenticated' || claims.iss !== `${env.SUPABASE_URL}/auth/v1`) return null;
  if (typeof claims.sub !== 'string' || claims.role !== 'authenticated') return null;
  return claims;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** SAME_RULES: the PostgREST call bounded by POSTGREST_TIMEOUT_MS, as the Rust Worker's `db::exchange`. */
function bounded<T extends { abortSignal(signal: AbortSignal): T }>(query: T, env: Env): { query: T; signal?: AbortSignal } {
  if (!SAME_RULES) return { query };
  const signal = AbortSignal.timeout(Number(env.POSTGREST_TIMEOUT_MS ?? 10000));
  return { query: query.abortSignal(signal), signal };
}

/** A failed PostgREST call: 504 when the deadline ended it (SAME_RULES), else 503 or PostgREST's status. */
function failed(status: number, message: string, signal?: AbortSignal): Response {
  if (signal?.aborted) return error(504, 'upstream_timeout', 'The database did not answer in time.');
  return error(status >= 500 || status === 0 ? 503 : status, 'service_unavailable', message);
}

export default {
  // One structured log line per request, as the Rust Worker writes (same work, fair comparison).
  async fetch(req: Request, env: Env): Promise<Response> {
    const started = Date.now();
    const requestId = req.headers.get('cf-ray') ?? crypto.randomUUID().replace(/-/g, '').slice(0, 16);
    const path = new URL(req.url).pathname;
    const known = path === '/v1/balance' || path === '/v1/generate';
    const res = SAME_RULES && !METHODS.has(req.method) ? error(405, 'method_not_allowed', 'This method is not supported.') : path === '/v1/balance' ? await balance(req, env) : path === '/v1/generate' ? await generate(req, env) : error(404, 'not_found', 'No such route.');
    res.headers.set('x-request-id', requestId);
    if (SAME_RULES && env.CORS_ALLOWED_ORIGINS) res.headers.append('vary', 'Origin');
    console.log(JSON.stringify({ request_id: requestId, method: req.method, route: known ? path : '-', status: res.status, duration_ms: Date.now() - started }));
    return res;
  },
};

/** POST /v1/generate: token, Idempotency-Key, a JSON object body passed to the `generate` RPC. */
async function generate(req: Request, env: Env): Promise<Response> {
  if (req.method !== 'POST') return error(405, 'method_not_allowed', 'This route does not accept that method.');
  const auth = req.headers.get('authorization') ?? '';
  if (!auth.startsWith('Bearer ')) return error(401, 'missing_token', 'A bearer token is required.');
  const token = auth.slice(7);
  if (!(await verify(token, env))) return error(401, 'invalid_token', 'The access token is not valid for this project.');
  const key = req.headers.get('idempotency-key');
  if (!key) return error(400, 'idempotency_key_required', 'An Idempotency-Key header is required for this operation.');
  if (SAME_RULES && (key.length > 255 || !/^[\x21-\x7e]+$/.test(key))) return error(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1 to 255 visible ASCII characters.');
  if (SAME_RULES) {
    if ((req.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase() !== 'application/json') return error(415, 'unsupported_media_type', 'The body must be application/json.');
    const declared = Number(req.headers.get('content-length') ?? 'NaN');
    if (declared > 16384) return error(413, 'payload_too_large', 'The body is too large.');
  }
  let request: unknown;
  try {
    const text = await req.text();
    if (SAME_RULES && (text.length > 16384 || text.length === 0)) return error(400, 'invalid_json', 'The body is empty or too large.');
    request = JSON.parse(text);
  } catch {
    return error(400, 'invalid_json', 'The body is not valid JSON.');
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return error(400, 'invalid_request', 'The body must be a JSON object.');
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (env.SUPABASE_ANON_KEY) headers.apikey = env.SUPABASE_ANON_KEY;
  const db = new PostgrestClient(env.POSTGREST_URL, { headers });
  const call = bounded(db.rpc('generate', { p_idempotency_key: key, p_request: request }), env);
  const { data, error: err, status } = await call.query;
  if (err) return failed(status, 'The request failed.', call.signal);
  const { replayed, response } = data as { replayed: boolean; response: { job: { id: string } } };
  // As the Rust Worker: a failed (or, in the bench, absent) queue is logged and the client still gets 202.
  if (!replayed) {
    try {
      if (!env.JOBS_QUEUE) throw new Error('binding_missing');
      await env.JOBS_QUEUE.send({ type: 'job.created', job_id: response.job.id }, { contentType: 'json' });
    } catch (e) {
      console.error(JSON.stringify({ event: 'enqueue_failed', job_id: response.job.id, reason: String((e as Error).message) }));
    }
  }
  const res = new Response(JSON.stringify(response), {
    status: 202,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', location: `/v1/jobs/${response.job.id}` },
  });
  if (replayed) res.headers.set('idempotent-replayed', 'true');
  return res;
}

async function balance(req: Request, env: Env): Promise<Response> {
  if (req.method !== 'GET') return error(405, 'method_not_allowed', 'This route does not accept that method.');
  const auth = req.headers.get('authorization') ?? '';
  if (!auth.startsWith('Bearer ')) return error(401, 'missing_token', 'A bearer token is required.');
  const token = auth.slice(7);
  if (!(await verify(token, env))) return error(401, 'invalid_token', 'The access token is not valid for this project.');
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (env.SUPABASE_ANON_KEY) headers.apikey = env.SUPABASE_ANON_KEY;
  const db = new PostgrestClient(env.POSTGREST_URL, { headers });
  const call = bounded(db.rpc('get_balance'), env);
  const { data, error: err, status } = await call.query;
  if (err) return failed(status, 'The service is temporarily unavailable.', call.signal);
  return new Response(JSON.stringify(data), {
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}
