// Storage with the unmodified supabase-js (storage-js) against the quickstart's
// demo buckets: `avatars` (public, image/*, 5 MB) and `documents` (private,
// owner-only, 50 MB). Users are minted JWTs signed with the server's secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
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
const userToken = (sub) =>
  sign({ sub, role: 'authenticated', aud: 'authenticated', aal: 'aal1', iat: now(), exp: now() + 3600 }, SECRET);
const client = (key, token) =>
  createClient(URL_, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
    ...(token ? { global: { headers: { Authorization: `Bearer ${token}` } } } : {}),
  });

const alice = randomUUID();
const bob = randomUUID();
const asAlice = client(ANON, userToken(alice)).storage;
const asBob = client(ANON, userToken(bob)).storage;
const asAnon = client(ANON).storage;
const asService = client(SERVICE).storage;
const run = randomBytes(4).toString('hex');
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]);
const bytesOf = async (blob) => Buffer.from(await blob.arrayBuffer());
const sha = (buf) => createHash('sha256').update(buf).digest('hex');

test('upload (Buffer and Blob), download, info, exists', async () => {
  const docs = asAlice.from('documents');
  const path = `${alice}/${run}/hello.txt`;
  const { data, error } = await docs.upload(path, Buffer.from('hello from supabase-js'), {
    contentType: 'text/plain',
    metadata: { purpose: 'test' },
  });
  assert.equal(error, null);
  assert.equal(data.path, path);
  assert.equal(data.fullPath, `documents/${path}`);
  assert.match(data.id, /^[0-9a-f-]{36}$/);

  const dl = await docs.download(path);
  assert.equal(dl.error, null);
  assert.equal((await bytesOf(dl.data)).toString(), 'hello from supabase-js');

  // A Blob goes as multipart/form-data (fields first, file part named "").
  const blobPath = `${alice}/${run}/blob.txt`;
  const up = await docs.upload(blobPath, new Blob(['blob body'], { type: 'text/plain' }), { cacheControl: '120' });
  assert.equal(up.error, null);
  const blob = await docs.download(blobPath);
  assert.equal((await bytesOf(blob.data)).toString(), 'blob body');

  const info = await docs.info(path);
  assert.equal(info.error, null);
  assert.equal(info.data.size, 22);
  assert.equal(info.data.contentType, 'text/plain');
  assert.deepEqual(info.data.metadata, { purpose: 'test' });
  assert.equal((await docs.exists(path)).data, true);
  assert.equal((await docs.exists(`${alice}/${run}/missing.txt`)).data, false);

  // Duplicate without upsert; with upsert it replaces.
  const dup = await docs.upload(path, Buffer.from('again'), { contentType: 'text/plain' });
  assert.equal(dup.error?.statusCode, '409');
  const upsert = await docs.upload(path, Buffer.from('replaced'), { contentType: 'text/plain', upsert: true });
  assert.equal(upsert.error, null);
  const upd = await docs.update(path, Buffer.from('updated'), { contentType: 'text/plain' });
  assert.equal(upd.error, null);
  assert.equal((await bytesOf((await docs.download(path)).data)).toString(), 'updated');
});

test('a second user cannot read, list, sign or delete the first user\'s private object', async () => {
  const path = `${alice}/${run}/private.txt`;
  assert.equal((await asAlice.from('documents').upload(path, Buffer.from('mine'), { contentType: 'text/plain' })).error, null);
  const bobDocs = asBob.from('documents');
  const dl = await bobDocs.download(path);
  assert.ok(dl.error, 'bob must not download');
  assert.equal(dl.error.status, 404);
  assert.equal((await bobDocs.exists(path)).data, false);
  const list = await bobDocs.list(`${alice}/${run}`);
  assert.deepEqual(list.data, []);
  const signed = await bobDocs.createSignedUrl(path, 60);
  assert.ok(signed.error);
  const removed = await bobDocs.remove([path]);
  assert.deepEqual(removed.data, []);
  const anon = await asAnon.from('documents').download(path);
  assert.ok(anon.error);
  assert.equal((await bytesOf((await asAlice.from('documents').download(path)).data)).toString(), 'mine');
});

