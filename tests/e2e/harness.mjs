// The end-to-end harness: the built Worker in workerd (Miniflare, in-process) against the real
// PostgREST and Postgres that tests/run.sh (or tests/stack/dev.sh) started for this run.
//
// Exposes: `stack` (where everything is), `startWorker(overrides)` (a Worker on a loopback port
// with the bindings of the local stack, overridable per test), `mintToken(claims, opts)` (an
// HS256 Supabase-shaped access token signed with the local secret), `sql(query)` (psql as the
// superuser, for arranging and checking state), `session()` (a psql session kept open, for holding
// locks in a transaction of the test's own), `setClock(when)` / `clearClock()` (the business
// clock of every session, PostgREST's included), `createUser(opts)` (an auth.users row, as
// Supabase Auth makes on sign-up, with a token for it), `signPipeline(body)` and `signUpload(..)` (a pipeline callback
// signature), and each Worker's `queued` list: the messages its JOBS_QUEUE producer sent, as a
// queue consumer (a second Worker in the same workerd) received them.
//
// Every response a test reads through `w.fetch` is recorded (method, route, status, body) so that
// zz-openapi.test.mjs can check them all against the OpenAPI document.
import { Miniflare } from 'miniflare';
import { createHmac, randomUUID } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
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
    PIPELINE_SIGNING_SECRET: PIPELINE_SECRET,
    CORS_ALLOWED_ORIGINS: 'https://app.example.test',
    ...overrides,
  };
  for (const k of Object.keys(b)) if (b[k] === undefined) delete b[k];
  return b;
}

/** The local pipeline callback secret. */
export const PIPELINE_SECRET = 'pipeline-local-secret-0123456789abcdef';

/** A `Pipeline-Signature` header for `body` (the Stripe scheme), at time `t`, with `secret`. */
export function signPipeline(body, { t = Math.floor(Date.now() / 1000), secret = PIPELINE_SECRET } = {}) {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** The first line of an upload's signed description (shared::outputs::UPLOAD_SIGNATURE_DOMAIN). */
export const UPLOAD_SIGNATURE_DOMAIN = 'outputs-upload-v1';

/**
 * What the pipeline signs for an upload (PUT /v1/pipeline/jobs/{id}/assets/{name}): the domain
 * line, then method, path, Content-Length, Content-Type, declared SHA-256, worker id and attempt.
 */
export function uploadDescription({ path, length, contentType, sha256, workerId, attempt }) {
  return [UPLOAD_SIGNATURE_DOMAIN, 'PUT', path, length, contentType, sha256, workerId, attempt].join('\n');
}

/** A `Pipeline-Signature` header for an upload: the usual scheme over its description. */
export function signUpload(upload, options = {}) {
  return signPipeline(uploadDescription(upload), options);
}

export const responsesFile = path.join(root, '.local/e2e-responses.jsonl');

/** Receives what the queue consumer Worker forwards: one HTTP server per test process. */
let sink;
async function queueSink() {
  if (sink) return sink;
  const received = [];
  const listeners = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const msg = JSON.parse(body);
      (received[msg.worker] ??= []).push(msg.body);
      for (const l of listeners[msg.worker] ?? []) l(msg.body);
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  sink = { url: `http://127.0.0.1:${server.address().port}`, received, listeners };
  return sink;
}

// The consumer: forwards each message of the `jobs` queue to the sink, tagged with its Worker.
const consumerScript = `export default {
  async queue(batch, env) {
    for (const m of batch.messages) {
      await fetch(env.SINK_URL, { method: 'POST', body: JSON.stringify({ worker: env.WORKER_TAG, body: m.body }) });
      m.ack();
    }
  },
};`;

let workers = 0;

/** Appends each whole line the streams write to `lines` (a chunk may end inside a line). */
export function collectLines(streams, lines) {
  for (const stream of streams) {
    let rest = '';
    stream.on('data', (chunk) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop();
      lines.push(...parts);
    });
  }
}

/** The first of the Worker's JSON log lines (a line may carry a prefix before its `{`) with this `event`. */
export function logEvent(lines, event) {
  return lines.map((l) => l.slice(l.indexOf('{'))).filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l)).find((l) => l.event === event);
}

/**
 * Starts the built Worker in workerd on a loopback port, with a JOBS_QUEUE producer (consumed by a
 * second Worker that forwards to this process), the drafts rate limiter (`draftsPerMinute`) and the
 * OUTPUTS R2 bucket (in memory, or persisted in the folder `r2Persist`). `bucket()` reads that
 * bucket directly (tests check what is stored).
 */
