// Runs the built Worker in workerd for `npm run dev`, makes a local test user, and prints how to
// call the stack. Stops on Ctrl-C (dev.sh then stops PostgREST and Postgres).
import { startWorker, sql, mintToken, claimsFor, stack } from '../e2e/harness.mjs';

const port = Number(process.env.DEV_WORKER_PORT || 8787);
const w = await startWorker({}, { port, log: true });

// A fixed local user, created once (the sign-up trigger gives it a profile, a balance and welcome credits).
const userId = '00000000-0000-4000-8000-00000000d3f0';
sql(`insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
     values ('${userId}', 'dev@example.test', '{"provider":"email"}', '{}', now(), now()) on conflict (id) do nothing`);
const now = Math.floor(Date.now() / 1000);
const token = mintToken(claimsFor(userId, { email: 'dev@example.test', exp: now + 12 * 3600 }));
const secs = process.env.DEV_STARTED ? `${Math.floor(Date.now() / 1000) - Number(process.env.DEV_STARTED)}s` : '';

console.log(`
The local stack is running (ready in ${secs}):
  Worker     ${w.url}
  PostgREST  ${stack.postgrestUrl}
  Postgres   postgres://postgres@127.0.0.1:${stack.pgPort}/postgres

A token for the local user ${userId} (HS256, valid 12 hours):
  export TOKEN=${token}

Try:
  curl -s ${w.url}/health
  curl -s -H "Authorization: Bearer $TOKEN" ${w.url}/v1/balance

Ctrl-C stops everything.`);

const stop = async () => { await w.dispose(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
