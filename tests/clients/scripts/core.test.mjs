// The foundation's real-client test: plumbing every plugin shares (keys, error
// shapes, CORS, security headers, request ids, health, metrics), exercised with
// the unmodified supabase-js from npm and with plain fetch.
//
// Only paths that stay unknown after the feature issues land are used for the
// "not found" checks (random table / route names), so this file keeps passing
// as the plugins grow.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createClient } from '@supabase/supabase-js';
import { sign, apiKey } from '../keys.mjs';

const require = createRequire(import.meta.url);
// auth-js's own request helper: the code path every auth-js call goes through,
// including its error parsing (`handleError` → AuthApiError{status, code}).
const { _request: authRequest } = require('@supabase/auth-js/dist/main/lib/fetch.js');
const { isAuthApiError } = require('@supabase/auth-js/dist/main/lib/errors.js');

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/clients/run.sh)`);
  return value;
};
const URL_ = env('SUPABASE_URL');
const ANON = env('SUPABASE_ANON_KEY');
const SERVICE = env('SUPABASE_SERVICE_KEY');
const SECRET = env('GOFORWARD_JWT_SECRET');

const suffix = randomBytes(6).toString('hex');
const MISSING_TABLE = `gf_core_missing_${suffix}`;
const MISSING_ROUTE = `gf-core-missing-${suffix}`;
const now = () => Math.floor(Date.now() / 1000);

const GARBAGE = 'not-a-jwt';
const WRONG_SECRET_TOKEN = apiKey('anon', randomBytes(32).toString('hex'));
const expiredToken = () => sign({ iss: 'goforward', role: 'anon', iat: now() - 7200, exp: now() - 3600 }, SECRET);
// `alg: none` with a service_role claim: must never be accepted.
const ALG_NONE_TOKEN = [
  Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url'),
  Buffer.from(JSON.stringify({ iss: 'goforward', role: 'service_role', iat: now(), exp: now() + 3600 })).toString('base64url'),
  '',
].join('.');

const client = (key, options = {}) =>
  createClient(URL_, key, {
    ...options,
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket }, // Node 20 has no native WebSocket
  });
const withBearer = (token) => client(ANON, { global: { headers: { Authorization: `Bearer ${token}` } } });

async function get(path, { headers = {}, method = 'GET', body } = {}) {
  const res = await fetch(`${URL_}${path}`, { method, headers, body });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, text, json };
}
const keyed = (key = ANON, extra = {}) => ({ apikey: key, Authorization: `Bearer ${key}`, ...extra });

// --- shape checkers: one per API family -----------------------------------

function assertPostgrestError(error, code) {
  assert.ok(error && typeof error === 'object', `expected a PostgREST error object, got ${JSON.stringify(error)}`);
  assert.equal(error.code, code, `PostgREST code; error was ${JSON.stringify(error)}`);
  assert.equal(error.details, null, 'details must be null');
  assert.equal(error.hint, null, 'hint must be null');
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0, 'message must not be empty');
}

function assertGoTrueError({ res, json }, status, code) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(res.headers.get('x-supabase-api-version'), '2024-01-01', 'GoTrue errors echo X-Supabase-Api-Version');
  assert.ok(json && typeof json === 'object', 'JSON body');
  assert.equal(json.code, code, `GoTrue code; body was ${JSON.stringify(json)}`);
  assert.equal(typeof json.message, 'string');
  assert.ok(json.message.length > 0);
}

function assertStorageError({ res, json }, status) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.ok(json && typeof json === 'object', 'JSON body');
  assert.equal(typeof json.statusCode, 'string', `statusCode is a string; body was ${JSON.stringify(json)}`);
  assert.match(json.statusCode, /^\d{3}$/);
  for (const field of ['code', 'error', 'message']) {
    assert.equal(typeof json[field], 'string', `storage error field ${field}; body was ${JSON.stringify(json)}`);
    assert.ok(json[field].length > 0, `storage error field ${field} is empty`);
  }
}

function assertRealtimeError({ res, json }, status) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.ok(json && typeof json === 'object', 'JSON body');
  assert.equal(typeof json.message, 'string', `realtime error message; body was ${JSON.stringify(json)}`);
  assert.ok(json.message.length > 0);
}

// --- health -----------------------------------------------------------------

test('GET /health answers 200 {"status":"ok"} without any key', async () => {
  const { res, json } = await get('/health');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(json?.status, 'ok');
});

test('GET /health/ready answers 200 with database and migrations checked', async () => {
  const { res, json } = await get('/health/ready');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(json?.status, 'ok');
  assert.equal(json?.checks?.database, true);
  assert.equal(json?.checks?.migrations, true);
});

// --- rest through supabase-js (postgrest-js) ----------------------------------

test('supabase-js: select on an unknown table gives PGRST205 / 404 (anon key)', async () => {
  const supabase = client(ANON);
  const { data, error, status } = await supabase.from(MISSING_TABLE).select();
  assert.equal(status, 404);
  assert.equal(data, null);
  assertPostgrestError(error, 'PGRST205');
});

test('supabase-js: the service_role key is accepted too (404, not 401)', async () => {
  const supabase = client(SERVICE);
  const { error, status } = await supabase.from(MISSING_TABLE).select('id').eq('id', 1);
  assert.equal(status, 404);
  assertPostgrestError(error, 'PGRST205');
});

test('supabase-js: writes to an unknown table give PGRST205 / 404', async () => {
  const supabase = client(ANON);
  for (const [name, query] of [
    ['insert', supabase.from(MISSING_TABLE).insert({ title: 'x' })],
    ['update', supabase.from(MISSING_TABLE).update({ title: 'y' }).eq('id', 1)],
    ['delete', supabase.from(MISSING_TABLE).delete().eq('id', 1)],
  ]) {
    const { error, status } = await query;
    assert.equal(status, 404, `${name} status`);
    assertPostgrestError(error, 'PGRST205');
  }
});

test('supabase-js: throwOnError() throws a PostgrestError carrying PGRST205', async () => {
  const supabase = client(ANON);
  await assert.rejects(async () => supabase.from(MISSING_TABLE).select().throwOnError(), (err) => {
    assert.equal(err.name, 'PostgrestError');
    assert.equal(err.code, 'PGRST205');
    return true;
  });
});

test('supabase-js: a garbage bearer gives 401 PGRST301', async () => {
  const { data, error, status } = await withBearer(GARBAGE).from(MISSING_TABLE).select();
  assert.equal(status, 401);
  assert.equal(data, null);
  assertPostgrestError(error, 'PGRST301');
});

test('supabase-js: a bearer signed with another secret gives 401 PGRST301', async () => {
  const { error, status } = await withBearer(WRONG_SECRET_TOKEN).from(MISSING_TABLE).select();
  assert.equal(status, 401);
  assertPostgrestError(error, 'PGRST301');
});

test('supabase-js: an expired bearer gives 401 PGRST303', async () => {
  const { error, status } = await withBearer(expiredToken()).from(MISSING_TABLE).select();
  assert.equal(status, 401);
  assertPostgrestError(error, 'PGRST303');
});

test('supabase-js: an alg=none service_role token is refused with 401', async () => {
  const { error, status } = await withBearer(ALG_NONE_TOKEN).from(MISSING_TABLE).select();
  assert.equal(status, 401);
  assertPostgrestError(error, 'PGRST301');
});

test('supabase-js: a client created with a key from another secret gets 401', async () => {
  const { error, status } = await client(WRONG_SECRET_TOKEN).from(MISSING_TABLE).select();
  assert.equal(status, 401);
  assertPostgrestError(error, 'PGRST301');
});

test('rest: an invalid apikey is refused even with a valid bearer', async () => {
  const r = await get(`/rest/v1/${MISSING_TABLE}`, { headers: { apikey: GARBAGE, Authorization: `Bearer ${ANON}` } });
  assert.equal(r.res.status, 401);
  assertPostgrestError(r.json, 'PGRST301');
});

test('rest: error bodies are JSON (application/json)', async () => {
  const r = await get(`/rest/v1/${MISSING_TABLE}`, { headers: keyed() });
  assert.equal(r.res.status, 404);
  assert.match(r.res.headers.get('content-type') ?? '', /application\/json/);
  assertPostgrestError(r.json, 'PGRST205');
});

// --- auth (auth-js request path) ---------------------------------------------

test('auth: GET /auth/v1/settings with the client headers (auth-js _request)', async () => {
  const supabase = client(ANON);
  assert.equal(supabase.auth.url, `${URL_}/auth/v1`);
  assert.equal(supabase.auth.headers.apikey, ANON);
  const { data, error } = await authRequest(fetch, 'GET', `${supabase.auth.url}/settings`, { headers: supabase.auth.headers });
  assert.equal(error, null);
  assert.equal(typeof data.external, 'object');
  assert.ok(data.external !== null);
  assert.equal(typeof data.external.email, 'boolean');
  assert.equal(typeof data.disable_signup, 'boolean');
  assert.equal(typeof data.mailer_autoconfirm, 'boolean');

  // The same with plain fetch and the client's headers.
  const r = await get('/auth/v1/settings', { headers: supabase.auth.headers });
  assert.equal(r.res.status, 200);
  assert.match(r.res.headers.get('content-type') ?? '', /application\/json/);
  assert.deepEqual(r.json, data);
});

test('auth: an unknown endpoint is a GoTrue-shaped 404 that auth-js parses', async () => {
  const supabase = client(ANON);
  const r = await get(`/auth/v1/${MISSING_ROUTE}`, { headers: { ...supabase.auth.headers, 'X-Supabase-Api-Version': '2024-01-01' } });
  assertGoTrueError(r, 404, 'not_found');

  await assert.rejects(authRequest(fetch, 'GET', `${supabase.auth.url}/${MISSING_ROUTE}`, { headers: supabase.auth.headers }), (err) => {
    assert.ok(isAuthApiError(err), `expected AuthApiError, got ${err?.name}: ${err?.message}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'not_found');
    return true;
  });
});

