// The rest plugin (issue 4) through the unmodified supabase-js: from(table)
// select / filters / order / range / count / single / maybeSingle / csv,
// insert (single, bulk, returning), upsert, update, delete — as anon, as two
// different users under the demo's owner policy on `todos`, and as service_role.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, randomBytes } from 'node:crypto';
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

const client = (key, headers = {}) =>
  createClient(URL_, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
    global: { headers },
  });
const userToken = (sub) =>
  sign({ iss: 'goforward', sub, role: 'authenticated', aud: 'authenticated', aal: 'aal1', iat: now(), exp: now() + 3600 }, SECRET);
const asUser = (sub) => client(ANON, { Authorization: `Bearer ${userToken(sub)}` });

const anon = client(ANON);
const service = client(SERVICE);
const ALICE = randomUUID();
const BOB = randomUUID();
const alice = asUser(ALICE);
const bob = asUser(BOB);
const tag = randomBytes(4).toString('hex');

function ok({ error, status }, expected) {
  assert.equal(error, null, `unexpected error ${JSON.stringify(error)}`);
  if (expected) assert.equal(status, expected);
}

test('insert single and bulk returning, owner filled from the caller', async () => {
  const one = await alice.from('todos').insert({ title: `a-1-${tag}`, priority: 3 }).select().single();
  ok(one, 201);
  assert.equal(one.data.user_id, ALICE);
  assert.equal(one.data.done, false);
  assert.equal(typeof one.data.id, 'number');
  assert.match(one.data.inserted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);

  const bulk = await alice
    .from('todos')
    .insert([{ title: `a-2-${tag}`, priority: 1 }, { title: `a-3-${tag}` }])
    .select('title, priority');
  ok(bulk, 201);
  assert.deepEqual(bulk.data, [
    { title: `a-2-${tag}`, priority: 1 },
    { title: `a-3-${tag}`, priority: null },
  ]);

  const minimal = await bob.from('todos').insert([{ title: `b-1-${tag}`, priority: 2 }, { title: `b-2-${tag}`, priority: 5 }]);
  ok(minimal, 201);
  assert.equal(minimal.data, null);
});

test('select with filters, order, range and count; each user sees only their own todos', async () => {
  const mine = await alice.from('todos').select('title', { count: 'exact' }).like('title', `%-${tag}`).order('title');
  ok(mine);
  assert.equal(mine.count, 3);
  assert.deepEqual(mine.data.map((t) => t.title), [`a-1-${tag}`, `a-2-${tag}`, `a-3-${tag}`]);

  const theirs = await bob.from('todos').select('title').like('title', `%-${tag}`).order('title', { ascending: false });
  ok(theirs);
  assert.deepEqual(theirs.data.map((t) => t.title), [`b-2-${tag}`, `b-1-${tag}`]);

  const none = await anon.from('todos').select('*').like('title', `%-${tag}`);
  ok(none);
  assert.deepEqual(none.data, []);

  const all = await service.from('todos').select('title', { count: 'exact' }).like('title', `%-${tag}`);
  ok(all);
  assert.equal(all.count, 5);

  const page = await alice
    .from('todos')
    .select('title, priority', { count: 'exact' })
    .like('title', `%-${tag}`)
    .order('priority', { ascending: true, nullsFirst: false })
    .range(0, 1);
  assert.equal(page.error, null);
  assert.equal(page.status, 206);
  assert.equal(page.count, 3);
  assert.deepEqual(page.data, [
    { title: `a-2-${tag}`, priority: 1 },
    { title: `a-1-${tag}`, priority: 3 },
  ]);

  const filtered = await alice
    .from('todos')
    .select('title')
    .like('title', `%-${tag}`)
    .or('priority.gt.2,priority.is.null')
    .not('title', 'eq', `a-3-${tag}`);
  ok(filtered);
  assert.deepEqual(filtered.data, [{ title: `a-1-${tag}` }]);

  const inList = await alice.from('todos').select('title').in('priority', [1, 3]).order('title');
  ok(inList);
  assert.deepEqual(inList.data.map((t) => t.title), [`a-1-${tag}`, `a-2-${tag}`]);

  const head = await bob.from('todos').select('*', { count: 'exact', head: true }).like('title', `%-${tag}`);
  assert.equal(head.error, null);
  assert.equal(head.count, 2);
  assert.equal(head.data, null);
});

