// Bench only (tests/bench/es256.mjs): one ES256 token verified N times per request, by jwt-simple
// compiled to wasm (impl=rust) or by WebCrypto (impl=webcrypto); impl=none does nothing (baseline).
// Both do the whole verification: split, base64url, header (alg), claims (exp), signature.
// The wasm is instantiated when the isolate starts (as the shipped Worker's is), so a first call
// pays the key import and the first verification only.
import { initSync, Es256 } from './bench_jwt_es256.js';
import wasm from './bench_jwt_es256_bg.wasm';

initSync({ module: wasm });
const te = new TextEncoder();
const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const json = (s) => JSON.parse(new TextDecoder().decode(b64(s)));
let rust = null;
let web = null;

async function webVerify(key, token) {
  const [h, p, s] = token.split('.');
  if (!s || json(h).alg !== 'ES256') return false;
  const claims = json(p);
  if (typeof claims.exp !== 'number' || claims.exp < Date.now() / 1000) return false;
  return crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, b64(s), te.encode(`${h}.${p}`));
}

export default {
  async fetch(req, env) {
    const u = new URL(req.url);
    const impl = u.searchParams.get('impl');
    const n = Number(u.searchParams.get('n') ?? 1);
    const jwk = JSON.parse(env.JWK);
    let ok = 0;
    if (impl === 'rust') {
      if (!rust) rust = new Es256(Uint8Array.from([4, ...b64(jwk.x), ...b64(jwk.y)]));
      ok = rust.verify(env.TOKEN, n);
    } else if (impl === 'webcrypto') {
      if (!web) web = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
      for (let i = 0; i < n; i++) if (await webVerify(web, env.TOKEN)) ok++;
    }
    return new Response(JSON.stringify({ ok }), { headers: { 'content-type': 'application/json' } });
  },
};
