// A local stand-in for the part of Stripe's API the Worker calls: POST /v1/checkout/sessions (in
// `payment` and `subscription` mode), POST /v1/subscriptions/{id} (cancel at period end) and
// GET /v1/invoice_payments (which PaymentIntent paid an invoice).
//
// It checks each request the way Stripe's API reference specifies it and answers as Stripe does:
// - `Authorization: Bearer <secret key>` (401 `invalid_request_error` otherwise);
// - a form-encoded body (`application/x-www-form-urlencoded`, nested keys as `a[0][b]`);
// - `mode=payment` with `line_items[0][price]` (a known one-time price) and `line_items[0][quantity]`
//   (a positive whole number), `success_url` and `cancel_url` (absolute URLs);
// - `mode=subscription`: the same with a recurring price (a one-time price is refused as Stripe
//   does), `subscription_data[metadata][...]` allowed only in that mode and `payment_intent_data`
//   refused in it (Stripe: "You can not pass `payment_intent_data` in `subscription` mode");
// - `POST /v1/subscriptions/{id}`: a subscription the test registered in `state.subscriptions`
//   (else 404 `resource_missing`); `cancel_at_period_end` must be `true` or `false`; answers the
//   updated `subscription` object;
// - `DELETE /v1/subscriptions/{id}` (cancel at once): a registered subscription (else 404
//   `resource_missing`); its optional parameters are `cancellation_details[...]`, `invoice_now`,
//   `prorate`, `expand[]` (else 400 `parameter_unknown`); answers it with `status: canceled`,
//   `canceled_at` and `ended_at` now; one already cancelled is 404 `resource_missing` as well.
//   Stripe ignores an `Idempotency-Key` on DELETE;
// - `Idempotency-Key`: the same key with the same parameters returns the saved answer (the same
//   session); the same key with other parameters is 400 `idempotency_error`. With `state.latencyMs`
//   set, answers take that long, and a request with the key of one still being processed is 409
//   `idempotency_error` ("another in-progress request"; Stripe saves nothing for it, so it may be
//   retried as it is).
// - `GET /v1/invoice_payments` (the Invoice Payments API, 2025-03-31.basil and later): only the
//   documented query parameters (`invoice`, `status` one of `canceled`/`open`/`paid`, `payment[type]`
//   (`payment_intent` or `payment_record`, required when `payment[...]` is given) with
//   `payment[payment_intent]`, `limit` 1..100, `starting_after`, `ending_before`, `expand[]`),
//   else 400 `parameter_unknown` / `parameter_invalid_*`; no body; a `Stripe-Version` header, if
//   sent, must name 2025-03-31 or later (the API before it has no such endpoint: 404). Answers a
//   `list` of the `invoice_payment` objects the test registered with `payInvoice(invoice,
//   paymentIntent, amount)` (or in `state.invoicePayments`), newest first, filtered as asked.
// Errors have Stripe's shape `{ "error": { "type", "code"?, "message", "param"? } }`. Answers are
// `checkout.session` objects. `down = true` makes it answer 500 `api_error` (Stripe unavailable).
//
// With `checkout: { webhookUrl, webhookSecret }` it also stands in for the hosted Checkout page (for
// `npm run dev` and the browser test): a session's `url` is `<stand-in>/c/pay/<session id>`, a page
// showing the amount with a Pay button. Paying completes the session and sends Stripe's
// `checkout.session.completed` event, signed with `Stripe-Signature` (t=<unix>,v1=<HMAC-SHA256 of
// "{t}.{body}">), to `webhookUrl`, then redirects to the session's `success_url` (with
// `{CHECKOUT_SESSION_ID}` filled in) once the endpoint answered 2xx; Cancel goes to `cancel_url`.
// `checkout.webhookUrl` is read at payment time, so it may be set after the Worker has started.
// Without it, sessions point at checkout.stripe.com as Stripe's do, and no page is served.
import http from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';

export const STRIPE_TEST_KEY = 'sk_test_standin_0123456789';

