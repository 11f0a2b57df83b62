// Keeps the README's deploy section true: every file and folder it names exists (the Supabase CLI's
// layout included), every secret it tells a team to `wrangler secret put` is one the Worker reads
// and `.dev.vars.example` lists, and nothing placeholder ships in a migration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const deploy = readme.slice(readme.indexOf('## Deploying'), readme.indexOf('See [ARCHITECTURE.md]'));

test('the deploy section names only files that exist', () => {
  assert.ok(deploy.length > 200, 'README has a "## Deploying" section');
  // Paths written in backticks or after a command: anything with a slash or a known file suffix.
  const named = new Set();
  for (const m of deploy.matchAll(/`([^`\s]+)`/g)) {
    const p = m[1];
    if (/^(supabase|migrations|tests|functions|shared|clients|examples)\/|\.(toml|sql|example|sh|md)$/.test(p)) named.add(p);
  }
  for (const m of deploy.matchAll(/(?:^|\s)((?:supabase|migrations|tests)\/[\w./-]*)/gm)) named.add(m[1].replace(/[.,;:]$/, ''));
  for (const must of ['supabase/config.toml', 'supabase/migrations', 'supabase/seed.sql', 'wrangler.toml', '.dev.vars.example']) {
    assert.ok(named.has(must), `the deploy section names ${must}`);
  }
  for (const p of named) assert.ok(existsSync(join(root, p)), `${p}, named in the README's deploy section, exists`);
});

test('supabase/migrations is the top-level migrations folder and supabase/tests the pgTAP suites', () => {
  assert.equal(realpathSync(join(root, 'supabase/migrations')), realpathSync(join(root, 'migrations')));
  assert.equal(realpathSync(join(root, 'supabase/tests')), realpathSync(join(root, 'tests/db')));
  assert.match(readFileSync(join(root, 'supabase/config.toml'), 'utf8'), /^major_version = 15$/m);
});

test('every secret the deploy section sets is read by the Worker and listed in .dev.vars.example', () => {
  const secrets = [...deploy.matchAll(/wrangler secret put (\w+)/g)].map((m) => m[1]);
  assert.ok(secrets.length >= 5, `secrets named: ${secrets}`);
  const example = readFileSync(join(root, '.dev.vars.example'), 'utf8');
  const rust = (dir) => readdirSync(join(root, dir), { recursive: true }).filter((f) => f.endsWith('.rs'))
    .map((f) => readFileSync(join(root, dir, f), 'utf8')).join('\n');
  const code = rust('shared/src') + rust('functions/src');
  for (const s of secrets) {
    assert.match(example, new RegExp(`^${s}=`, 'm'), `${s} is in .dev.vars.example`);
    assert.ok(code.includes(`"${s}"`), `${s} is read by the Worker's code`);
  }
});

test('no migration inserts the placeholder catalog except the landed one that a later migration removes', () => {
  const files = readdirSync(join(root, 'migrations')).filter((f) => f.endsWith('.sql')).sort();
  const placeholder = /price_starter|com\.example\.credits/;
  const inserting = files.filter((f) => /insert into public\.(credit_packages|models)/.test(readFileSync(join(root, 'migrations', f), 'utf8'))
    && placeholder.test(readFileSync(join(root, 'migrations', f), 'utf8')));
  assert.deepEqual(inserting, ['20261121000012_seed_catalog.sql']);
  const removal = files.find((f) => f.endsWith('_remove_placeholder_catalog.sql'));
  assert.ok(removal && removal > inserting[0], 'a later migration removes the placeholder rows');
  assert.match(readFileSync(join(root, 'supabase/seed.sql'), 'utf8'), /price_starter/);
});

test('new migrations are named as `supabase migration new` names them', () => {
  for (const f of readdirSync(join(root, 'migrations')).filter((f) => f.endsWith('.sql'))) {
    assert.match(f, /^\d{14}_[a-z0-9_]+\.sql$/, f);
    const ts = f.slice(0, 14);
    if (ts > '20261122') {
      // Real timestamps: a valid UTC date and time, not a counter.
      const d = new Date(`${ts.slice(0, 4)}-${ts.slice(4, 6)}-${ts.slice(6, 8)}T${ts.slice(8, 10)}:${ts.slice(10, 12)}:${ts.slice(12, 14)}Z`);
      assert.ok(!Number.isNaN(d.getTime()), `${f} starts with a real timestamp`);
    }
    assert.match(readFileSync(join(root, 'migrations', f), 'utf8'), /^-- \S/, `${f} opens with a one-line purpose comment`);
  }
});
