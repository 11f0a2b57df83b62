// The end-to-end harness: the built Worker in workerd (Miniflare, in-process) against the real
// PostgREST and Postgres that tests/run.sh (or tests/stack/dev.sh) started for this run.
//
// Exposes: `stack` (where everything is), `startWorker(overrides)` (a Worker on a loopback port
// with the bindings of the local stack, overridable per test), `mintToken(claims, opts)` (an
// HS256 Supabase-shaped access token signed with the local secret), `sql(query)` (psql as the
// superuser, for arranging and checking state), `createUser(opts)` (an auth.users row, as
// Supabase Auth makes on sign-up, with a token for it).
import { Miniflare } from 'miniflare';
import { createHmac, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = path.join(root, 'functions/build');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the end-to-end tests through \`npm test\``);
  return v;
}

export const stack = {
  postgrestUrl: need('E2E_POSTGREST_URL'),
  pgPort: need('E2E_PG_PORT'),
  jwtSecret: need('E2E_JWT_SECRET'),
  supabaseUrl: need('E2E_SUPABASE_URL'),
  get issuer() { return `${this.supabaseUrl}/auth/v1`; },
  /** The project's API keys, shaped as Supabase's legacy anon and service_role keys (HS256 JWTs). */
  get anonKey() { return apiKey('anon'); },
  get serviceRoleKey() { return apiKey('service_role'); },
};

function apiKey(role) {
  return mintToken({ iss: 'supabase', ref: 'local', role, iat: 1700000000, exp: 2000000000 });
}

/** The Worker's modules as worker-build writes them: the ES module entry and its compiled wasm. */
function modules() {
  return [
    { type: 'ESModule', path: path.join(buildDir, 'index.js') },
    { type: 'CompiledWasm', path: path.join(buildDir, 'index_bg.wasm') },
  ];
}

/** The bindings of the local stack; tests override or remove (value undefined) single ones. */
export function localBindings(overrides = {}) {
  const b = {
    POSTGREST_URL: stack.postgrestUrl,
    SUPABASE_URL: stack.supabaseUrl,
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
    ...overrides,
  };
  for (const k of Object.keys(b)) if (b[k] === undefined) delete b[k];
  return b;
}

/** Starts the built Worker in workerd on a loopback port. */
export async function startWorker(overrides = {}, { port = 0, log = false } = {}) {
  const mf = new Miniflare({
    modules: modules(),
    modulesRoot: buildDir,
    compatibilityDate: '2026-04-01',
    bindings: localBindings(overrides),
    host: '127.0.0.1',
    port,
    cf: false,
    verbose: log,
    handleRuntimeStdio: log ? undefined : (stdout, stderr) => { stdout.resume(); stderr.resume(); },
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return {
    mf,
    url,
    fetch: (p, init) => fetch(url + p, init),
    dispose: () => mf.dispose(),
  };
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** Claims as Supabase Auth issues them for a signed-in user, for `sub`. */
export function claimsFor(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: stack.issuer, aud: 'authenticated', sub, role: 'authenticated', exp: now + 3600, iat: now,
    email: `${sub.slice(0, 8)}@example.test`, session_id: randomUUID(), is_anonymous: false, aal: 'aal1', ...extra,
  };
}

/** Signs claims with HS256 (the local secret unless `secret` is given). */
export function mintToken(claims, { secret = stack.jwtSecret, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(createHmac('sha256', secret).update(input).digest())}`;
}

/** Runs SQL as the superuser and returns psql's unaligned output. */
export function sql(query) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', stack.pgPort, '-U', 'postgres', '-d', 'postgres', '-c', query], {
    encoding: 'utf8',
  }).trim();
}

/** Runs a query and returns its rows as objects. */
export function sqlRows(query) {
  return JSON.parse(sql(`select coalesce(json_agg(t), '[]') from (${query}) t`));
}

/** Creates a user the way Supabase Auth does on sign-up and returns its id and an access token. */
export function createUser({ anonymous = false } = {}) {
  const id = randomUUID();
  sql(`insert into auth.users (id, email, is_anonymous, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
       values ('${id}', ${anonymous ? 'null' : `'${id}@example.test'`}, ${anonymous}, '{"provider":"email"}', '{}', now(), now())`);
  return { id, token: mintToken(claimsFor(id, { is_anonymous: anonymous })) };
}

/** `Authorization` header for a token. */
export const bearer = (token) => ({ authorization: `Bearer ${token}` });