test('single and maybeSingle', async () => {
  const single = await alice.from('todos').select('title').eq('title', `a-1-${tag}`).single();
  ok(single, 200);
  assert.deepEqual(single.data, { title: `a-1-${tag}` });

  const otherUsers = await alice.from('todos').select('title').eq('title', `b-1-${tag}`).single();
  assert.equal(otherUsers.status, 406);
  assert.equal(otherUsers.error.code, 'PGRST116');
  assert.equal(otherUsers.error.details, 'The result contains 0 rows');

  const maybe = await alice.from('todos').select('title').eq('title', `nope-${tag}`).maybeSingle();
  ok(maybe);
  assert.equal(maybe.data, null);
  const maybeOne = await alice.from('todos').select('title').eq('title', `a-2-${tag}`).maybeSingle();
  ok(maybeOne);
  assert.deepEqual(maybeOne.data, { title: `a-2-${tag}` });
  const many = await alice.from('todos').select('title').like('title', `%-${tag}`).maybeSingle();
  assert.equal(many.error?.code, 'PGRST116');
});

test('csv', async () => {
  const { data, error } = await alice.from('todos').select('title,priority').eq('title', `a-2-${tag}`).csv();
  assert.equal(error, null);
  assert.equal(data, `title,priority\na-2-${tag},1`);
});

test('update and delete touch only the caller\'s rows', async () => {
  const upd = await alice.from('todos').update({ done: true }).like('title', `%-1-${tag}`).select('title, done');
  ok(upd, 200);
  assert.deepEqual(upd.data, [{ title: `a-1-${tag}`, done: true }]);
  const bobs = await service.from('todos').select('done').eq('title', `b-1-${tag}`).single();
  assert.equal(bobs.data.done, false);

  const quiet = await bob.from('todos').update({ priority: 9 }).eq('title', `b-2-${tag}`);
  ok(quiet, 204);

  const steal = await alice.from('todos').update({ user_id: BOB }).eq('title', `a-3-${tag}`);
  assert.equal(steal.status, 403);
  assert.equal(steal.error.code, '42501');

  const spoof = await alice.from('todos').insert({ title: `spoof-${tag}`, user_id: BOB });
  assert.equal(spoof.status, 403);
  assert.equal(spoof.error.code, '42501');

  const anonInsert = await anon.from('todos').insert({ title: `anon-${tag}`, user_id: BOB });
  assert.equal(anonInsert.status, 401);
  assert.equal(anonInsert.error.code, '42501');

  const del = await bob.from('todos').delete().like('title', `%-${tag}`).select('title');
  ok(del, 200);
  assert.deepEqual(del.data.map((t) => t.title).sort(), [`b-1-${tag}`, `b-2-${tag}`]);
  const left = await service.from('todos').select('title', { count: 'exact', head: true }).like('title', `%-${tag}`);
  assert.equal(left.count, 3);

  const unfiltered = await service.from('todos').delete();
  assert.equal(unfiltered.status, 400);
  assert.equal(unfiltered.error.code, '21000');
});

test('upsert on profiles (owner by id; everyone reads)', async () => {
  const first = await alice.from('profiles').upsert({ id: ALICE, username: `alice-${tag}` }).select().single();
  ok(first, 201);
  assert.equal(first.data.username, `alice-${tag}`);
  const again = await alice
    .from('profiles')
    .upsert({ id: ALICE, username: `alice2-${tag}`, bio: 'hi' }, { onConflict: 'id' })
    .select('username, bio');
  ok(again);
  assert.deepEqual(again.data, [{ username: `alice2-${tag}`, bio: 'hi' }]);
  const ignored = await alice
    .from('profiles')
    .upsert({ id: ALICE, username: `ignored-${tag}` }, { ignoreDuplicates: true })
    .select();
  ok(ignored);
  assert.deepEqual(ignored.data, []);

  const read = await anon.from('profiles').select('username').eq('id', ALICE).single();
  ok(read);
  assert.equal(read.data.username, `alice2-${tag}`);

  const takeover = await bob.from('profiles').upsert({ id: ALICE, username: `bob-${tag}` });
  assert.ok([401, 403].includes(takeover.status), `status ${takeover.status}`);
  assert.equal(takeover.error.code, '42501');

  const dup = await service.from('profiles').insert({ id: BOB, username: `alice2-${tag}` });
  assert.equal(dup.status, 409);
  assert.equal(dup.error.code, '23505');
});

