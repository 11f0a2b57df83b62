// Keeps the OpenAPI document true: every response the other end-to-end suites received through
// the harness (recorded in .local/e2e-responses.jsonl) must be declared for its path, method and
// status, and its JSON body must match the declared schema. Runs last (files run in name order).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { startWorker, responsesFile } from './harness.mjs';

let w;
let doc;
before(async () => {
  w = await startWorker();
  const res = await fetch(`${w.url}/v1/openapi.json`);
  assert.equal(res.status, 200);
  doc = await res.json();
});
after(async () => { await w?.dispose(); });

/** The OpenAPI path template a concrete path belongs to. */
function templateFor(path) {
  return Object.keys(doc.paths).find((t) => {
    const re = new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    return re.test(path);
  });
}

test('the served document is OpenAPI 3.1 and every route of the Worker is in it', () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/generate'].post.responses['202']);
});

test('every recorded response is declared and matches its schema', () => {
  assert.ok(existsSync(responsesFile), 'the other suites recorded responses');
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ $id: 'doc', components: doc.components });
  const rows = readFileSync(responsesFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const failures = [];
  let checked = 0;
  for (const r of rows) {
    if (r.method === 'OPTIONS' || r.status === 204) continue;
    const template = templateFor(r.path);
    if (!template) {
      // Unknown paths are answered 404 by design; they must still have the error shape.
      if (r.status !== 404) failures.push(`${r.method} ${r.path}: not in the document (status ${r.status})`);
      continue;
    }
    const op = doc.paths[template][r.method.toLowerCase()];
    if (!op) {
      if (r.status !== 405) failures.push(`${r.method} ${template}: method not in the document`);
      continue;
    }
    let response = op.responses[String(r.status)];
    if (!response) {
      failures.push(`${r.method} ${template}: status ${r.status} not declared`);
      continue;
    }
    if (response.$ref) response = doc.components.responses[response.$ref.split('/').pop()];
    const schema = response.content?.['application/json']?.schema;
    if (!schema) continue;
    if (!/application\/json/.test(r.contentType ?? '')) {
      failures.push(`${r.method} ${template} ${r.status}: content-type ${r.contentType}`);
      continue;
    }
    const resolved = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
    const validate = ajv.compile(resolved);
    if (!validate(JSON.parse(r.body))) {
      failures.push(`${r.method} ${template} ${r.status}: ${ajv.errorsText(validate.errors)} in ${r.body.slice(0, 200)}`);
    }
    checked++;
  }
  assert.deepEqual(failures, []);
  assert.ok(checked > 50, `checked ${checked} responses`);
});

test('the README endpoint table and curl examples match the OpenAPI document', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const documented = new Set();
  for (const [p, item] of Object.entries(doc.paths)) for (const m of Object.keys(item)) documented.add(`${m.toUpperCase()} ${p}`);
  const rows = new Set([...readme.matchAll(/^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|/gm)].map((m) => `${m[1]} ${m[2]}`));
  assert.deepEqual([...rows].sort(), [...documented].sort(), 'README table rows = OpenAPI operations');
  const curls = [...readme.matchAll(/curl -s (?:-X (POST|GET) )?(?:-H "[^"]*" )*http:\/\/127\.0\.0\.1:8787(\/[^\s?"']*)/g)];
  assert.ok(curls.length >= 4, 'the README has curl examples');
  for (const [, method = 'GET', p] of curls) assert.ok(documented.has(`${method} ${templateFor(p) ?? p}`), `curl ${method} ${p} is documented`);
});