test('list with prefix, folders and search', async () => {
  const docs = asAlice.from('documents');
  const base = `${alice}/${run}/tree`;
  for (const name of ['a.txt', 'b.txt', 'sub/c.txt']) {
    assert.equal((await docs.upload(`${base}/${name}`, Buffer.from(name), { contentType: 'text/plain' })).error, null);
  }
  const { data, error } = await docs.list(base);
  assert.equal(error, null);
  assert.deepEqual(data.map((f) => f.name), ['a.txt', 'b.txt', 'sub']);
  const folder = data.find((f) => f.name === 'sub');
  assert.equal(folder.id, null);
  assert.equal(folder.metadata, null);
  assert.equal(data[0].metadata.size, 5);
  assert.equal(data[0].metadata.mimetype, 'text/plain');
  const searched = await docs.list(base, { search: 'b' });
  assert.deepEqual(searched.data.map((f) => f.name), ['b.txt']);
  const paged = await docs.list(base, { limit: 1, offset: 1, sortBy: { column: 'name', order: 'desc' } });
  assert.deepEqual(paged.data.map((f) => f.name), ['b.txt']);
});

test('listV2: folders, objects and cursor paging', async () => {
  const docs = asAlice.from('documents');
  const base = `${alice}/${run}/v2`;
  for (const name of ['a.txt', 'b.txt', 'c.txt', 'sub/d.txt']) {
    assert.equal((await docs.upload(`${base}/${name}`, Buffer.from(name), { contentType: 'text/plain' })).error, null);
  }
  const grouped = await docs.listV2({ prefix: `${base}/`, with_delimiter: true });
  assert.equal(grouped.error, null);
  assert.deepEqual(grouped.data.objects.map((o) => o.name), ['a.txt', 'b.txt', 'c.txt']);
  assert.deepEqual(grouped.data.objects.map((o) => o.key), ['a.txt', 'b.txt', 'c.txt'].map((n) => `${base}/${n}`));
  assert.deepEqual(grouped.data.folders, [{ name: 'sub', key: `${base}/sub/` }]);
  assert.equal(grouped.data.hasNext, false);
  assert.equal(grouped.data.objects[0].metadata.size, 5);
  // Flat listing, two per page, following nextCursor.
  const keys = [];
  let cursor;
  for (let page = 0; page < 5; page++) {
    const { data, error } = await docs.listV2({ prefix: `${base}/`, limit: 2, cursor });
    assert.equal(error, null);
    keys.push(...data.objects.map((o) => o.key));
    if (!data.hasNext) break;
    cursor = data.nextCursor;
  }
  assert.deepEqual(keys, ['a.txt', 'b.txt', 'c.txt', 'sub/d.txt'].map((n) => `${base}/${n}`));
  // Another user sees none of alice's private objects.
  const bobs = await asBob.from('documents').listV2({ prefix: `${base}/` });
  assert.equal(bobs.error, null);
  assert.deepEqual(bobs.data.objects, []);
});

test('public bucket: image upload, getPublicUrl + fetch, MIME and size refusals', async () => {
  const avatars = asAlice.from('avatars');
  const path = `${alice}/${run}/avatar.png`;
  const up = await avatars.upload(path, new Blob([PNG], { type: 'image/png' }));
  assert.equal(up.error, null);
  const { data } = avatars.getPublicUrl(path);
  const res = await fetch(data.publicUrl);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
  const dlUrl = avatars.getPublicUrl(path, { download: 'me.png' }).data.publicUrl;
  const dl = await fetch(dlUrl);
  assert.match(dl.headers.get('content-disposition'), /^attachment/);

  const text = await avatars.upload(`${alice}/${run}/notes.txt`, Buffer.from('not an image'), { contentType: 'text/plain' });
  assert.equal(text.error?.statusCode, '415');
  const disguised = await avatars.upload(`${alice}/${run}/evil.png`, Buffer.from('<html><script>1</script></html>'), {
    contentType: 'image/png',
  });
  assert.equal(disguised.error?.statusCode, '415');
  const big = await avatars.upload(`${alice}/${run}/big.png`, Buffer.concat([PNG, Buffer.alloc(5_000_000)]), {
    contentType: 'image/png',
  });
  assert.equal(big.error?.statusCode, '413');
  const anon = await asAnon.from('avatars').upload(`${run}/anon.png`, PNG, { contentType: 'image/png' });
  assert.equal(anon.error?.statusCode, '403');
});

