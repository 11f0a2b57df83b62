// Bench only (tests/bench/hs256.mjs): one HS256 token verified N times per request, by the Worker's
// verifier compiled to wasm (impl=rust: shared::jwt, jwt-simple underneath) or by WebCrypto's HMAC
// as the TypeScript twin does it (impl=webcrypto: signature, then the claims it checks);
// impl=none does nothing (baseline).
import { initSync, verify } from './bench_jwt_hs256.js';
import wasm from './bench_jwt_hs256_bg.wasm';

initSync({ module: wasm });
const te = new TextEncoder();
const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const json = (s) => JSON.parse(new TextDecoder().decode(b64(s)));
let key = null;

async function webVerify(token, issuer) {
  const [h, p, s] = token.split('.');
  if (!s || json(h).alg !== 'HS256') return false;
  if (!(await crypto.subtle.verify('HMAC', key, b64(s), te.encode(`${h}.${p}`)))) return false;
  const c = json(p);
  return typeof c.exp === 'number' && c.exp + 30 >= Date.now() / 1000 && c.aud === 'authenticated' && c.iss === issuer && typeof c.sub === 'string';
}

export default {
  async fetch(req, env) {
    const u = new URL(req.url);
    const impl = u.searchParams.get('impl');
    const n = Number(u.searchParams.get('n') ?? 1);
    let ok = 0;
    if (impl === 'rust') {
      ok = verify(env.TOKEN, env.SECRET, env.ISSUER, Date.now() / 1000, n);
    } else if (impl === 'webcrypto') {
      key ??= await crypto.subtle.importKey('raw', te.encode(env.SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      for (let i = 0; i < n; i++) if (await webVerify(env.TOKEN, env.ISSUER)) ok++;
    }
    return new Response(JSON.stringify({ ok }), { headers: { 'content-type': 'application/json' } });
  },
};
