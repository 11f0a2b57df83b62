// A local stand-in for the part of Apple's App Store Server API the Worker calls: "Send Consumption
// Information" (v2), `PUT /inApps/v2/transactions/consumption/{transactionId}`.
//
// It checks each request the way Apple's documentation specifies it and answers as Apple does:
// - the path and method (anything else: 404);
// - `Authorization: Bearer <JWT>` ("Generating JSON Web Tokens for API requests"): header exactly
//   `{alg: "ES256", kid: <the key id>, typ: "JWT"}`; claims `iss` (the issuer id), `iat` (not in
//   the future), `exp` (in the future, at most 60 minutes after `iat`), `aud: "appstoreconnect-v1"`,
//   `bid` (the bundle id), nothing else; the ES256 signature (raw r || s) verified with the test
//   key's public key. Any failure: 401 without a body, as Apple answers;
// - `Content-Type: application/json` and the `ConsumptionRequest` body: only its five fields;
//   `customerConsented` a boolean and `true` (InvalidCustomerConsentedError), `deliveryStatus` one of
//   DELIVERED, UNDELIVERED_QUALITY_ISSUE, UNDELIVERED_WRONG_ITEM, UNDELIVERED_SERVER_OUTAGE,
//   UNDELIVERED_OTHER (InvalidDeliveryStatusError), `sampleContentProvided` a boolean
//   (InvalidSampleContentProvidedError), optional `consumptionPercentage` an integer from 0 to
//   100000 (ConsumptionPercentageOutOfRangeError), 0 unless DELIVERED
//   (UndeliveredConsumptionPercentageNonZeroError), absent for an auto-renewable subscription
//   (ConsumptionPercentageAutoRenewableSubscriptionError), optional `refundPreference` one of
//   DECLINE, GRANT_FULL, GRANT_PRORATED (InvalidRefundPreferenceError); an unknown field or a body
//   that is not a JSON object is 400 without an error code ("the request is malformed");
// - a transaction the test did not register (`state.transactions`): 404 TransactionIdNotFoundError;
// - success: 202 Accepted without a body.
// Error bodies have Apple's shape `{"errorCode", "errorMessage"}`; the codes of the three errors
// whose numbers Apple's error pages give are used (4040010, 4290000, 5000000), the others carry
// only the error's name in `errorMessage` (the Worker reads the status, never the body).
// `state.failures` is a queue of statuses to answer instead (500 GeneralInternalError, 429
// RateLimitExceededError, 401), one per request, after the request was checked and recorded.
import http from 'node:http';
import { verify } from 'node:crypto';

const DELIVERY = ['DELIVERED', 'UNDELIVERED_QUALITY_ISSUE', 'UNDELIVERED_WRONG_ITEM', 'UNDELIVERED_SERVER_OUTAGE', 'UNDELIVERED_OTHER'];
const REFUND = ['DECLINE', 'GRANT_FULL', 'GRANT_PRORATED'];
const FIELDS = ['customerConsented', 'consumptionPercentage', 'deliveryStatus', 'refundPreference', 'sampleContentProvided'];