/** Prices the stand-in knows, as the seeded catalog names them: id -> [unit amount, currency]. */
const PRICES = { price_starter: [499, 'usd'], price_creator: [1999, 'usd'], price_studio: [6999, 'usd'] };
/** Recurring prices (the seeded plans): id -> [unit amount, currency, interval]. */
const RECURRING = { price_plan_basic_monthly: [999, 'usd', 'month'], price_plan_pro_monthly: [2999, 'usd', 'month'], price_plan_pro_yearly: [29999, 'usd', 'year'] };

function error(res, status, type, message, extra = {}) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { type, message, ...extra } }));
}

function absoluteUrl(s) {
  try { return ['http:', 'https:'].includes(new URL(s).protocol); } catch { return false; }
}

export async function startStripeStandin({ checkout = null } = {}) {
  const idempotency = new Map(); // key -> { params, status, body }
  const inProgress = new Set(); // keys of requests still being processed (with latencyMs)
  const state = { requests: [], sessions: new Map(), down: false, webhooks: [], subscriptions: new Map(), invoicePayments: [], latencyMs: 0 };
  let base;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const request = { method: req.method, url: req.url, headers: req.headers, body: raw };
      state.requests.push(request);
      if (state.down) return error(res, 500, 'api_error', 'An unknown error occurred.');
      const page = /^\/c\/pay\/(cs_test_[0-9a-f]+)$/.exec(req.url);
      if (checkout && page) {
        return checkoutPage(req, raw, res, state.sessions.get(page[1]), checkout, state).catch((e) => {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
        });
      }
      if (req.method === 'GET' && req.url.split('?')[0] === '/v1/invoice_payments') return listInvoicePayments(req, raw, res, state);
      const subPath = /^\/v1\/subscriptions\/(sub_[A-Za-z0-9_]+)$/.exec(req.url);
      if (req.method === 'DELETE' && subPath) return cancelNow(req, raw, res, state, subPath[1]);
      if (req.method !== 'POST' || (req.url !== '/v1/checkout/sessions' && !subPath)) {
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
      if (key !== undefined && inProgress.has(key)) {
        return error(res, 409, 'idempotency_error', `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`);
      }
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
        const send = () => {
          inProgress.delete(key);
          if (key !== undefined) idempotency.set(key, { params, status, body: text });
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(text);
        };
        if (state.latencyMs > 0) {
          if (key !== undefined) inProgress.add(key);
          setTimeout(send, state.latencyMs);
        } else send();
      };
      if (subPath) {
        const sub = state.subscriptions.get(subPath[1]);
        if (!sub) return answer(404, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such subscription: '${subPath[1]}'` } });
        for (const [k, v] of form) {
          if (k !== 'cancel_at_period_end') return answer(400, { error: { type: 'invalid_request_error', code: 'parameter_unknown', param: k, message: `Received unknown parameter: ${k}` } });
          if (v !== 'true' && v !== 'false') return answer(400, { error: { type: 'invalid_request_error', code: 'parameter_invalid_boolean', param: k, message: `Invalid boolean: ${v}` } });
          sub.cancel_at_period_end = v === 'true';
          sub.cancel_at = sub.cancel_at_period_end ? sub.items.data[0].current_period_end : null;
        }
        return answer(200, sub);
      }
      const missing = (param) => answer(400, { error: { type: 'invalid_request_error', code: 'parameter_missing', param, message: `Missing required param: ${param}.` } });
      const invalid = (param, message) => answer(400, { error: { type: 'invalid_request_error', code: 'parameter_invalid', param, message } });
      const mode = form.get('mode');
      if (!mode) return missing('mode');
      if (mode !== 'payment' && mode !== 'subscription') return invalid('mode', `Invalid mode: ${mode}`);
      const price = form.get('line_items[0][price]');
      if (!price) return missing('line_items[0][price]');
      if (!PRICES[price] && !RECURRING[price]) return answer(400, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'line_items[0][price]', message: `No such price: '${price}'` } });
      if (mode === 'subscription' && !RECURRING[price]) return invalid('line_items[0][price]', 'You must provide at least one recurring price in `subscription` mode when using prices.');
      if (mode === 'payment' && RECURRING[price]) return invalid('line_items[0][price]', 'You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.');
      for (const k of form.keys()) {
        if (mode === 'subscription' && k.startsWith('payment_intent_data[')) return invalid('payment_intent_data', 'You can not pass `payment_intent_data` in `subscription` mode.');
        if (mode === 'payment' && k.startsWith('subscription_data[')) return invalid('subscription_data', 'You can only pass `subscription_data` in `subscription` mode.');
      }
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
      const [amount, currency] = PRICES[price] ?? RECURRING[price];
      const id = `cs_test_${randomBytes(12).toString('hex')}`;
      const session = {
        id, object: 'checkout.session', mode, status: 'open', payment_status: 'unpaid', livemode: false,
        created: Math.floor(Date.now() / 1000), expires_at: Math.floor(Date.now() / 1000) + 86400,
        amount_subtotal: amount * Number(quantity), amount_total: amount * Number(quantity), currency,
        client_reference_id: form.get('client_reference_id'), metadata, payment_intent: null,
        success_url: form.get('success_url'), cancel_url: form.get('cancel_url'),
        url: checkout ? `${base}/c/pay/${id}` : `https://checkout.stripe.com/c/pay/${id}`,
      };
      state.sessions.set(id, session);
      answer(200, session);
    });
  });
  await new Promise((resolve) => server.listen(checkout?.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  let paid = 0;
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    /** Records that `paymentIntent` paid `invoice` (what Stripe's Invoice Payments API then lists). */
    payInvoice(invoice, paymentIntent, amount, { status = 'paid', isDefault = true } = {}) {
      paid += 1;
      const created = Math.floor(Date.now() / 1000) + paid; // strictly increasing: newest first is well defined
      state.invoicePayments.push({
        id: `inpay_${randomBytes(12).toString('hex')}`, object: 'invoice_payment', amount_paid: status === 'paid' ? amount : null,
        amount_requested: amount, created, currency: 'usd', invoice, is_default: isDefault, livemode: false,
        payment: { type: 'payment_intent', payment_intent: paymentIntent }, status,
        status_transitions: { canceled_at: null, paid_at: status === 'paid' ? created : null },
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** GET /v1/invoice_payments, checked as Stripe's API reference describes it. */
function listInvoicePayments(req, raw, res, state) {
  const fail = (status, body) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
  if (req.headers.authorization !== `Bearer ${STRIPE_TEST_KEY}`) return error(res, 401, 'invalid_request_error', 'Invalid API Key provided.');
  const version = req.headers['stripe-version'];
  if (version !== undefined) {
    const m = /^(\d{4}-\d{2}-\d{2})\.[a-z]+$/.exec(version);
    if (!m) return error(res, 400, 'invalid_request_error', `Invalid Stripe API version: ${version}`);
    if (m[1] < '2025-03-31') return error(res, 404, 'invalid_request_error', `Unrecognized request URL (GET: /v1/invoice_payments).`);
  }
  if (raw !== '') return error(res, 400, 'invalid_request_error', 'A GET request takes its parameters in the query string.');
  const query = new URLSearchParams(req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '');
  const bad = (code, param, message) => fail(400, { error: { type: 'invalid_request_error', code, param, message } });
  const allowed = new Set(['invoice', 'status', 'payment[type]', 'payment[payment_intent]', 'limit', 'starting_after', 'ending_before', 'expand[]']);
  for (const k of query.keys()) if (!allowed.has(k)) return bad('parameter_unknown', k, `Received unknown parameter: ${k}`);
  const status = query.get('status');
  if (status !== null && !['canceled', 'open', 'paid'].includes(status)) return bad('parameter_invalid_string', 'status', `Invalid status: must be one of canceled, open, or paid`);
  const type = query.get('payment[type]');
  if (query.has('payment[payment_intent]') && type === null) return bad('parameter_missing', 'payment[type]', 'Missing required param: payment[type].');
  if (type !== null && !['payment_intent', 'payment_record'].includes(type)) return bad('parameter_invalid_string', 'payment[type]', 'Invalid payment[type]: must be one of payment_intent or payment_record');
  const limit = query.get('limit') === null ? 10 : Number(query.get('limit'));
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return bad('parameter_invalid_integer', 'limit', 'This value must be between 1 and 100.');
  const data = state.invoicePayments
    .filter((p) => (query.get('invoice') === null || p.invoice === query.get('invoice'))
      && (status === null || p.status === status)
      && (type === null || p.payment.type === type)
      && (!query.has('payment[payment_intent]') || p.payment.payment_intent === query.get('payment[payment_intent]')))
    .sort((a, b) => b.created - a.created);
  fail(200, { object: 'list', url: '/v1/invoice_payments', has_more: data.length > limit, data: data.slice(0, limit) });
}

const escape = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The hosted Checkout page of one session: GET shows it, POST pays (or `action=cancel` leaves). */
async function checkoutPage(req, raw, res, session, { webhookUrl, webhookSecret }, state) {
  if (!session) return res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>This checkout session does not exist.</h1>');
  if (req.method === 'GET') {
    const amount = `${(session.amount_total / 100).toFixed(2)} ${session.currency.toUpperCase()}`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Checkout (Stripe stand-in)</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1.5rem;margin-right:.5rem}</style></head>
<body><p><small>Local stand-in for Stripe Checkout; no card is charged.</small></p>
<h1>Pay ${escape(amount)}</h1><p>Session <code>${escape(session.id)}</code>, ${escape(session.status)}.</p>
<form method="post"><button name="action" value="pay" id="pay">Pay ${escape(amount)}</button><button name="action" value="cancel" id="cancel">Cancel</button></form>
</body></html>`);
  }
  if (req.method !== 'POST') return res.writeHead(405).end();
  if (new URLSearchParams(raw).get('action') === 'cancel') {
    return res.writeHead(303, { location: session.cancel_url }).end();
  }
  if (session.status === 'open') {
    Object.assign(session, { status: 'complete', payment_status: 'paid', payment_intent: `pi_${randomBytes(12).toString('hex')}` });
  }
  const now = Math.floor(Date.now() / 1000);
  const event = {
    id: `evt_${randomBytes(12).toString('hex')}`, object: 'event', api_version: '2024-06-20', created: now,
    livemode: false, pending_webhooks: 1, type: 'checkout.session.completed', data: { object: session },
  };
  const body = JSON.stringify(event);
  const signature = `t=${now},v1=${createHmac('sha256', webhookSecret).update(`${now}.${body}`).digest('hex')}`;
  const answer = await fetch(webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signature }, body });
  const text = await answer.text();
  state.webhooks.push({ event, status: answer.status, body: text });
  if (!answer.ok) {
    res.writeHead(502, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(`<h1>The webhook endpoint answered ${answer.status}</h1><pre>${escape(text)}</pre>`);
  }
  res.writeHead(303, { location: session.success_url.replaceAll('{CHECKOUT_SESSION_ID}', session.id) }).end();
}

/** `DELETE /v1/subscriptions/{id}`: cancels a registered subscription at once (Stripe's "Cancel a subscription"). */
function cancelNow(req, raw, res, state, id) {
  const send = (status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (req.headers.authorization !== `Bearer ${STRIPE_TEST_KEY}`) return error(res, 401, 'invalid_request_error', 'Invalid API Key provided.');
  for (const k of new URLSearchParams(raw).keys()) {
    if (!/^(cancellation_details\[(comment|feedback)\]|invoice_now|prorate|expand\[\d*\])$/.test(k)) {
      return send(400, { error: { type: 'invalid_request_error', code: 'parameter_unknown', param: k, message: `Received unknown parameter: ${k}` } });
    }
  }
  const sub = state.subscriptions.get(id);
  // A cancelled subscription is gone for this call as for an unknown one (Stripe answers 404).
  if (!sub || sub.status === 'canceled') return send(404, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such subscription: '${id}'` } });
  const at = Math.floor(Date.now() / 1000);
  Object.assign(sub, { status: 'canceled', canceled_at: sub.canceled_at ?? at, ended_at: sub.ended_at ?? at, cancel_at_period_end: false, cancel_at: null });
  return send(200, sub);
}
