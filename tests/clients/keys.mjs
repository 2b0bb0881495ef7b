// HS256 JWTs for the client tests, minted with node's crypto (no JWT library),
// exactly as `goforward keys` / `TokenSigner::api_key` mint them.
//
// As a module:  import { sign, apiKey } from '../keys.mjs'
// As a command: GOFORWARD_JWT_SECRET=<hex> node keys.mjs anon|service_role [valid_for_secs]
//               prints the key on stdout. The secret comes from the environment,
//               never from argv, so it does not show up in `ps`.

import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const b64url = (value) => Buffer.from(value).toString('base64url');

/** Signs `claims` with HS256 under `secret` (a string, used as raw bytes). */
export function sign(claims, secret) {
  if (typeof secret !== 'string' || secret.length === 0) throw new Error('sign: empty secret');
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** A Supabase-style API key: {"iss":"goforward","role":role,"iat":now,"exp":now+validForSecs}. */
export function apiKey(role, secret, validForSecs = 3600, now = Math.floor(Date.now() / 1000)) {
  return sign({ iss: 'goforward', role, iat: now, exp: now + validForSecs }, secret);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [role, validFor] = process.argv.slice(2);
  const secret = process.env.GOFORWARD_JWT_SECRET;
  if (!role || !secret) {
    process.stderr.write('usage: GOFORWARD_JWT_SECRET=<secret> node keys.mjs <role> [valid_for_secs]\n');
    process.exit(2);
  }
  process.stdout.write(`${apiKey(role, secret, validFor ? Number(validFor) : 3600)}\n`);
}