test('errors: unknown column, bad value, malformed filter', async () => {
  const col = await alice.from('todos').select('nope');
  assert.equal(col.status, 400);
  assert.equal(col.error.code, '42703');
  const val = await alice.from('todos').select().eq('priority', 'high');
  assert.equal(val.status, 400);
  assert.equal(val.error.code, '22P02');
  const bad = await alice.from('todos').select().filter('priority', 'zz', '1');
  assert.equal(bad.status, 400);
  assert.equal(bad.error.code, 'PGRST100');
  const body = await alice.from('todos').insert({ title: `x-${tag}`, nope: 1 });
  assert.equal(body.status, 400);
  assert.equal(body.error.code, 'PGRST204');
});

test('embedded resources through the messages → profiles foreign key', async () => {
  const room = `room-${tag}`;
  const sent = await alice.from('messages').insert({ room, body: 'hello' }).select('body, user_id').single();
  ok(sent, 201);
  assert.equal(sent.data.user_id, ALICE);

  const toOne = await bob.from('messages').select('body, author:profiles(username)').eq('room', room);
  ok(toOne);
  assert.deepEqual(toOne.data, [{ body: 'hello', author: { username: `alice2-${tag}` } }]);

  const toMany = await bob.from('profiles').select('username, messages(body, room)').eq('id', ALICE).single();
  ok(toMany);
  assert.deepEqual(toMany.data.messages.filter((m) => m.room === room), [{ body: 'hello', room }]);

  // messages are readable by signed-in users only: anon gets an empty embed.
  const asAnon = await anon.from('profiles').select('username, messages(body)').eq('id', ALICE).single();
  ok(asAnon);
  assert.deepEqual(asAnon.data.messages, []);

  const inner = await anon.from('profiles').select('username, messages!inner(body)').eq('id', ALICE);
  ok(inner);
  assert.deepEqual(inner.data, []);

  const none = await alice.from('messages').select('body, nosuch(*)');
  assert.equal(none.status, 400);
  assert.equal(none.error.code, 'PGRST200');
});

test('embedded filters with !inner, and embeds in a write representation', async () => {
  const room = `room2-${tag}`;
  const sent = await bob
    .from('messages')
    .insert({ room, body: 'from bob' })
    .select('body, author:profiles(username)');
  // bob has no profile: the FK refuses the insert (409 23503), nothing written.
  assert.equal(sent.status, 409);
  assert.equal(sent.error.code, '23503');

  const withAuthor = await alice
    .from('messages')
    .insert({ room, body: 'from alice' })
    .select('body, author:profiles(username)')
    .single();
  ok(withAuthor, 201);
  assert.deepEqual(withAuthor.data, { body: 'from alice', author: { username: `alice2-${tag}` } });

  const filtered = await bob
    .from('profiles')
    .select('username, messages!inner(body)')
    .eq('messages.room', room);
  ok(filtered);
  assert.deepEqual(filtered.data, [{ username: `alice2-${tag}`, messages: [{ body: 'from alice' }] }]);

  const ordered = await bob
    .from('profiles')
    .select('username, messages(room)')
    .eq('id', ALICE)
    .order('room', { referencedTable: 'messages', ascending: false })
    .limit(1, { referencedTable: 'messages' })
    .single();
  ok(ordered);
  assert.deepEqual(ordered.data.messages, [{ room: `room2-${tag}` }]);
});

test('rpc: a function registered by the host (the quickstart\'s echo)', async () => {
  const posted = await anon.rpc('echo', { a: 1, b: 'two' });
  ok(posted, 200);
  assert.deepEqual(posted.data, { a: 1, b: 'two' });
  const got = await anon.rpc('echo', { q: 'x y' }, { get: true });
  ok(got, 200);
  assert.deepEqual(got.data, { q: 'x y' });
  const missing = await anon.rpc(`nosuch_${tag}`, {});
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST202');
});
