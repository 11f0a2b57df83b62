// Apple consumption requests (issue 13) end to end: a verified CONSUMPTION_REQUEST through the
// Worker, recorded in the database and answered through the App Store Server API stand-in
// (tests/e2e/appstore-api-standin.mjs, which checks the path, the ES256 API token against the test
// key's public key, and the body as Apple documents it). The facts come from the ledger; a
// duplicated notification sends once; Apple down is retried by the cron (its back-off made due by
// moving next_attempt_at, as a clock move) until it accepts, and never again after; unknown
// transactions, no consent, non-consumables, subscriptions and a Worker without API settings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPrivateKey, sign, randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, sqlRows } from './harness.mjs';
import { makeChain, signJws, transactionPayload, BUNDLE_ID, ENVIRONMENT } from './purchase-appstore-certs.mjs';
import { startAppStoreApiStandin, tokenProblem } from './appstore-api-standin.mjs';

const KEY_ID = '2X9R4HXF34';
const ISSUER_ID = '57246542-96fe-1a63-e053-0824d011072a';
let w, chain, apple, keys;
before(async () => {
  chain = makeChain();
  keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  apple = await startAppStoreApiStandin({ keyId: KEY_ID, issuerId: ISSUER_ID, bundleId: BUNDLE_ID, publicKey: keys.publicKey });
  // Requests earlier files left pending wait a day (a clock move for them): each cron run here meets only this file's.
  sql(`update public.app_store_consumption_requests set next_attempt_at = now() + interval '1 day' where status = 'pending'`);
  w = await startWorker({
    APPLE_ROOT_CERT: chain.rootB64, APPLE_BUNDLE_ID: BUNDLE_ID, APPLE_ENVIRONMENT: ENVIRONMENT,
    APPLE_API_KEY_ID: KEY_ID, APPLE_API_ISSUER_ID: ISSUER_ID,
    APPLE_API_PRIVATE_KEY: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), APPLE_API_BASE: apple.url,
  });
});
after(async () => { await w?.dispose(); await apple?.close(); });

const json = (token) => ({ 'content-type': 'application/json', ...bearer(token) });
const submit = (user, signed) => w.fetch('/v1/purchase/app-store', { method: 'POST', headers: json(user.token), body: JSON.stringify({ signed_transaction: signed }) });
const notify = (worker, signedPayload) => worker.fetch('/v1/purchase/app-store/notifications', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload }) });
const consent = (user, consented) => w.fetch('/v1/account/consumption-consent', { method: 'PUT', headers: json(user.token), body: JSON.stringify({ consented }) });
/** A CONSUMPTION_REQUEST about a signed transaction, as Apple sends it. */
const consumptionRequest = (signedTx, uuid = randomUUID()) => signJws(chain, {
  notificationType: 'CONSUMPTION_REQUEST', notificationUUID: uuid, version: '2.0', signedDate: Date.now(),
  data: { appAppleId: 1234567890, bundleId: BUNDLE_ID, bundleVersion: '1', environment: ENVIRONMENT, signedTransactionInfo: signedTx,
    consumptionRequestReason: 'UNINTENDED_PURCHASE', status: 1 },
});
const sentFor = (txId) => apple.state.requests.filter((r) => r.transactionId === txId);
const rowsFor = (txId) => sqlRows(`select status, skip_reason, attempts, last_status, body, consumption_request_reason,
  extract(epoch from next_attempt_at - now())::int as due_in, extract(epoch from deadline_at - now())::int as deadline_in
  from public.app_store_consumption_requests where transaction_id = '${txId}' order by received_at`);
const cron = async () => {
  const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(res.status, 200);
};
const makeDue = (txId) => sql(`update public.app_store_consumption_requests set next_attempt_at = now() where transaction_id = '${txId}' and status = 'pending'`);

