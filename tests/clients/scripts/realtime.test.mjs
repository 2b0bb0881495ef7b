// The realtime plugin (issue 6) through the unmodified supabase-js: channel()
// broadcast (self on/off, ack, REST fallback), presence (track, sync, leave on
// disconnect), private channels, and postgres_changes on the demo tables fed
// by REST writes under the demo's row policies.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { createClient } from '@supabase/supabase-js';
import { sign } from '../keys.mjs';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/clients/run.sh)`);
  return value;
};
const URL_ = env('SUPABASE_URL');
const ANON = env('SUPABASE_ANON_KEY');
const SERVICE = env('SUPABASE_SERVICE_KEY');
const SECRET = env('GOFORWARD_JWT_SECRET');
const now = () => Math.floor(Date.now() / 1000);
const tag = randomBytes(4).toString('hex');
const WAIT_MS = 5000;

const baseOptions = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: WebSocket },
};
const anonClient = () => createClient(URL_, ANON, baseOptions);
const userToken = (sub) =>
  sign({ iss: 'goforward', sub, role: 'authenticated', aud: 'authenticated', aal: 'aal1', iat: now(), exp: now() + 3600 }, SECRET);
// Third-party-auth style: supabase-js sends this token to REST and in realtime joins.
const userClient = (sub) => createClient(URL_, ANON, { ...baseOptions, accessToken: async () => userToken(sub) });

const clients = [];
const track = (c) => {
  clients.push(c);
  return c;
};
test.after(async () => {
  for (const c of clients) await c.removeAllChannels();
});

/** Resolves on SUBSCRIBED; rejects with the error on CHANNEL_ERROR / TIMED_OUT / CLOSED. */
const subscribe = (channel) =>
  new Promise((resolve, reject) => {
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') resolve(channel);
      else if (status !== 'SUBSCRIBED') reject(Object.assign(err ?? new Error(status), { status }));
    });
  });

/** Collects events and waits for the n-th one. */
function collector() {
  const items = [];
  let waiters = [];
  return {
    items,
    push(item) {
      items.push(item);
      waiters = waiters.filter((w) => !w());
    },
    async until(pred, what) {
      if (pred(items)) return items;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(items)}`)), WAIT_MS);
        waiters.push(() => {
          if (!pred(items)) return false;
          clearTimeout(timer);
          resolve(items);
          return true;
        });
      });
    },
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('broadcast between two clients: self off/on, ack, REST fallback', async () => {
  const room = `rt-room-${tag}`;
  const a = track(anonClient());
  const b = track(anonClient());
  const gotA = collector();
  const gotB = collector();
  const chA = a.channel(room, { config: { broadcast: { self: false, ack: true } } });
  chA.on('broadcast', { event: '*' }, (m) => gotA.push(m));
  const chB = b.channel(room, { config: { broadcast: { self: true } } });
  chB.on('broadcast', { event: 'hello' }, (m) => gotB.push(m));
  await Promise.all([subscribe(chA), subscribe(chB)]);

  // ack: true → send() resolves 'ok' after the server's reply.
  assert.equal(await chA.send({ type: 'broadcast', event: 'hello', payload: { from: 'a', n: 1 } }), 'ok');
  await gotB.until((xs) => xs.length === 1, "b receiving a's message");
  assert.deepEqual(gotB.items[0], { type: 'broadcast', event: 'hello', payload: { from: 'a', n: 1 } });

  // self: true → b receives its own message; a (self: false) gets b's but never its own.
  assert.equal(await chB.send({ type: 'broadcast', event: 'hello', payload: { from: 'b' } }), 'ok');
  await gotB.until((xs) => xs.length === 2, 'b receiving its own message');
  assert.equal(gotB.items[1].payload.from, 'b');
  await gotA.until((xs) => xs.length === 1, "a receiving b's message");
  await sleep(300);
  assert.deepEqual(gotA.items.map((m) => m.payload.from), ['b']);

  // The REST endpoint (what send() falls back to before joining) reaches subscribers.
  const res = await fetch(`${URL_}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: ANON, 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic: room, event: 'hello', payload: { from: 'rest' }, private: false }] }),
  });
  assert.equal(res.status, 202);
  assert.equal(await res.text(), '');
  await gotB.until((xs) => xs.some((m) => m.payload.from === 'rest'), 'the REST broadcast');
  // An unjoined channel's send() goes through REST and resolves ok.
  const c = track(anonClient());
  assert.equal(await c.channel(room).send({ type: 'broadcast', event: 'hello', payload: { from: 'unjoined' } }), 'ok');
  await gotA.until((xs) => xs.some((m) => m.payload.from === 'unjoined'), 'the fallback broadcast');
});

test('presence: track, sync on both sides, leave when a client disconnects', async () => {
  const room = `rt-lobby-${tag}`;
  const a = track(anonClient());
  const b = track(anonClient());
  const chA = a.channel(room, { config: { presence: { key: 'alice' } } });
  const joins = collector();
  const leaves = collector();
  const syncs = collector();
  chA
    .on('presence', { event: 'sync' }, () => syncs.push(chA.presenceState()))
    .on('presence', { event: 'join' }, (e) => joins.push(e))
    .on('presence', { event: 'leave' }, (e) => leaves.push(e));
  await subscribe(chA);
  assert.equal(await chA.track({ mood: 'happy' }), 'ok');
  await joins.until((xs) => xs.some((e) => e.key === 'alice'), 'alice seeing herself join');

  const chB = b.channel(room, { config: { presence: { key: 'bob' } } });
  const bSync = collector();
  chB.on('presence', { event: 'sync' }, () => bSync.push(chB.presenceState()));
  await subscribe(chB);
  // Bob's first sync (presence_state) already holds alice with her metadata.
  await bSync.until((xs) => xs.some((s) => s.alice), "bob's state with alice");
  const state = bSync.items.find((s) => s.alice);
  assert.equal(state.alice[0].mood, 'happy');
  assert.equal(typeof state.alice[0].presence_ref, 'string');

  assert.equal(await chB.track({ mood: 'curious' }), 'ok');
  await joins.until((xs) => xs.some((e) => e.key === 'bob'), 'alice seeing bob join');
  await syncs.until((xs) => xs.some((s) => s.bob && s.alice), 'a sync with both');
  assert.equal(chA.presenceState().bob[0].mood, 'curious');

  // Bob's socket goes away: alice sees bob leave.
  b.realtime.disconnect();
  await leaves.until((xs) => xs.some((e) => e.key === 'bob'), 'bob leaving');
  assert.equal(leaves.items.find((e) => e.key === 'bob').leftPresences[0].mood, 'curious');
  assert.equal(chA.presenceState().bob, undefined);
});

test('private channels: refused without a policy, with the reason realtime-js reports', async () => {
  const a = track(anonClient());
  const ch = a.channel(`rt-private-${tag}`, { config: { private: true } });
  await assert.rejects(subscribe(ch), (err) => {
    assert.equal(err.status, 'CHANNEL_ERROR');
    assert.match(err.message, /Unauthorized: You do not have permissions to read from this Channel topic/);
    return true;
  });
  await a.removeChannel(ch);
  // An expired user token is refused at join.
  const expired = createClient(URL_, ANON, {
    ...baseOptions,
    accessToken: async () => sign({ iss: 'goforward', sub: randomUUID(), role: 'authenticated', iat: now() - 7200, exp: now() - 3600 }, SECRET),
  });
  track(expired);
  // Fetch the token before the first join, so the join itself carries it.
  await expired.realtime.setAuth();
  const ch2 = expired.channel(`rt-exp-${tag}`);
  await assert.rejects(subscribe(ch2), (err) => {
    assert.equal(err.status, 'CHANNEL_ERROR');
    assert.match(err.message, /InvalidJWTToken: Token has expired/);
    return true;
  });
});

test('access_token refresh: a valid token keeps the channel, an expired one closes it', async () => {
  const user = randomUUID();
  const c = track(userClient(user));
  await c.realtime.setAuth();
  const system = collector();
  const statuses = collector();
  const ch = c.channel(`rt-token-${tag}`).on('system', {}, (m) => system.push(m));
  await new Promise((resolve, reject) => {
    ch.subscribe((status) => {
      statuses.push(status);
      if (status === 'SUBSCRIBED') resolve();
      if (status === 'CHANNEL_ERROR') reject(new Error(status));
    });
  });
  // A fresh token for the same user: nothing happens, broadcasts still flow.
  await c.realtime.setAuth(userToken(user));
  assert.equal(await ch.send({ type: 'broadcast', event: 'still-here', payload: {} }), 'ok');
  // An expired token: the server answers with a system error and closes the channel.
  await c.realtime.setAuth(sign({ iss: 'goforward', sub: user, role: 'authenticated', iat: now() - 7200, exp: now() - 3600 }, SECRET));
  await system.until((xs) => xs.some((m) => m.status === 'error'), 'the system error');
  const err = system.items.find((m) => m.status === 'error');
  assert.equal(err.extension, 'system');
  assert.match(err.message, /expired/i);
  await statuses.until((xs) => xs.includes('CLOSED'), 'the channel closing');
});

test('postgres_changes from REST writes, filtered and under the row policy', async (t) => {
  const ALICE = randomUUID();
  const BOB = randomUUID();
  const alice = track(userClient(ALICE));
  const bob = track(userClient(BOB));
  // Probe the REST API: these scenarios need inserts through /rest/v1.
  const probe = await alice.from('todos').insert({ title: `rt-probe-${tag}` }).select().single();
  if (probe.error) {
    t.skip(`REST inserts unavailable: ${probe.error.message}`);
    return;
  }
  await Promise.all([alice.realtime.setAuth(), bob.realtime.setAuth()]);
  const aliceTodos = collector();
  const bobTodos = collector();
  const filtered = collector();
  const chA = alice
    .channel(`rt-db-a-${tag}`)
    .on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, (p) => aliceTodos.push(p));
  const chB = bob
    .channel(`rt-db-b-${tag}`)
    .on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, (p) => bobTodos.push(p))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos', filter: `priority=eq.7` }, (p) => filtered.push(p));
  await Promise.all([subscribe(chA), subscribe(chB)]);

  const ins = await alice.from('todos').insert({ title: `rt-a-${tag}`, priority: 1 }).select().single();
  assert.equal(ins.error, null);
  await aliceTodos.until((xs) => xs.some((p) => p.new?.title === `rt-a-${tag}`), "alice's insert");
  const ev = aliceTodos.items.find((p) => p.new?.title === `rt-a-${tag}`);
  assert.equal(ev.eventType, 'INSERT');
  assert.equal(ev.schema, 'public');
  assert.equal(ev.table, 'todos');
  assert.equal(typeof ev.commit_timestamp, 'string');
  assert.equal(ev.new.user_id, ALICE);

  const upd = await alice.from('todos').update({ done: true }).eq('id', ins.data.id).select();
  assert.equal(upd.error, null);
  await aliceTodos.until((xs) => xs.some((p) => p.eventType === 'UPDATE' && p.new?.id === ins.data.id), "alice's update");
  const del = await alice.from('todos').delete().eq('id', ins.data.id);
  assert.equal(del.error, null);
  await aliceTodos.until((xs) => xs.some((p) => p.eventType === 'DELETE' && p.old?.id === ins.data.id), "alice's delete");

  // Bob's rows: the filtered binding only sees priority 7; alice never sees bob's rows.
  await bob.from('todos').insert({ title: `rt-b1-${tag}`, priority: 3 });
  await bob.from('todos').insert({ title: `rt-b2-${tag}`, priority: 7 });
  await bobTodos.until((xs) => xs.filter((p) => p.eventType === 'INSERT').length === 2, "bob's inserts");
  await filtered.until((xs) => xs.length === 1, 'the filtered insert');
  assert.equal(filtered.items[0].new.title, `rt-b2-${tag}`);
  await sleep(300);
  assert.equal(filtered.items.length, 1);
  assert.ok(!aliceTodos.items.some((p) => p.new?.user_id === BOB), 'alice must not receive bob rows');
  assert.ok(!bobTodos.items.some((p) => p.new?.user_id === ALICE || p.old?.user_id === ALICE), 'bob must not receive alice rows');

  // PostgreSQL: a row written by another program (psql) arrives too, once, to its owner only.
  if (process.env.GOFORWARD_BACKEND === 'postgres') {
    const url = env('GOFORWARD_DATABASE_URL');
    const title = `rt-psql-${tag}`;
    execFileSync('psql', [url, '-q', '-v', 'ON_ERROR_STOP=1', '-c', `INSERT INTO todos (user_id, title) VALUES ('${ALICE}', '${title}')`]);
    await aliceTodos.until((xs) => xs.some((p) => p.new?.title === title), 'the psql insert');
    await sleep(300);
    assert.equal(aliceTodos.items.filter((p) => p.new?.title === title).length, 1);
    assert.ok(!bobTodos.items.some((p) => p.new?.title === title), 'bob must not receive the psql row');
  }
});
