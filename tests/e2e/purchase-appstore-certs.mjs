// Test App Store signing material, made at run time (never committed): a root CA (P-384,
// ecdsa-with-SHA384), an intermediate CA (P-384, with Apple's WWDR marker extension
// 1.2.840.113635.100.6.2.1) and a leaf (P-256, with the receipt-signing marker
// 1.2.840.113635.100.6.11.1), shaped like Apple's chain, made with the `openssl` CLI; and signing
// of StoreKit 2 style JWS (ES256, `x5c` = [leaf, intermediate, root]) with node:crypto.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createPrivateKey, sign, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

const LEAF_MARKER = '1.2.840.113635.100.6.11.1';
const INTERMEDIATE_MARKER = '1.2.840.113635.100.6.2.1';

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function der(dir, name) {
  openssl(dir, ['x509', '-in', `${name}.pem`, '-outform', 'DER', '-out', `${name}.der`]);
  return readFileSync(path.join(dir, `${name}.der`));
}

/**
 * A chain. Options: `leafMarker`, `intermediateMarker`, `intermediateCa` (default true).
 * Returns { root, intermediate, leaf (DER Buffers), leafKey (KeyObject), rootB64 }.
 */
export function makeChain({ leafMarker = true, intermediateMarker = true, intermediateCa = true } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'appstore-certs-'));
  try {
    const ext = (name, lines) => writeFileSync(path.join(dir, name), `[v3]\n${lines.join('\n')}\n`);
    openssl(dir, ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', 'root.key']);
    openssl(dir, ['req', '-new', '-x509', '-key', 'root.key', '-sha384', '-days', '3650', '-subj', '/CN=Test Apple Root CA - G3/O=Test/C=US',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'root.pem']);
    ext('int.ext', [`basicConstraints=critical,CA:${intermediateCa ? 'TRUE' : 'FALSE'}`, 'keyUsage=critical,keyCertSign,cRLSign',
      ...(intermediateMarker ? [`${INTERMEDIATE_MARKER}=ASN1:NULL`] : [])]);
    openssl(dir, ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', 'int.key']);
    openssl(dir, ['req', '-new', '-key', 'int.key', '-subj', '/CN=Test Apple WWDR CA - G6/O=Test/C=US', '-out', 'int.csr']);
    openssl(dir, ['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-sha384', '-days', '3000',
      '-extfile', 'int.ext', '-extensions', 'v3', '-out', 'int.pem']);
    ext('leaf.ext', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ...(leafMarker ? [`${LEAF_MARKER}=ASN1:NULL`] : [])]);
    openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.key']);
    openssl(dir, ['req', '-new', '-key', 'leaf.key', '-subj', '/CN=Test Prod ECC Mac App Store and iTunes Store Receipt Signing/O=Test/C=US', '-out', 'leaf.csr']);
    openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-sha256', '-days', '1000',
      '-extfile', 'leaf.ext', '-extensions', 'v3', '-out', 'leaf.pem']);
    const root = der(dir, 'root');
    return {
      root, intermediate: der(dir, 'int'), leaf: der(dir, 'leaf'),
      leafKey: createPrivateKey(readFileSync(path.join(dir, 'leaf.key'))),
      rootB64: root.toString('base64'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** A compact JWS signed by the chain's leaf; `header` overrides merge into the ES256/x5c header. */
export function signJws(chain, payload, { header = {}, x5c = [chain.leaf, chain.intermediate, chain.root], key = chain.leafKey } = {}) {
  const input = `${b64url({ alg: 'ES256', x5c: x5c.map((c) => c.toString('base64')), ...header })}.${b64url(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

export const BUNDLE_ID = 'com.example.credits-app';
export const ENVIRONMENT = 'Sandbox';

/** A StoreKit 2 consumable transaction payload for `userId` (the app account token). */
export function transactionPayload(userId, extra = {}) {
  const id = String(2000000000000000 + Math.floor(Math.random() * 1e12));
  return {
    transactionId: id, originalTransactionId: id, webOrderLineItemId: undefined, bundleId: BUNDLE_ID,
    productId: 'com.example.credits.starter', purchaseDate: Date.now() - 1000, originalPurchaseDate: Date.now() - 1000,
    quantity: 1, type: 'Consumable', appAccountToken: userId, inAppOwnershipType: 'PURCHASED', signedDate: Date.now(),
    environment: ENVIRONMENT, transactionReason: 'PURCHASE', storefront: 'USA', storefrontId: '143441', price: 4990, currency: 'USD',
    ...extra,
  };
}

/** An App Store Server Notification V2 payload around a signed transaction. */
export function notificationPayload(type, signedTransactionInfo, extra = {}) {
  return {
    notificationType: type, notificationUUID: randomUUID(), version: '2.0', signedDate: Date.now(),
    data: { appAppleId: 1234567890, bundleId: BUNDLE_ID, bundleVersion: '1', environment: ENVIRONMENT, signedTransactionInfo, status: 1 },
    ...extra,
  };
}
