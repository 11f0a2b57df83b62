// The comparison Worker for `npm run bench`: the same GET /v1/balance and POST /v1/generate (the
// RPC, then the queue wake-up) as the Rust Worker, written
// the way a TypeScript Worker on Supabase usually is: the HS256 access token verified with
// WebCrypto (crypto.subtle, the key imported once per isolate), then `.rpc('get_balance')` through
// @supabase/postgrest-js with the caller's token. Only for measuring; never deployed. Bundled by
// tests/bench/run.sh with esbuild and run in the same workerd (Miniflare) as the Rust Worker.
import { PostgrestClient } from '@supabase/postgrest-js';

interface Env {
  POSTGREST_URL: string;
  SUPABASE_URL: string;
  SUPABASE_JWT_SECRET: string;
  SUPABASE_ANON_KEY?: string;
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

/** The same claim rules as shared::jwt for the fields that matter here: alg, signature, exp, aud, iss, sub. */
async function verify(token: string, env: Env): Promise<Record<string, unknown> | null> {
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

export default {
  // One structured log line per request, as the Rust Worker writes (same work, fair comparison).
  async fetch(req: Request, env: Env): Promise<Response> {
    const started = Date.now();
    const requestId = req.headers.get('cf-ray') ?? crypto.randomUUID().replace(/-/g, '').slice(0, 16);
    const path = new URL(req.url).pathname;
    const known = path === '/v1/balance' || path === '/v1/generate';
    const res = path === '/v1/balance' ? await balance(req, env) : path === '/v1/generate' ? await generate(req, env) : error(404, 'not_found', 'No such route.');
    res.headers.set('x-request-id', requestId);
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
  let request: unknown;
  try {
    request = JSON.parse(await req.text());
  } catch {
    return error(400, 'invalid_json', 'The body is not valid JSON.');
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return error(400, 'invalid_request', 'The body must be a JSON object.');
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (env.SUPABASE_ANON_KEY) headers.apikey = env.SUPABASE_ANON_KEY;
  const db = new PostgrestClient(env.POSTGREST_URL, { headers });
  const { data, error: err, status } = await db.rpc('generate', { p_idempotency_key: key, p_request: request });
  if (err) return error(status >= 500 || status === 0 ? 503 : status, 'service_unavailable', 'The request failed.');
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
  const { data, error: err, status } = await db.rpc('get_balance');
  if (err) return error(status >= 500 || status === 0 ? 503 : status, 'service_unavailable', 'The service is temporarily unavailable.');
  return new Response(JSON.stringify(data), {
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}
