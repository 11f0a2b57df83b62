// The demo app: one page, plain JavaScript, every call through the typed client.
//
// The journey: a visitor saves a prompt as a draft (anon key) -> signs in (an access token) ->
// claims the draft -> picks a model at its price -> generates and watches the job -> buys credits
// through Checkout -> sees the balance and the ledger change. Errors are shown as the API words
// them. What must survive the trip to the checkout page (the token, the claim token, the job) is
// kept in sessionStorage, as an app keeps its session.
import { createCreditsClient, CreditsApiError } from '/credits-client.js';

const $ = (id) => document.getElementById(id);
const saved = {
  get: (k) => sessionStorage.getItem(k),
  set: (k, v) => (v == null ? sessionStorage.removeItem(k) : sessionStorage.setItem(k, v)),
};

// 0. Configuration: where the API is and the project's anon key (a real app builds these in).
const config = await (await fetch('/config.json')).json();
$('api-url').textContent = config.apiUrl;

// One client for the page. It reads the token for every request, sends the anon key as `apikey`,
// gives generate and checkout an Idempotency-Key each, and retries 503/504 after Retry-After.
const api = createCreditsClient({
  baseUrl: config.apiUrl,
  anonKey: config.anonKey,
  accessToken: () => saved.get('token'),
  onRetry: ({ status, waitMs }) => notice(`The API answered ${status}; retrying in ${waitMs / 1000} s…`),
});

function showError(e) {
  const el = $('error');
  el.hidden = false;
  el.textContent = e instanceof CreditsApiError
    ? `${e.message} (${e.code}${e.field ? `, field ${e.field}` : ''}, HTTP ${e.status})`
    : `Could not reach the API: ${e.message}`;
}
function notice(text) { $('notice').hidden = !text; $('notice').textContent = text ?? ''; }

/** Runs a button's action with its errors shown; the button is disabled meanwhile. */
function onClick(id, action) {
  $(id).addEventListener('click', async () => {
    $('error').hidden = true;
    $(id).disabled = true;
    try { await action(); } catch (e) { showError(e); } finally { $(id).disabled = false; }
  });
}

// 1. A visitor's draft: no account needed, only the anon key.
onClick('save-draft', async () => {
  const draft = await api.createDraft({ prompt: $('prompt').value });
  saved.set('claimToken', draft.claim_token);
  $('draft-status').textContent = `Draft saved (${draft.draft_id.slice(0, 8)}…), claimable until ${new Date(draft.expires_at).toLocaleString()}.`;
  $('step-draft').classList.add('done');
});

// 2. Sign in. The token's claims are only read for display; the API verifies the token itself.
function showUser() {
  const token = saved.get('token');
  if (!token) { $('who').textContent = 'Signed out.'; return; }
  const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  $('who').textContent = `Signed in as ${claims.email ?? claims.sub}.`;
  $('step-sign-in').classList.add('done');
}
onClick('sign-in', async () => {
  saved.set('token', $('token').value.trim());
  $('token').value = '';
  try {
    await refreshAccount(); // the API says why when it does not accept the token
  } catch (e) {
    saved.set('token', null);
    throw e;
  } finally {
    showUser();
  }
});
onClick('sign-out', async () => { saved.set('token', null); showUser(); });

// 3. Claim the draft: it becomes the signed-in user's project.
onClick('claim', async () => {
  const claimToken = saved.get('claimToken');
  if (!claimToken) throw new Error('save a draft first');
  const claimed = await api.claimDraft(claimToken);
  saved.set('claimToken', null);
  saved.set('draftId', claimed.draft.id);
  $('claim-status').textContent = `Claimed: “${claimed.draft.prompt}”.`;
  $('step-claim').classList.add('done');
});

// 4. Models and their prices (public, no token).
let models = [];
function price() {
  const m = models.find((x) => x.id === document.querySelector('input[name=model]:checked')?.value);
  if (!m) return null;
  const minutes = Math.min(Math.max(Number($('minutes').value) || m.min_minutes, m.min_minutes), m.max_minutes);
  return { model: m, minutes, credits: m.cost_per_generation + m.cost_per_minute * minutes };
}
async function loadModels() {
  models = await api.models();
  $('models').replaceChildren(...models.map((m) => {
    const label = document.createElement('label');
    label.className = 'model';
    label.innerHTML = `<input type="radio" name="model" id="model-${m.id}" value="${m.id}" ${m.featured ? 'checked' : ''}> <b></b> <small></small>`;
    label.querySelector('b').textContent = m.name;
    label.querySelector('small').textContent = `${m.cost_per_generation} + ${m.cost_per_minute}/minute credits, ${m.min_minutes}-${m.max_minutes} min · ${m.description ?? ''}`;
    return label;
  }));
  $('models').addEventListener('change', showPrice);
  $('minutes').addEventListener('input', showPrice);
  showPrice();
}
function showPrice() { $('price').textContent = price()?.credits ?? '–'; }

