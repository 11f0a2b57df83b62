// The model check: random histories (gen.mjs) through the real RPCs, compared with the reference
// model (model.mjs) by world.mjs. Connects as the `postgres` superuser to MODEL_PG_PORT (or
// E2E_PG_PORT) on 127.0.0.1.
//
//   node tests/model/run.mjs [--histories N] [--seed S] [--batch B]
//
// Runs N histories in batches of B (default: all in one), each batch a fast-check run with seed
// S + batch number. A mismatch stops its batch, is shrunk to a minimal history that still
// mismatches, and is printed with the seed that reproduces it. The closing lines give histories
// run, provider events and operations applied, and mismatches; the exit code is 1 on a mismatch.
import fc from 'fast-check';
import pg from 'pg';
import { world, resolve } from './gen.mjs';
import { Db, Runner, check } from './world.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const histories = opt('histories', 2000);
const seed = opt('seed', Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31));
const batch = opt('batch', histories);
const port = Number(process.env.MODEL_PG_PORT || process.env.E2E_PG_PORT);
if (!port) { console.error('set MODEL_PG_PORT (or E2E_PG_PORT) to a database with the migrations applied'); process.exit(2); }

const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: 6 });
const db = new Db(pool);
await db.init();
const runner = new Runner(db);
console.log(`model: ${histories} histories, seed ${seed}, against ${db.modern ? 'dispute_purchase' : 'the pre-dispute_purchase RPCs (clawback/reinstate)'}${db.reverse ? ' and reverse_refund_purchase' : ', REFUND_REVERSED unhandled'}`);

let runs = 0, ops = 0, mismatches = 0, shrinking = false, shrinkRuns = 0;
const started = Date.now();
const property = fc.asyncProperty(world, async (w) => {
  const h = resolve(w);
  const run = await runner.run(h);
  if (shrinking) shrinkRuns++; else { runs++; ops += h.ops.length; }
  const bad = check(h, run);
  if (bad) { shrinking = true; throw new Error(JSON.stringify(bad)); }
});

for (let b = 0; b * batch < histories; b++) {
  const n = Math.min(batch, histories - b * batch);
  shrinking = false;
  const out = await fc.check(property, { seed: seed + b, numRuns: n, endOnFailure: false });
  if (out.failed) {
    mismatches++;
    const h = resolve(out.counterexample[0]);
    console.log(`\nMISMATCH (seed ${seed + b}, replay: node tests/model/run.mjs --histories ${n} --seed ${seed + b}; shrunk in ${out.numShrinks} steps)`);
    console.log('minimal history:', JSON.stringify(h, null, 1).replace(/\n\s*/g, ' '));
    console.log('disagreement:', out.errorInstance ? out.errorInstance.message : out.error);
  }
  if (histories > batch) console.log(`  ${Math.min((b + 1) * batch, histories)}/${histories} histories generated, ${runs} run, ${mismatches} mismatches, ${Math.round((Date.now() - started) / 1000)}s`);
}
await pool.end();
const secs = ((Date.now() - started) / 1000).toFixed(1);
console.log(`\nhistories run: ${runs} (+${shrinkRuns} while shrinking); operations applied: ${ops}; provider events delivered: ${runner.events}; mismatches: ${mismatches}; ${secs}s`);
console.log(`${mismatches === 0 ? runs : runs - mismatches} passed, ${mismatches} failed`);
process.exit(mismatches === 0 ? 0 : 1);
