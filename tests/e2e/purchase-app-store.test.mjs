// App Store purchases (issue 6): StoreKit 2 signed transactions and Server Notifications V2,
// verified against a root made for this run (tests/e2e/purchase-appstore-certs.mjs). One grant per
// transactionId under parallel submission, the chain and payload rules of SECURITY.md section 6,
// a transaction of user A presented by user B refused, REFUND and REVOKE applied once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, createUser, bearer, sql, sqlRows } from './harness.mjs';
import { makeChain, signJws, transactionPayload, notificationPayload, BUNDLE_ID, ENVIRONMENT } from './purchase-appstore-certs.mjs';

let w, chain;
before(async () => {
  chain = makeChain();
  w = await startWorker({ APPLE_ROOT_CERT: chain.rootB64, APPLE_BUNDLE_ID: BUNDLE_ID, APPLE_ENVIRONMENT: ENVIRONMENT });
});
after(async () => { await w?.dispose(); });

const json = (token) => ({ 'content-type': 'application/json', ...bearer(token) });
const available = (id) => Number(sql(`select available from public.credit_balances where user_id = '${id}'`));
const ledgerRows = (id) => Number(sql(`select count(*) from public.credit_ledger where user_id = '${id}'`));
const reconcile = () => JSON.parse(sql('select public.reconcile()'));
const submit = (user, signed) => w.fetch('/v1/purchase/app-store', { method: 'POST', headers: json(user.token), body: JSON.stringify({ signed_transaction: signed }) });
const notify = (signedPayload) => w.fetch('/v1/purchase/app-store/notifications', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signedPayload }) });

test('a valid signed transaction submitted 10 times in parallel grants once', async () => {
  const user = createUser();
  const payload = transactionPayload(user.id);
  const signed = signJws(chain, payload);
  const answers = await Promise.all(Array.from({ length: 10 }, () => submit(user, signed)));
  assert.deepEqual(answers.map((r) => r.status), Array(10).fill(200));
  const bodies = await Promise.all(answers.map((r) => r.json()));
  assert.equal(bodies.filter((b) => b.granted).length, 1);
  assert.ok(bodies.every((b) => b.purchase.provider_payment_id === payload.transactionId && b.purchase.status === 'succeeded'));
  assert.equal(available(user.id), 110);
  assert.deepEqual(sqlRows(`select provider, amount_cents, currency, credits_granted from public.purchases where user_id = '${user.id}'`),
    [{ provider: 'app_store', amount_cents: 499, currency: 'usd', credits_granted: 100 }]);
  assert.deepEqual(reconcile(), []);
});

test('a transaction for a package withdrawn from sale after payment is still redeemed, once', async () => {
  const user = createUser();
  // launch-2025 (100 + 100 bonus credits) is in the catalog but no longer active.
  const signed = signJws(chain, transactionPayload(user.id, { productId: 'com.example.credits.launch2025' }));
  const res = await submit(user, signed);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.granted, true);
  assert.equal(available(user.id), 210);
  assert.equal((await (await submit(user, signed)).json()).granted, false);
  assert.deepEqual(reconcile(), []);
});

test('a transaction bought by user A and presented by user B is refused', async () => {
  const a = createUser();
  const b = createUser();
  const signed = signJws(chain, transactionPayload(a.id));
  const stolen = await submit(b, signed);
  assert.equal(stolen.status, 403);
  assert.equal((await stolen.json()).error.code, 'transaction_not_yours');
  assert.equal(ledgerRows(b.id), 1, 'B has only the welcome grant');
  assert.equal((await submit(a, signed)).status, 200);
  const again = await submit(b, signed);
  assert.equal(again.status, 403, 'still refused after A redeemed it');
  assert.equal(available(a.id), 110);
  assert.equal(available(b.id), 10);
});