// 5. Generate, then watch the job until it is READY or FAILED.
onClick('generate', async () => {
  const p = price();
  const draftId = saved.get('draftId');
  const source = draftId ? { draft_id: draftId } : { prompt: $('prompt').value };
  const started = await api.generate({ model_id: p.model.id, target_minutes: p.minutes, ...source });
  saved.set('draftId', null); // a draft starts one generation; the next one uses the prompt
  saved.set('jobId', started.job.id);
  showBalance(started.balance);
  await refreshAccount();
  await watchJob(started.job.id);
});
async function watchJob(id) {
  for (;;) {
    const job = await api.job(id);
    $('job-status').textContent = `Job ${job.id.slice(0, 8)}…: ${job.status}${job.credits_final != null ? `, ${job.credits_final} credits charged` : ''}`;
    $('job-progress').value = job.status === 'READY' ? 100 : job.progress ?? 0;
    $('job-steps').replaceChildren(...(job.steps ?? []).map((s) => Object.assign(document.createElement('li'), { textContent: `${s.name}: ${s.status}` })));
    if (job.status === 'READY' || job.status === 'FAILED') {
      saved.set('jobId', null);
      $('step-generate').classList.add('done');
      await refreshAccount();
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// 6. Buy credits: Checkout, then back here (CHECKOUT_SUCCESS_URL points at this page).
async function loadPackages() {
  const packages = await api.packages();
  $('packages').replaceChildren(...packages.map((p) => {
    const b = document.createElement('button');
    b.id = `buy-${p.id}`;
    b.textContent = `Buy ${p.name}: ${p.credits + p.bonus_credits} credits for ${(p.price_cents / 100).toFixed(2)} ${p.currency.toUpperCase()}`;
    return b;
  }));
  for (const p of packages) {
    onClick(`buy-${p.id}`, async () => {
      const { checkout_url } = await api.checkout(p.id);
      location.assign(checkout_url);
    });
  }
}
async function returnFromCheckout() {
  const params = new URLSearchParams(location.search);
  const outcome = params.get('checkout');
  if (!outcome) return;
  history.replaceState(null, '', location.pathname);
  if (outcome !== 'success') { $('checkout-status').textContent = 'Checkout cancelled; nothing was charged.'; return; }
  // Credits come from the signed webhook, which may land a moment after the redirect.
  for (let i = 0; i < 20; i++) {
    const latest = (await api.purchases()).items[0];
    if (latest && latest.status !== 'pending') {
      $('checkout-status').textContent = `Purchase ${latest.status}: ${latest.credits_granted} credits added.`;
      $('step-buy').classList.add('done');
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  $('checkout-status').textContent = 'Payment received; the credits will appear when the payment is confirmed.';
}

// Balance and ledger.
function showBalance(b) {
  $('balance-available').textContent = b.available;
  $('balance-held').textContent = b.held;
}
async function refreshAccount() {
  if (!saved.get('token')) return;
  const [balance, ledger] = await Promise.all([api.balance(), api.ledger({ limit: 20 })]);
  showBalance(balance);
  $('ledger').replaceChildren(...ledger.items.map((e) => {
    const tr = document.createElement('tr');
    for (const v of [e.id, e.type, signed(e.delta_available), signed(e.delta_held), e.balance_available_after, new Date(e.created_at).toLocaleTimeString()]) {
      tr.append(Object.assign(document.createElement('td'), { textContent: v }));
    }
    return tr;
  }));
}
const signed = (n) => (n > 0 ? `+${n}` : String(n));
onClick('refresh', refreshAccount);

// Start: public catalog first, then whatever the session already has.
try {
  await Promise.all([loadModels(), loadPackages()]);
  showUser();
  if (saved.get('claimToken')) $('draft-status').textContent = 'A draft is waiting to be claimed.';
  await returnFromCheckout();
  await refreshAccount();
  document.body.dataset.ready = 'true';
  if (saved.get('jobId')) await watchJob(saved.get('jobId'));
} catch (e) {
  showError(e);
  document.body.dataset.ready = 'true';
}