test('signed download URLs (single and batch) fetched with plain HTTP', async () => {
  const docs = asAlice.from('documents');
  const path = `${alice}/${run}/signed report.txt`;
  assert.equal((await docs.upload(path, Buffer.from('signed body'), { contentType: 'text/plain' })).error, null);
  const { data, error } = await docs.createSignedUrl(path, 60);
  assert.equal(error, null);
  const res = await fetch(data.signedUrl);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'signed body');

  const tampered = data.signedUrl.replace(/token=([^.]+)\.([^.]+)\.(.)/, (_, a, b, c) => `token=${a}.${b}.${c === 'A' ? 'B' : 'A'}`);
  assert.notEqual(tampered, data.signedUrl);
  assert.equal((await fetch(tampered)).status, 403);

  const many = await docs.createSignedUrls([path, `${alice}/${run}/nope.txt`], 60);
  assert.equal(many.error, null);
  assert.equal(many.data.length, 2);
  assert.equal((await fetch(many.data[0].signedUrl)).status, 200);
  assert.equal(many.data[1].signedUrl, null);
  assert.ok(many.data[1].error);
});

test('signed upload URL: createSignedUploadUrl + uploadToSignedUrl', async () => {
  const docs = asAlice.from('documents');
  const path = `${alice}/${run}/via-token.txt`;
  const { data, error } = await docs.createSignedUploadUrl(path);
  assert.equal(error, null);
  assert.ok(data.token);
  const up = await asAnon.from('documents').uploadToSignedUrl(path, data.token, Buffer.from('token upload'), {
    contentType: 'text/plain',
  });
  assert.equal(up.error, null);
  assert.equal(up.data.fullPath, `documents/${path}`);
  assert.equal((await bytesOf((await docs.download(path)).data)).toString(), 'token upload');
  // The token is bound to its path.
  const other = await asAnon.from('documents').uploadToSignedUrl(`${alice}/${run}/elsewhere.txt`, data.token, Buffer.from('x'));
  assert.equal(other.error?.statusCode, '403');
});

test('move, copy, remove', async () => {
  const docs = asAlice.from('documents');
  const from = `${alice}/${run}/mv/source.txt`;
  assert.equal((await docs.upload(from, Buffer.from('moving'), { contentType: 'text/plain' })).error, null);
  const mv = await docs.move(from, `${alice}/${run}/mv/dest.txt`);
  assert.equal(mv.error, null);
  assert.equal((await docs.exists(from)).data, false);
  const cp = await docs.copy(`${alice}/${run}/mv/dest.txt`, `${alice}/${run}/mv/copy.txt`);
  assert.equal(cp.error, null);
  assert.equal(cp.data.path, `documents/${alice}/${run}/mv/copy.txt`);
  assert.equal((await bytesOf((await docs.download(`${alice}/${run}/mv/copy.txt`)).data)).toString(), 'moving');
  const rm = await docs.remove([`${alice}/${run}/mv/dest.txt`, `${alice}/${run}/mv/copy.txt`]);
  assert.equal(rm.error, null);
  assert.equal(rm.data.length, 2);
  const left = await docs.list(`${alice}/${run}/mv`);
  assert.deepEqual(left.data, []);
});

test('a 50 MB upload downloads identical; 50 MB + 1 byte is refused', async () => {
  const docs = asAlice.from('documents');
  const big = randomBytes(50_000_000);
  const path = `${alice}/${run}/big.bin`;
  const up = await docs.upload(path, big, { contentType: 'application/octet-stream' });
  assert.equal(up.error, null);
  const dl = await docs.download(path);
  assert.equal(dl.error, null);
  assert.equal(sha(await bytesOf(dl.data)), sha(big));
  const over = await docs.upload(`${alice}/${run}/over.bin`, Buffer.concat([big, Buffer.from([1])]), {
    contentType: 'application/octet-stream',
  });
  assert.equal(over.error?.statusCode, '413');
  assert.equal((await docs.exists(`${alice}/${run}/over.bin`)).data, false);
});