test('every broken signature, chain or payload rule is a 400 and grants nothing', async () => {
  const user = createUser();
  const other = makeChain();
  const noLeafMarker = makeChain({ leafMarker: false });
  const noIntermediateMarker = makeChain({ intermediateMarker: false });
  const notCa = makeChain({ intermediateCa: false });
  const tx = (extra) => transactionPayload(user.id, extra);
  const [h, p] = signJws(chain, tx()).split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify(tx({ productId: 'com.example.credits.studio' }))).toString('base64url')}.${signJws(chain, tx()).split('.')[2]}`;
  const cases = [
    ['a chain to another root', signJws(other, tx()), 'invalid_signed_transaction'],
    ['a chain of two', signJws(chain, tx(), { x5c: [chain.leaf, chain.intermediate] }), 'invalid_signed_transaction'],
    ['a chain of four', signJws(chain, tx(), { x5c: [chain.leaf, chain.intermediate, chain.root, chain.root] }), 'invalid_signed_transaction'],
    ['our root with another chain below it', signJws(other, tx(), { x5c: [other.leaf, other.intermediate, chain.root] }), 'invalid_signed_transaction'],
    ['a leaf without the receipt-signing marker', signJws(noLeafMarker, tx(), { x5c: [noLeafMarker.leaf, noLeafMarker.intermediate, chain.root] }), 'invalid_signed_transaction'],
    ['an intermediate without the WWDR marker', signJws(noIntermediateMarker, tx()), 'invalid_signed_transaction'],
    ['an intermediate that is not a CA', signJws(notCa, tx()), 'invalid_signed_transaction'],
    ['a signing date before the certificates were valid', signJws(chain, tx({ signedDate: Date.now() - 2 * 86400_000 })), 'invalid_signed_transaction'],
    ['HS256 in the header', signJws(chain, tx(), { header: { alg: 'HS256' } }), 'invalid_signed_transaction'],
    ['alg none', signJws(chain, tx(), { header: { alg: 'none' } }), 'invalid_signed_transaction'],
    ['a tampered payload', tampered, 'invalid_signed_transaction'],
    ['a signature by another key', signJws(chain, tx(), { key: other.leafKey }), 'invalid_signed_transaction'],
    ['a signing date in the future', signJws(chain, tx({ signedDate: Date.now() + 3600_000 })), 'invalid_signed_transaction'],
    ['garbage', 'not.a.jws', 'invalid_signed_transaction'],
    ['another app', signJws(chain, tx({ bundleId: 'com.other.app' })), 'wrong_bundle'],
    ['another environment', signJws(chain, tx({ environment: 'Production' })), 'wrong_environment'],
    ['an unknown product', signJws(chain, tx({ productId: 'com.example.unknown' })), 'unknown_product'],
    ['a non-consumable', signJws(chain, tx({ type: 'Non-Consumable' })), 'unsupported_product_type'],
    ['a subscription without its period', signJws(chain, tx({ type: 'Auto-Renewable Subscription' })), 'invalid_transaction'],
    ['no app account token', signJws(chain, tx({ appAccountToken: undefined })), 'app_account_token_required'],
  ];
  for (const [name, signed, code] of cases) {
    const res = await submit(user, signed);
    const body = await res.json();
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, code, name);
  }
  const revoked = await submit(user, signJws(chain, tx({ revocationDate: Date.now() })));
  assert.equal(revoked.status, 409);
  assert.equal(ledgerRows(user.id), 1, 'nothing but the welcome grant');
  assert.equal(Number(sql(`select count(*) from public.purchases where user_id = '${user.id}'`)), 0);
  for (const [body, status] of [['{}', 400], ['{"signed_transaction":"x","extra":1}', 400], ['{"signed_transaction":', 400]]) {
    const res = await w.fetch('/v1/purchase/app-store', { method: 'POST', headers: json(user.token), body });
    assert.equal(res.status, status, body);
  }
  assert.equal((await w.fetch('/v1/purchase/app-store', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"signed_transaction":"x"}' })).status, 401);
});

test('a prorated REFUND (revocationType REFUND_PRORATED) takes back its share once; its REFUND_REVERSED gives it back; a later full REFUND takes all', async () => {
  const user = createUser();
  const payload = transactionPayload(user.id); // 4.99 USD, 100 credits
  assert.equal((await submit(user, signJws(chain, payload))).status, 200);
  assert.equal(available(user.id), 110);
  // 40% refunded: ceil(499 x 0.4) = 200 cents, so the user keeps 100 - ceil(100 x 200 / 499) = 59.
  const share = signJws(chain, notificationPayload('REFUND', signJws(chain, { ...payload, revocationDate: Date.now(), revocationReason: 0,
    revocationType: 'REFUND_PRORATED', revocationPercentage: 40000 })));
  assert.deepEqual((await Promise.all([notify(share), notify(share)])).map((r) => r.status), [200, 200]);
  assert.equal(available(user.id), 69);
  assert.equal(sql(`select credits_granted || '/' || status from public.purchases where provider_payment_id = '${payload.transactionId}'`), '59/succeeded');
  // Apple reverses that refund (the transaction then carries no revocation): the share comes back.
  assert.equal((await notify(signJws(chain, notificationPayload('REFUND_REVERSED', signJws(chain, payload))))).status, 200);
  assert.equal(available(user.id), 110);
  const full = signJws(chain, notificationPayload('REFUND', signJws(chain, { ...payload, revocationDate: Date.now(), revocationReason: 0, revocationType: 'REFUND_FULL' })));
  assert.equal((await notify(full)).status, 200);
  assert.equal(available(user.id), 10);
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${payload.transactionId}'`), 'refunded');
  assert.deepEqual(reconcile(), []);
});

test('REFUND and REVOKE notifications take the credits back once; other types are ignored', async () => {
  const user = createUser();
  const payload = transactionPayload(user.id);
  const signedTx = signJws(chain, payload);
  assert.equal((await submit(user, signedTx)).status, 200);
  assert.equal(available(user.id), 110);
  const refund = signJws(chain, notificationPayload('REFUND', signJws(chain, { ...payload, revocationDate: Date.now(), revocationReason: 0 })));
  const answers = await Promise.all([notify(refund), notify(refund), notify(refund)]);
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
  assert.equal(available(user.id), 10);
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${payload.transactionId}'`), 'refunded');

  const second = transactionPayload(user.id);
  await submit(user, signJws(chain, second));
  const revoke = signJws(chain, notificationPayload('REVOKE', signJws(chain, second)));
  assert.equal((await notify(revoke)).status, 200);
  assert.equal((await notify(revoke)).status, 200, 'a repeated notificationUUID changes nothing');
  assert.equal(available(user.id), 10);
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${second.transactionId}'`), 'disputed');

  const other = await notify(signJws(chain, notificationPayload('PRICE_INCREASE', signJws(chain, second))));
  assert.equal(other.status, 200);
  assert.equal((await other.json()).ignored, 'notification_type');
  const forged = await notify(signJws(makeChain(), notificationPayload('REFUND', signJws(chain, second))));
  assert.equal(forged.status, 400);
  const wrongEnv = await notify(signJws(chain, notificationPayload('REFUND', signJws(chain, second), { data: { bundleId: BUNDLE_ID, environment: 'Production' } })));
  assert.equal(wrongEnv.status, 400);
  assert.deepEqual(reconcile(), []);
});
