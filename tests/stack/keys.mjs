// Local signing keys for `npm run dev`, made once in .local/keys/ (never committed):
//   es256.private.jwk.json  the local ES256 signing key (what Supabase Auth's signing key is)
//   jwks.json               its public half, served at <SUPABASE_URL>/auth/v1/.well-known/jwks.json
//   postgrest-jwks.json     the same public key plus the legacy HS256 secret as an `oct` key: given
//                           to PostgREST as PGRST_JWT_SECRET, so it accepts exactly what the edge does
// Usage: node tests/stack/keys.mjs DIR HS256_SECRET
import { generateKeyPairSync, createPrivateKey, createPublicKey, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export function localKeys(dir, secret) {
  mkdirSync(dir, { recursive: true });
  const privPath = path.join(dir, 'es256.private.jwk.json');
  if (!existsSync(privPath)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };
    writeFileSync(privPath, JSON.stringify(jwk), { mode: 0o600 });
  }
  const priv = JSON.parse(readFileSync(privPath, 'utf8'));
  const { d, ...pub } = priv;
  const jwks = { keys: [pub] };
  const oct = { kty: 'oct', k: Buffer.from(secret).toString('base64url'), alg: 'HS256' };
  writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(jwks));
  writeFileSync(path.join(dir, 'postgrest-jwks.json'), JSON.stringify({ keys: [pub, oct] }));
  return { privateJwk: priv, privateKey: createPrivateKey({ key: priv, format: 'jwk' }), publicKey: createPublicKey({ key: pub, format: 'jwk' }), jwks };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  localKeys(process.argv[2], process.argv[3]);
}