export async function startWorker(overrides = {}, { port = 0, log = false, draftsPerMinute = 1000, logLines = null, r2Persist = false } = {}) {
  const s = await queueSink();
  const tag = String(workers++);
  const mf = new Miniflare({
    host: '127.0.0.1',
    port,
    verbose: log,
    // Lets tests fire the cron trigger: GET /cdn-cgi/handler/scheduled.
    unsafeTriggerHandlers: true,
    r2Persist,
    handleRuntimeStdio: log ? undefined : (stdout, stderr) => {
      if (logLines) {
        // The Worker's console lines (console.log on stdout, console.error on stderr), for tests of
        // what it logs (and does not).
        collectLines([stdout, stderr], logLines);
      } else {
        stdout.resume();
        stderr.resume();
      }
    },
    workers: [
      {
        name: 'api',
        modules: modules(),
        modulesRoot: buildDir,
        compatibilityDate: '2026-04-01',
        bindings: localBindings(overrides),
        queueProducers: { JOBS_QUEUE: 'jobs' },
        ratelimits: { DRAFTS_RATE_LIMITER: { simple: { limit: draftsPerMinute, period: 60 } } },
        // Generated files: Miniflare's R2, in memory (tests) or in a folder (`npm run dev`: .local/r2).
        r2Buckets: { OUTPUTS: 'outputs' },
        cf: false,
      },
      {
        name: 'pipeline-consumer',
        modules: true,
        script: consumerScript,
        compatibilityDate: '2026-04-01',
        bindings: { SINK_URL: s.url, WORKER_TAG: tag },
        queueConsumers: { jobs: { maxBatchSize: 10, maxBatchTimeout: 0.05 } },
      },
    ],
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return {
    mf,
    url,
    /** Messages the pipeline consumer received from this Worker's JOBS_QUEUE. */
    get queued() { return s.received[tag] ?? []; },
    /** Calls `listener(message)` for each later message of this Worker's JOBS_QUEUE. */
    onQueued: (listener) => { (s.listeners[tag] ??= []).push(listener); },
    fetch: async (p, init) => {
      const res = await fetch(url + p, init);
      record(init?.method ?? 'GET', p, res.clone());
      return res;
    },
    /** The OUTPUTS bucket as the Worker sees it, read through Miniflare. */
    bucket: () => mf.getR2Bucket('OUTPUTS', 'api'),
    dispose: () => mf.dispose(),
  };
}

/** Appends a response to the record the OpenAPI check reads. */
async function record(method, p, res) {
  try {
    const text = await res.text();
    mkdirSync(path.dirname(responsesFile), { recursive: true });
    appendFileSync(responsesFile, JSON.stringify({ method, path: p.split('?')[0], status: res.status, contentType: res.headers.get('content-type'), body: text }) + '\n');
  } catch {
    // A response whose body the test did not wait for is not recorded.
  }
}

/** Waits until `check()` returns a truthy value (bounded), returning it. */
export async function eventually(check, { timeoutMs = 5000, stepMs = 25 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, stepMs));
  }
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

/**
 * One request to a started Worker `w` as `user` (or none): `body` sent as JSON unless a string.
 * Answers the status, the body parsed as JSON (null when empty or not JSON), its text and headers,
 * and the two headers the tests read most.
 */
export async function callWorker(w, method, path, user, body, headers = {}) {
  const init = { method, headers: { ...(user ? bearer(user.token) : {}), ...headers } };
  if (body !== undefined) {
    init.headers['content-type'] ??= 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await w.fetch(path, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, body: json, text, headers: res.headers, contentType: res.headers.get('content-type'),
    replayed: res.headers.get('idempotent-replayed') };
}

/** Runs SQL as the superuser and returns psql's unaligned output. */
export function sql(query) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', stack.pgPort, '-U', 'postgres', '-d', 'postgres', '-c', query], {
    encoding: 'utf8',
  }).trim();
}

/**
 * Moves the business clock (app.now()) of every database session, PostgREST's included, to `when`
 * (a Date, ISO text or Unix seconds): the one row of app.business_clock, which only a superuser
 * session (this psql) can write. The clock is global to the database and the end-to-end files share
 * it, so it is only safe while no other file runs: tests/run.sh runs the files one at a time
 * (`--test-concurrency=1`). A test that moves it clears it when it ends (`clearClock()` in a
 * `finally` or `after`); should it not, this process clears it on exit. Setting it while another
 * process has it set throws instead of moving that process's time.
 */
export function setClock(when) {
  const iso = when instanceof Date ? when.toISOString() : typeof when === 'number' ? new Date(when * 1000).toISOString() : String(when);
  const owner = `e2e:${process.pid}`;
  const holder = sql(`select set_by from app.business_clock`);
  if (holder && holder !== owner) throw new Error(`the business clock is already set by ${holder}: end-to-end files that move it must not run concurrently`);
  sql(`insert into app.business_clock (now, set_by) values ('${iso}', '${owner}') on conflict (id) do update set now = excluded.now, set_by = excluded.set_by, set_at = now()`);
  if (!clockExitHook) {
    clockExitHook = true;
    process.on('exit', () => { try { clearClock(); } catch { /* the database may be gone */ } });
  }
}
let clockExitHook = false;

/** Gives the business clock back to real time (only if this process set it). */
export function clearClock() {
  sql(`delete from app.business_clock where set_by = 'e2e:${process.pid}'`);
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

/** A psql session kept open: statements written to it run in order, in one connection. */
export function session() {
  const p = spawn('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(stack.pgPort), '-U', 'postgres', '-d', 'postgres'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  return { run: (s) => p.stdin.write(`${s}\n`), output: () => out, end: async () => { p.stdin.end(); return exited; } };
}
