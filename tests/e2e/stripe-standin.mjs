// A local stand-in for the part of Stripe's API the Worker calls: POST /v1/checkout/sessions.
//
// It checks each request the way Stripe's API reference specifies it and answers as Stripe does:
// - `Authorization: Bearer <secret key>` (401 `invalid_request_error` otherwise);
// - a form-encoded body (`application/x-www-form-urlencoded`, nested keys as `a[0][b]`);
// - `mode=payment` with `line_items[0][price]` (a known price) and `line_items[0][quantity]`
//   (a positive whole number), `success_url` and `cancel_url` (absolute URLs);
// - `Idempotency-Key`: the same key with the same parameters returns the saved answer (the same
//   session); the same key with other parameters is 400 `idempotency_error`.
// Errors have Stripe's shape `{ "error": { "type", "code"?, "message", "param"? } }`. Answers are
// `checkout.session` objects. `down = true` makes it answer 500 `api_error` (Stripe unavailable).
import http from 'node:http';
import { randomBytes } from 'node:crypto';

export const STRIPE_TEST_KEY = 'sk_test_standin_0123456789';

/** Prices the stand-in knows, as the seeded catalog names them: id -> [unit amount, currency]. */
const PRICES = { price_starter: [499, 'usd'], price_creator: [1999, 'usd'], price_studio: [6999, 'usd'] };

function error(res, status, type, message, extra = {}) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { type, message, ...extra } }));
}

function absoluteUrl(s) {
  try { return ['http:', 'https:'].includes(new URL(s).protocol); } catch { return false; }
}

export async function startStripeStandin() {
  const idempotency = new Map(); // key -> { params, status, body }
  const state = { requests: [], sessions: new Map(), down: false };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const request = { method: req.method, url: req.url, headers: req.headers, body: raw };
      state.requests.push(request);
      if (state.down) return error(res, 500, 'api_error', 'An unknown error occurred.');
      if (req.method !== 'POST' || req.url !== '/v1/checkout/sessions') {
        return error(res, 404, 'invalid_request_error', `Unrecognized request URL (${req.method}: ${req.url}).`);
      }
      if (req.headers.authorization !== `Bearer ${STRIPE_TEST_KEY}`) {
        return error(res, 401, 'invalid_request_error', 'Invalid API Key provided.');
      }
      if (!/^application\/x-www-form-urlencoded\b/.test(req.headers['content-type'] || '')) {
        return error(res, 400, 'invalid_request_error', 'Invalid request: the body must be form-encoded.');
      }
      const form = new URLSearchParams(raw);
      const params = [...form.entries()].sort(([a], [b]) => a.localeCompare(b));
      const key = req.headers['idempotency-key'];
      if (key !== undefined) {
        const saved = idempotency.get(key);
        if (saved) {
          if (JSON.stringify(saved.params) !== JSON.stringify(params)) {
            return error(res, 400, 'idempotency_error', `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
          }
          res.writeHead(saved.status, { 'content-type': 'application/json', 'idempotent-replayed': 'true' });
          return res.end(saved.body);
        }
      }
      const answer = (status, body) => {
        const text = JSON.stringify(body);
        if (key !== undefined) idempotency.set(key, { params, status, body: text });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(text);
      };
      const missing = (param) => answer(400, { error: { type: 'invalid_request_error', code: 'parameter_missing', param, message: `Missing required param: ${param}.` } });
      const invalid = (param, message) => answer(400, { error: { type: 'invalid_request_error', code: 'parameter_invalid', param, message } });
      const mode = form.get('mode');
      if (!mode) return missing('mode');
      if (mode !== 'payment') return invalid('mode', `Invalid mode: ${mode}`);
      const price = form.get('line_items[0][price]');
      if (!price) return missing('line_items[0][price]');
      if (!PRICES[price]) return answer(400, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'line_items[0][price]', message: `No such price: '${price}'` } });
      const quantity = form.get('line_items[0][quantity]');
      if (!quantity) return missing('line_items[0][quantity]');
      if (!/^[1-9][0-9]*$/.test(quantity)) return invalid('line_items[0][quantity]', 'Invalid integer: ' + quantity);
      for (const p of ['success_url', 'cancel_url']) {
        if (!form.get(p)) return missing(p);
        if (!absoluteUrl(form.get(p))) return invalid(p, 'Not a valid URL');
      }
      const metadata = {};
      for (const [k, v] of form) {
        const m = /^metadata\[([^\]]+)\]$/.exec(k);
        if (m) metadata[m[1]] = v;
      }
      const [amount, currency] = PRICES[price];
      const id = `cs_test_${randomBytes(12).toString('hex')}`;
      const session = {
        id, object: 'checkout.session', mode, status: 'open', payment_status: 'unpaid', livemode: false,
        created: Math.floor(Date.now() / 1000), expires_at: Math.floor(Date.now() / 1000) + 86400,
        amount_subtotal: amount * Number(quantity), amount_total: amount * Number(quantity), currency,
        client_reference_id: form.get('client_reference_id'), metadata, payment_intent: null,
        success_url: form.get('success_url'), cancel_url: form.get('cancel_url'),
        url: `https://checkout.stripe.com/c/pay/${id}`,
      };
      state.sessions.set(id, session);
      answer(200, session);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