test('auth: garbage and expired bearers get 401 bad_jwt through auth-js', async () => {
  const supabase = client(ANON);
  for (const jwt of [GARBAGE, WRONG_SECRET_TOKEN, expiredToken(), ALG_NONE_TOKEN]) {
    await assert.rejects(authRequest(fetch, 'GET', `${supabase.auth.url}/settings`, { headers: supabase.auth.headers, jwt }), (err) => {
      assert.ok(isAuthApiError(err), `expected AuthApiError, got ${err?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      assert.equal(err.code, 'bad_jwt');
      return true;
    });
  }
});

// --- keys required on every scope -------------------------------------------

const SCOPES = {
  rest: `/rest/v1/${MISSING_TABLE}`,
  auth: '/auth/v1/settings',
  storage: `/storage/v1/${MISSING_ROUTE}`,
  realtime: `/realtime/v1/${MISSING_ROUTE}`,
};

// `codes.rest` is the exact PostgREST code (required); `codes.auth` the exact
// GoTrue code, or when absent any non-empty code.
function assertScopeError(scope, r, status, codes = {}) {
  switch (scope) {
    case 'rest':
      assert.equal(r.res.status, status);
      assert.match(r.res.headers.get('content-type') ?? '', /application\/json/);
      return assertPostgrestError(r.json, codes.rest);
    case 'auth':
      if (codes.auth === undefined) assert.ok(typeof r.json?.code === 'string' && r.json.code.length > 0, `GoTrue code; body was ${r.text}`);
      return assertGoTrueError(r, status, codes.auth ?? r.json?.code);
    case 'storage':
      return assertStorageError(r, status);
    case 'realtime':
      return assertRealtimeError(r, status);
    default:
      throw new Error(scope);
  }
}

for (const [scope, path] of Object.entries(SCOPES)) {
  test(`${scope}: no apikey and no bearer → 401 "No API key found in request"`, async () => {
    const r = await get(path);
    assertScopeError(scope, r, 401, { rest: 'PGRST301', auth: 'no_authorization' });
    assert.match(r.json.message, /No API key found in request/);
  });

  test(`${scope}: garbage bearer → 401 in the ${scope} shape`, async () => {
    const r = await get(path, { headers: { apikey: ANON, Authorization: `Bearer ${GARBAGE}` } });
    assertScopeError(scope, r, 401, { rest: 'PGRST301', auth: 'bad_jwt' });
  });

  test(`${scope}: expired bearer → 401 in the ${scope} shape`, async () => {
    const r = await get(path, { headers: { apikey: ANON, Authorization: `Bearer ${expiredToken()}` } });
    assertScopeError(scope, r, 401, { rest: 'PGRST303', auth: 'bad_jwt' });
  });

  test(`${scope}: apikey from another secret → 401`, async () => {
    const r = await get(path, { headers: { apikey: WRONG_SECRET_TOKEN } });
    assertScopeError(scope, r, 401, { rest: 'PGRST301' });
  });

  test(`${scope}: the apikey header alone (no bearer) is enough`, async () => {
    const r = await get(path, { headers: { apikey: ANON } });
    if (scope === 'auth') {
      assert.equal(r.res.status, 200, `GET /auth/v1/settings with apikey only: ${r.text}`);
    } else {
      assertScopeError(scope, r, 404, { rest: 'PGRST205' });
    }
  });

  test(`${scope}: a valid bearer alone (no apikey) is enough`, async () => {
    const r = await get(path, { headers: { Authorization: `Bearer ${ANON}` } });
    if (scope === 'auth') {
      assert.equal(r.res.status, 200, `GET /auth/v1/settings with bearer only: ${r.text}`);
    } else {
      assertScopeError(scope, r, 404, { rest: 'PGRST205' });
    }
  });
}

// --- CORS, security headers, request ids --------------------------------------

const ORIGIN = 'http://localhost:3000';

for (const [scope, path] of Object.entries({ ...SCOPES, health: '/health/ready' })) {
  test(`CORS preflight on ${scope} is answered without a key`, async () => {
    const res = await fetch(`${URL_}${path}`, {
      method: 'OPTIONS',
      headers: {
        Origin: ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'apikey, authorization, x-client-info, content-type, prefer',
      },
    });
    await res.arrayBuffer();
    assert.ok(res.status >= 200 && res.status < 300, `preflight status ${res.status}`);
    const allowOrigin = res.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `access-control-allow-origin: ${allowOrigin}`);
    const allowMethods = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    assert.ok(allowMethods === '*' || allowMethods.includes('POST'), `access-control-allow-methods: ${allowMethods}`);
    const allowHeaders = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['apikey', 'authorization', 'x-client-info', 'content-type', 'prefer']) {
      assert.ok(allowHeaders === '*' || allowHeaders.includes(h), `access-control-allow-headers lacks ${h}: ${allowHeaders}`);
    }
  });
}

test('CORS on actual responses: allow-origin, and Content-Range is exposed', async () => {
  const r = await get(`/rest/v1/${MISSING_TABLE}`, { headers: keyed(ANON, { Origin: ORIGIN }) });
  assert.equal(r.res.status, 404);
  const allowOrigin = r.res.headers.get('access-control-allow-origin');
  assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `access-control-allow-origin: ${allowOrigin}`);
  const exposed = (r.res.headers.get('access-control-expose-headers') ?? '').toLowerCase();
  assert.ok(exposed.includes('content-range'), `access-control-expose-headers: ${exposed}`);
});

test('every response carries x-content-type-options: nosniff and a unique x-request-id', async () => {
  const requests = [
    ['/health', {}],
    ['/health/ready', {}],
    ['/metrics', {}],
    ['/auth/v1/settings', keyed()],
    [`/auth/v1/${MISSING_ROUTE}`, keyed()],
    [`/rest/v1/${MISSING_TABLE}`, keyed()],
    [`/rest/v1/${MISSING_TABLE}`, {}], // 401
    [`/rest/v1/${MISSING_TABLE}`, keyed(ANON, { Authorization: `Bearer ${GARBAGE}` })], // 401
    [`/storage/v1/${MISSING_ROUTE}`, keyed()],
    [`/realtime/v1/${MISSING_ROUTE}`, keyed()],
  ];
  const ids = new Set();
  for (const [path, headers] of requests) {
    const { res } = await get(path, { headers });
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `nosniff on ${path} (${res.status})`);
    const id = res.headers.get('x-request-id');
    assert.ok(id && id.trim().length > 0, `x-request-id on ${path} (${res.status})`);
    assert.ok(!ids.has(id), `x-request-id ${id} repeated on ${path}`);
    ids.add(id);
  }
});

// --- metrics (last: it checks what the tests above did) -----------------------

function requestCount(text, labels) {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = line.match(/^goforward_http_requests_total\{([^}]*)\}\s+(\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/);
    if (!m) continue;
    const have = Object.fromEntries([...m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) {
      total += Number(m[2]);
      found = true;
    }
  }
  return found ? total : 0;
}

test('GET /metrics is Prometheus text with goforward_http_requests_total', async () => {
  const first = await get('/metrics');
  assert.equal(first.res.status, 200);
  assert.match(first.res.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(first.text, /^# TYPE goforward_http_requests_total counter$/m);
  assert.match(first.text, /^goforward_http_requests_total\{.*\} \d+/m);
  assert.match(first.text, /^# TYPE goforward_http_request_duration_seconds histogram$/m);

  // The tests above produced 401s and 404s; the counter has them by status.
  assert.ok(requestCount(first.text, { status: '401' }) >= 1, 'a status="401" sample');
  assert.ok(requestCount(first.text, { status: '404' }) >= 1, 'a status="404" sample');

  // The counter moves: three more readiness probes are counted.
  const before = requestCount(first.text, { method: 'GET', status: '200' });
  for (let i = 0; i < 3; i++) assert.equal((await get('/health/ready')).res.status, 200);
  const after = requestCount((await get('/metrics')).text, { method: 'GET', status: '200' });
  assert.ok(after >= before + 3, `GET 200 count went from ${before} to ${after}`);

  // Labels are route patterns, never raw paths or credentials.
  assert.ok(!first.text.includes(MISSING_TABLE), 'a raw request path leaked into metric labels');
  assert.ok(!first.text.includes(MISSING_ROUTE), 'a raw request path leaked into metric labels');
  for (const secret of [ANON, SERVICE, SECRET]) assert.ok(!first.text.includes(secret), 'a credential leaked into /metrics');
});