test('bucket administration with the service_role key', async () => {
  const id = `gf-${run}`;
  const created = await asService.createBucket(id, { public: false, fileSizeLimit: '1MB', allowedMimeTypes: ['text/*'] });
  assert.equal(created.error, null);
  assert.equal(created.data.name, id);
  const got = await asService.getBucket(id);
  assert.equal(got.error, null);
  assert.equal(got.data.file_size_limit, 1_000_000);
  assert.deepEqual(got.data.allowed_mime_types, ['text/*']);
  const listed = await asService.listBuckets();
  assert.ok(listed.data.some((b) => b.id === id));
  const updated = await asService.updateBucket(id, { public: true });
  assert.equal(updated.error, null);
  assert.equal((await asService.getBucket(id)).data.public, true);
  assert.equal((await asService.from(id).upload('x.txt', Buffer.from('x'), { contentType: 'text/plain' })).error, null);
  const notEmpty = await asService.deleteBucket(id);
  assert.ok(notEmpty.error, 'a non-empty bucket is not deleted');
  assert.equal((await asService.emptyBucket(id)).error, null);
  assert.equal((await asService.deleteBucket(id)).error, null);
  const gone = await asService.getBucket(id);
  assert.equal(gone.error?.statusCode, '404');
  const userCreate = await asAlice.createBucket(`${id}-user`);
  assert.equal(userCreate.error?.statusCode, '403');
});

test('signed tokens are scoped to their method: a download token cannot upload, an upload token cannot download', async () => {
  const docs = asAlice.from('documents');
  const path = `${alice}/${run}/scoped.txt`;
  assert.equal((await docs.upload(path, Buffer.from('original'), { contentType: 'text/plain' })).error, null);
  const signed = await docs.createSignedUrl(path, 60);
  assert.equal(signed.error, null);
  const downloadToken = new URL(signed.data.signedUrl).searchParams.get('token');
  assert.ok(downloadToken);
  const encoded = path.split('/').map(encodeURIComponent).join('/');
  // Plain HTTP, as an attacker holding the link would do it.
  const put = await fetch(`${URL_}/storage/v1/object/upload/sign/documents/${encoded}?token=${downloadToken}`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain', 'x-upsert': 'true' },
    body: 'overwritten',
  });
  assert.equal(put.status, 403);
  assert.equal((await put.json()).statusCode, '403');
  // Through storage-js too.
  const viaJs = await asAnon.from('documents').uploadToSignedUrl(path, downloadToken, Buffer.from('overwritten'), {
    contentType: 'text/plain',
    upsert: true,
  });
  assert.equal(viaJs.error?.statusCode, '403');
  assert.equal((await bytesOf((await docs.download(path)).data)).toString(), 'original');

  const upload = await docs.createSignedUploadUrl(`${alice}/${run}/scoped-new.txt`);
  assert.equal(upload.error, null);
  const get = await fetch(`${URL_}/storage/v1/object/sign/documents/${encoded}?token=${upload.data.token}`);
  assert.equal(get.status, 403);
});

test('SVG and HTML are never served inline (attachment, nosniff, sandbox CSP)', async () => {
  const docs = asAlice.from('documents');
  const cases = [
    ['evil.svg', 'image/svg+xml', "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"],
    ['evil.html', 'text/html', '<html><body><script>alert(1)</script></body></html>'],
  ];
  for (const [name, type, body] of cases) {
    const path = `${alice}/${run}/${name}`;
    assert.equal((await docs.upload(path, Buffer.from(body), { contentType: type })).error, null);
    const { data, error } = await docs.createSignedUrl(path, 60);
    assert.equal(error, null);
    const res = await fetch(data.signedUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /^attachment/, `${name} is an attachment`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(res.headers.get('content-security-policy') ?? '', /sandbox/);
    assert.equal(await res.text(), body);
  }
});

test('move and copy across buckets', async () => {
  const id = `gf-x-${run}`;
  assert.equal((await asService.createBucket(id, { public: false })).error, null);
  const docs = asService.from('documents');
  const path = `${alice}/${run}/cross.txt`;
  assert.equal((await docs.upload(path, Buffer.from('crossing'), { contentType: 'text/plain' })).error, null);
  const cp = await docs.copy(path, 'copied.txt', { destinationBucket: id });
  assert.equal(cp.error, null);
  const mv = await docs.move(path, 'moved.txt', { destinationBucket: id });
  assert.equal(mv.error, null);
  assert.equal((await docs.exists(path)).data, false);
  const other = asService.from(id);
  for (const name of ['copied.txt', 'moved.txt']) {
    assert.equal((await bytesOf((await other.download(name)).data)).toString(), 'crossing');
  }
  assert.equal((await asService.emptyBucket(id)).error, null);
  assert.equal((await asService.deleteBucket(id)).error, null);
});
