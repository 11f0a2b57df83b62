// Runs the built Worker in workerd for `npm run dev`, with the demo around it (demo-stack.mjs: the
// demo page on 127.0.0.1:8788, the Stripe stand-in's Checkout, the demo pipeline), makes a local
// test user, and prints how to call the stack. Stops on Ctrl-C (dev.sh then stops PostgREST and
// Postgres).
import http from 'node:http';
import { sign } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { sql, mintToken, claimsFor, stack } from '../e2e/harness.mjs';
import { localKeys } from './keys.mjs';
import { startDemoStack } from './demo-stack.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const keys = localKeys(path.join(root, '.local/keys'), stack.jwtSecret);

// Supabase publishes the project's signing keys at <SUPABASE_URL>/auth/v1/.well-known/jwks.json;
// locally this small server does, so the Worker verifies ES256 tokens exactly as in production.
const supabasePort = Number(new URL(stack.supabaseUrl).port);
const jwksServer = http.createServer((req, res) => {
  if (req.url === '/auth/v1/.well-known/jwks.json') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keys.jwks));
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => jwksServer.listen(supabasePort, '127.0.0.1', resolve));

/** An ES256 access token signed with the local signing key (as current Supabase projects issue). */
function mintEs256(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: keys.privateJwk.kid })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: keys.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

const port = Number(process.env.DEV_WORKER_PORT || 8787);
// Generated files are kept in Miniflare's R2 under .local/r2 across restarts.
const demo = await startDemoStack({ workerPort: port, webPort: Number(process.env.DEV_WEB_PORT || 8788), log: true, r2Persist: path.join(root, '.local/r2') });
const w = demo.worker;

// A fixed local user, created once (the sign-up trigger gives it a profile, a balance and welcome credits).
const userId = '00000000-0000-4000-8000-00000000d3f0';
sql(`insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ('${userId}', 'dev@example.test', '{"provider":"email"}', '{}', now(), now()) on conflict (id) do nothing`);
const now = Math.floor(Date.now() / 1000);
const claims = claimsFor(userId, { email: 'dev@example.test', exp: now + 12 * 3600 });
const token = mintToken(claims);
const es256 = mintEs256(claims);
const secs = process.env.DEV_STARTED ? `${Math.floor(Date.now() / 1000) - Number(process.env.DEV_STARTED)}s` : '';

console.log(`
The local stack is running (ready in ${secs}):
  Worker     ${w.url}
  PostgREST  ${stack.postgrestUrl}
  Postgres   postgres://postgres@127.0.0.1:${stack.pgPort}/postgres

The demo app (examples/web; paste $TOKEN to sign in, pay on the Stripe stand-in's Checkout page):
  ${demo.web.url}
  Stripe stand-in ${demo.stripe.url}, demo pipeline (examples/pipeline) claiming jobs

Tokens for the local user ${userId}, valid 12 hours. HS256 (legacy secret):
  export TOKEN=${token}
ES256 (signing key, verified through ${stack.supabaseUrl}/auth/v1/.well-known/jwks.json):
  export TOKEN_ES256=${es256}
The project's anon key (visitors send it as apikey):
  export ANON_KEY=${stack.anonKey}

Try:
  curl -s ${w.url}/health
  curl -s -H "Authorization: Bearer $TOKEN" ${w.url}/v1/balance
  curl -s -H "Authorization: Bearer $TOKEN_ES256" ${w.url}/v1/ledger
  curl -s -X POST ${w.url}/v1/drafts -H "apikey: $ANON_KEY" -H 'content-type: application/json' -d '{"prompt":"A video about tide pools"}'
  curl -s -X POST ${w.url}/v1/generate -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(date +%s)" -H 'content-type: application/json' \\
       -d '{"model_id":"standard-v1","prompt":"A video about tide pools","target_minutes":2}'

Ctrl-C stops everything.`);

const stop = async () => { jwksServer.close(); await demo.stop(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