/** Why a bearer token is not one Apple accepts, or null. */
export function tokenProblem(authorization, { keyId, issuerId, bundleId, publicKey }, now = Math.floor(Date.now() / 1000)) {
  const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(authorization ?? '');
  if (!m) return 'no bearer JWT';
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(m[1], 'base64url'));
    claims = JSON.parse(Buffer.from(m[2], 'base64url'));
  } catch { return 'not JSON'; }
  const keys = (o) => Object.keys(o).sort().join(',');
  if (keys(header) !== 'alg,kid,typ' || header.alg !== 'ES256' || header.kid !== keyId || header.typ !== 'JWT') return `bad header ${JSON.stringify(header)}`;
  if (keys(claims) !== 'aud,bid,exp,iat,iss') return `unexpected claims ${keys(claims)}`;
  if (claims.iss !== issuerId || claims.aud !== 'appstoreconnect-v1' || claims.bid !== bundleId) return `bad claims ${JSON.stringify(claims)}`;
  if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp)) return 'iat and exp must be whole seconds';
  if (claims.iat > now + 60) return 'issued in the future';
  if (claims.exp <= now) return 'expired';
  if (claims.exp - claims.iat > 3600) return 'exp more than 60 minutes after iat';
  const signature = Buffer.from(m[3], 'base64url');
  if (signature.length !== 64) return 'the signature is not raw r || s';
  if (!verify('sha256', Buffer.from(`${m[1]}.${m[2]}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) return 'the signature does not verify';
  return null;
}

/** Why a body is not a ConsumptionRequest Apple accepts: [errorName or null (malformed), message], or null. */
export function bodyProblem(raw, { subscription = false } = {}) {
  let b;
  try { b = JSON.parse(raw); } catch { return [null, 'not JSON']; }
  if (b === null || typeof b !== 'object' || Array.isArray(b)) return [null, 'not an object'];
  const unknown = Object.keys(b).filter((k) => !FIELDS.includes(k));
  if (unknown.length) return [null, `unknown fields ${unknown}`];
  if (b.customerConsented !== true) return ['InvalidCustomerConsentedError', 'customerConsented must be true'];
  if (!DELIVERY.includes(b.deliveryStatus)) return ['InvalidDeliveryStatusError', `deliveryStatus ${JSON.stringify(b.deliveryStatus)}`];
  if (typeof b.sampleContentProvided !== 'boolean') return ['InvalidSampleContentProvidedError', 'sampleContentProvided must be a boolean'];
  if ('refundPreference' in b && !REFUND.includes(b.refundPreference)) return ['InvalidRefundPreferenceError', `refundPreference ${b.refundPreference}`];
  if ('consumptionPercentage' in b) {
    const p = b.consumptionPercentage;
    if (subscription) return ['ConsumptionPercentageAutoRenewableSubscriptionError', 'no consumptionPercentage for an auto-renewable subscription'];
    if (!Number.isInteger(p) || p < 0 || p > 100000) return ['ConsumptionPercentageOutOfRangeError', `consumptionPercentage ${p}`];
    if (b.deliveryStatus !== 'DELIVERED' && p !== 0) return ['UndeliveredConsumptionPercentageNonZeroError', 'undelivered: consumptionPercentage must be 0'];
  }
  return null;
}

/**
 * Starts the stand-in for the given credentials (`publicKey`: a KeyObject of the test key).
 * `state.transactions`: transactionId -> {subscription: bool}; `state.requests`: every request
 * with what was checked (`problem`: null when Apple would accept it) and the status answered.
 */
export async function startAppStoreApiStandin(credentials) {
  const state = { requests: [], transactions: new Map(), failures: [] };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const record = { method: req.method, url: req.url, headers: req.headers, body: raw, problem: null, status: 0 };
      state.requests.push(record);
      const answer = (status, body) => {
        record.status = status;
        if (body === undefined) return res.writeHead(status).end();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      const path = /^\/inApps\/v2\/transactions\/consumption\/([^/?]+)$/.exec(req.url);
      if (req.method !== 'PUT' || !path) {
        record.problem = 'unknown route';
        return answer(404, { errorMessage: 'Not found.' });
      }
      record.transactionId = decodeURIComponent(path[1]);
      const token = tokenProblem(req.headers.authorization, credentials);
      if (token) {
        record.problem = token;
        return answer(401);
      }
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
        record.problem = 'not application/json';
        return answer(400, { errorMessage: 'The request is malformed.' });
      }
      const tx = state.transactions.get(record.transactionId);
      if (!tx) {
        record.problem = 'unknown transaction';
        return answer(404, { errorCode: 4040010, errorMessage: 'Transaction id not found.' });
      }
      const body = bodyProblem(raw, tx);
      if (body) {
        record.problem = body[1];
        return answer(400, body[0] ? { errorMessage: `${body[0]}: ${body[1]}` } : { errorMessage: 'The request is malformed.' });
      }
      const failure = state.failures.shift();
      if (failure === 500) return answer(500, { errorCode: 5000000, errorMessage: 'An unknown error occurred.' });
      if (failure === 429) return answer(429, { errorCode: 4290000, errorMessage: 'Rate limit exceeded.' });
      if (failure === 401) return answer(401);
      record.accepted = JSON.parse(raw);
      answer(202);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