/** A user who bought the starter pack (100 credits) in the App Store, consented, and spent 40 credits (10 welcome + 30 of the pack). */
async function buyerWhoSpent40() {
  const user = createUser();
  const payload = transactionPayload(user.id);
  const signedTx = signJws(chain, payload);
  assert.equal((await submit(user, signedTx)).status, 200);
  assert.equal((await consent(user, true)).status, 200);
  const gen = await w.fetch('/v1/generate', { method: 'POST', headers: { ...json(user.token), 'idempotency-key': randomUUID() },
    body: JSON.stringify({ model_id: 'premium-v1', prompt: 'Tide pools', target_minutes: 30 }) });
  assert.equal(gen.status, 202);
  const job = (await gen.json()).job.id;
  sql(`select public.claim_next_jobs('consume-e2e', 100)`);
  assert.equal(sql(`select (public.complete_job('${job}', 40) ->> 'applied')`), 'true');
  apple.state.transactions.set(payload.transactionId, { subscription: false });
  return { user, payload, signedTx };
}

test('consent: false until the user sets it; PUT is idempotent; bad bodies write nothing; anon is refused', async () => {
  const user = createUser();
  const get = async () => (await w.fetch('/v1/account/consumption-consent', { headers: bearer(user.token) })).json();
  assert.deepEqual(await get(), { consented: false, updated_at: null });
  const first = await (await consent(user, true)).json();
  assert.equal(first.consented, true);
  const again = await (await consent(user, true)).json();
  assert.deepEqual(again, first, 'the same answer again changes nothing, not even updated_at');
  for (const body of ['{"consented":"yes"}', '{}', '{"consented":true,"marketing":true}', '{"consented":']) {
    const res = await w.fetch('/v1/account/consumption-consent', { method: 'PUT', headers: json(user.token), body });
    assert.equal(res.status, 400, body);
    assert.ok(['invalid_request', 'invalid_json'].includes((await res.json()).error.code), body);
  }
  assert.deepEqual(await get(), first, 'nothing written by bad bodies');
  assert.equal((await consent(user, false)).status, 200);
  assert.equal((await get()).consented, false);
  assert.equal((await w.fetch('/v1/account/consumption-consent', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"consented":true}' })).status, 401);
  assert.equal((await w.fetch('/v1/account/consumption-consent')).status, 401);
});

test('a request for a purchase partly spent is answered at once with the facts from the ledger; duplicates send nothing more', async () => {
  const { payload, signedTx } = await buyerWhoSpent40();
  const notification = consumptionRequest(signedTx);
  const answers = await Promise.all([notify(w, notification), notify(w, notification), notify(w, notification)]);
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
  assert.equal((await notify(w, notification)).status, 200, 'and once more later');
  const sent = sentFor(payload.transactionId);
  assert.equal(sent.length, 1, 'one request to Apple for one notification delivered four times');
  assert.equal(sent[0].problem, null, 'Apple would accept it: path, token, signature and body');
  assert.equal(sent[0].method, 'PUT');
  assert.equal(sent[0].url, `/inApps/v2/transactions/consumption/${payload.transactionId}`);
  assert.deepEqual(sent[0].accepted, { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: true, consumptionPercentage: 30000 },
    '30 of the pack\'s 100 credits were spent (the welcome credits went first and were the free sample)');
  const [row] = rowsFor(payload.transactionId);
  assert.deepEqual([row.status, row.attempts, row.last_status, row.consumption_request_reason], ['sent', 1, 202, 'UNINTENDED_PURCHASE']);
  assert.ok(row.deadline_in > 11 * 3600 && row.deadline_in <= 12 * 3600, 'due within 12 hours');
  assert.equal(rowsFor(payload.transactionId).length, 1);
  makeDue(payload.transactionId);
  await cron();
  assert.equal(sentFor(payload.transactionId).length, 1, 'the cron never sends an accepted request again');
});

test('Apple down: the request is retried by the cron with back-off until Apple accepts, then never again', async () => {
  const { payload, signedTx } = await buyerWhoSpent40();
  apple.state.failures.push(500);
  assert.equal((await notify(w, consumptionRequest(signedTx))).status, 200, 'the notification is acknowledged: the request is recorded');
  let [row] = rowsFor(payload.transactionId);
  assert.deepEqual([row.status, row.attempts, row.last_status], ['pending', 1, 500]);
  assert.ok(row.due_in >= 28 && row.due_in <= 30, `retried after 30 s (${row.due_in})`);
  await cron();
  assert.equal(sentFor(payload.transactionId).length, 1, 'not before its back-off');

  makeDue(payload.transactionId);
  apple.state.failures.push(429);
  await cron();
  [row] = rowsFor(payload.transactionId);
  assert.deepEqual([row.status, row.attempts, row.last_status], ['pending', 2, 429]);
  assert.ok(row.due_in >= 58 && row.due_in <= 60, `then after 60 s (${row.due_in})`);

  makeDue(payload.transactionId);
  await cron();
  [row] = rowsFor(payload.transactionId);
  assert.deepEqual([row.status, row.attempts, row.last_status], ['sent', 3, 202]);
  const sent = sentFor(payload.transactionId);
  assert.deepEqual(sent.map((s) => s.status), [500, 429, 202]);
  assert.ok(sent.every((s) => s.problem === null), 'every attempt is a valid request with a fresh token');
  assert.equal(sent[2].accepted.consumptionPercentage, 30000);
  makeDue(payload.transactionId);
  await cron();
  assert.equal(sentFor(payload.transactionId).length, 3, 'accepted: never sent again');
});

test('the stand-in refuses what Apple refuses (its checks are not vacuous)', async () => {
  const now = Math.floor(Date.now() / 1000);
  const creds = { keyId: KEY_ID, issuerId: ISSUER_ID, bundleId: BUNDLE_ID, publicKey: keys.publicKey };
  const jwt = (header, claims, key = keys.privateKey) => {
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `Bearer ${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  const header = { alg: 'ES256', kid: KEY_ID, typ: 'JWT' };
  const claims = { iss: ISSUER_ID, iat: now, exp: now + 300, aud: 'appstoreconnect-v1', bid: BUNDLE_ID };
  assert.equal(tokenProblem(jwt(header, claims), creds), null);
  const other = createPrivateKey(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  for (const [name, token] of [
    ['another key', jwt(header, claims, other)],
    ['another kid', jwt({ ...header, kid: 'X' }, claims)],
    ['exp more than an hour after iat', jwt(header, { ...claims, exp: now + 3601 })],
    ['expired', jwt(header, { ...claims, iat: now - 600, exp: now - 1 })],
    ['another audience', jwt(header, { ...claims, aud: 'appstoreconnect-v2' })],
    ['another bundle', jwt(header, { ...claims, bid: 'com.other' })],
  ]) assert.notEqual(tokenProblem(token, creds), null, name);
  const put = (tx, body, authorization = jwt(header, claims)) => fetch(`${apple.url}/inApps/v2/transactions/consumption/${tx}`, {
    method: 'PUT', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  apple.state.transactions.set('4000000000000001', { subscription: false });
  assert.equal((await put('4000000000000001', { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: false }, jwt(header, claims, other))).status, 401);
  for (const body of [
    { customerConsented: false, deliveryStatus: 'DELIVERED', sampleContentProvided: false },
    { customerConsented: true, deliveryStatus: 0, sampleContentProvided: false },
    { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: false, consumptionPercentage: 100001 },
    { customerConsented: true, deliveryStatus: 'UNDELIVERED_OTHER', sampleContentProvided: false, consumptionPercentage: 5 },
    { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: false, consumptionStatus: 1 },
  ]) assert.equal((await put('4000000000000001', body)).status, 400, JSON.stringify(body));
  assert.equal((await put('4000000000000002', { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: false })).status, 404);
  assert.equal((await put('4000000000000001', { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: false })).status, 202);
});

test('no consent, an unknown transaction, a non-consumable: acknowledged, nothing sent', async () => {
  const user = createUser();
  const payload = transactionPayload(user.id);
  const signedTx = signJws(chain, payload);
  assert.equal((await submit(user, signedTx)).status, 200);
  apple.state.transactions.set(payload.transactionId, { subscription: false });
  assert.equal((await notify(w, consumptionRequest(signedTx))).status, 200);
  assert.deepEqual(rowsFor(payload.transactionId).map((r) => [r.status, r.skip_reason]), [['skipped', 'no_consent']]);

  const stranger = transactionPayload(user.id);
  const res = await notify(w, consumptionRequest(signJws(chain, stranger)));
  assert.equal(res.status, 200);
  assert.deepEqual(rowsFor(stranger.transactionId).map((r) => [r.status, r.skip_reason]), [['skipped', 'unknown_transaction']]);

  const nonConsumable = transactionPayload(user.id, { type: 'Non-Consumable' });
  const ignored = await notify(w, consumptionRequest(signJws(chain, nonConsumable)));
  assert.equal(ignored.status, 200);
  assert.equal((await ignored.json()).ignored, 'product_type');
  assert.equal(rowsFor(nonConsumable.transactionId).length, 0);
  await cron();
  assert.equal(sentFor(payload.transactionId).length + sentFor(stranger.transactionId).length + sentFor(nonConsumable.transactionId).length, 0);
});

test('an auto-renewable subscription period: delivered, without a percentage (Apple computes it)', async () => {
  const user = createUser();
  assert.equal((await consent(user, true)).status, 200);
  const id = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  const sub = transactionPayload(user.id, { transactionId: id, originalTransactionId: id, type: 'Auto-Renewable Subscription',
    productId: 'com.example.plan.basic.monthly', purchaseDate: Date.now() - 1000, expiresDate: Date.now() + 30 * 86400_000, price: 9990 });
  const signedTx = signJws(chain, sub);
  const paid = await submit(user, signedTx);
  assert.equal(paid.status, 200, await paid.clone().text());
  apple.state.transactions.set(id, { subscription: true });
  assert.equal((await notify(w, consumptionRequest(signedTx))).status, 200);
  const [sent] = sentFor(id);
  assert.equal(sent.problem, null);
  assert.deepEqual(sent.accepted, { customerConsented: true, deliveryStatus: 'DELIVERED', sampleContentProvided: true });
  assert.equal(rowsFor(id)[0].status, 'sent');
});

test('Apple does not know the transaction (404): rejected, not retried', async () => {
  const { payload, signedTx } = await buyerWhoSpent40();
  apple.state.transactions.delete(payload.transactionId);
  assert.equal((await notify(w, consumptionRequest(signedTx))).status, 200);
  assert.deepEqual(rowsFor(payload.transactionId).map((r) => [r.status, r.last_status]), [['rejected', 404]]);
  makeDue(payload.transactionId);
  await cron();
  assert.equal(sentFor(payload.transactionId).length, 1);
});

test('a Worker without the App Store Server API settings records the request and sends nothing', async () => {
  const bare = await startWorker({ APPLE_ROOT_CERT: chain.rootB64, APPLE_BUNDLE_ID: BUNDLE_ID, APPLE_ENVIRONMENT: ENVIRONMENT, APPLE_API_BASE: apple.url });
  try {
    const { payload, signedTx } = await buyerWhoSpent40();
    assert.equal((await notify(bare, consumptionRequest(signedTx))).status, 200);
    const res = await fetch(`${bare.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(res.status, 200);
    assert.deepEqual(rowsFor(payload.transactionId).map((r) => [r.status, r.attempts]), [['pending', 0]]);
    assert.equal(sentFor(payload.transactionId).length, 0);
    // Past its deadline, the unconfigured cron marks it expired.
    sql(`update public.app_store_consumption_requests set deadline_at = now() - interval '1 second' where transaction_id = '${payload.transactionId}'`);
    await fetch(`${bare.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.deepEqual(rowsFor(payload.transactionId).map((r) => r.status), ['expired']);
  } finally {
    await bare.dispose();
  }
});
