// The auth issue's real-client test: the unmodified supabase-js `auth` client
// (auth-js) against the running quickstart, which has email confirmation on
// (messages land as .eml files in $GOFORWARD_DATA_DIR/outbox) and anonymous
// sign-ins enabled.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { createClient } from '@supabase/supabase-js';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run through tests/clients/run.sh)`);
  return value;
};
const URL_ = env('SUPABASE_URL');
const ANON = env('SUPABASE_ANON_KEY');
const SERVICE = env('SUPABASE_SERVICE_KEY');
const OUTBOX = join(env('GOFORWARD_DATA_DIR'), 'outbox');

const client = (key = ANON, flowType = 'implicit') =>
  createClient(URL_, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType },
    realtime: { transport: WebSocket },
  });
const newEmail = (tag) => `gf-auth-${tag}-${randomBytes(6).toString('hex')}@example.com`;
const decodeJwt = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

/** Messages in the outbox addressed to `to`, oldest first. */
function mailsTo(to) {
  let names = [];
  try {
    names = readdirSync(OUTBOX).filter((n) => n.endsWith('.eml')).sort();
  } catch {
    return [];
  }
  return names
    .map((n) => readFileSync(join(OUTBOX, n), 'utf8'))
    .filter((m) => m.split(/\r?\n/).some((l) => l.toLowerCase() === `to: ${to}`.toLowerCase()));
}

/** Retries `find` (every 50 ms, up to 5 s) until it returns something: the
 * server answers /recover, /otp, /magiclink and /resend before it writes the
 * message (same work for known and unknown addresses), so it lands shortly after. */
async function eventually(find, what) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = find();
    if (found) return found;
    assert.ok(Date.now() < deadline, `${what} within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The newest message to `to` with the given template, once it exists. */
function lastMail(to, template) {
  return eventually(
    () => mailsTo(to).filter((m) => m.includes(`X-GoForward-Template: ${template}`)).pop(),
    `a ${template} mail to ${to} in ${OUTBOX}`,
  );
}

/** The verification link of the newest message to `to` with the given template. */
async function lastLink(to, template) {
  const mail = await lastMail(to, template);
  const line = mail.split(/\r?\n/).find((l) => l.includes('/auth/v1/verify?'));
  assert.ok(line, `a link in ${mail}`);
  return line.trim();
}

/** The 6-digit code of the newest message to `to` with the given template. */
async function lastCode(to, template) {
  const mail = await lastMail(to, template);
  const match = /enter this code: (\d{6})/.exec(mail);
  assert.ok(match, `a code in ${mail}`);
  return match[1];
}

test('sign-up with email confirmation, sign-in, user, refresh, events, sign-out', async () => {
  const supabase = client();
  const events = [];
  const { data: sub } = supabase.auth.onAuthStateChange((event) => events.push(event));
  const email = newEmail('signup');
  const password = `pw-${randomBytes(8).toString('hex')}`;

  // Confirmation on: signUp returns a user and no session.
  const signUp = await supabase.auth.signUp({ email, password, options: { data: { name: 'Ada' } } });
  assert.equal(signUp.error, null);
  assert.equal(signUp.data.session, null);
  assert.equal(signUp.data.user.email, email);
  assert.equal(signUp.data.user.user_metadata.name, 'Ada');
  assert.equal(signUp.data.user.identities.length, 1);
  assert.equal(signUp.data.user.email_confirmed_at, undefined);

  // Not confirmed yet: the client sees GoTrue's error code.
  const early = await supabase.auth.signInWithPassword({ email, password });
  assert.equal(early.error?.code, 'email_not_confirmed');
  assert.equal(early.error?.status, 400);

  // Confirm with the code from the outbox.
  const verified = await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'confirmation'), type: 'signup' });
  assert.equal(verified.error, null);
  assert.ok(verified.data.session.access_token);
  assert.ok(verified.data.user.email_confirmed_at);
  assert.ok(events.includes('SIGNED_IN'));

  // Wrong password: invalid_credentials.
  const wrong = await supabase.auth.signInWithPassword({ email, password: 'wrong-password' });
  assert.equal(wrong.error?.code, 'invalid_credentials');
  assert.equal(wrong.error?.message, 'Invalid login credentials');

  const signIn = await supabase.auth.signInWithPassword({ email, password });
  assert.equal(signIn.error, null);
  const session = signIn.data.session;
  assert.equal(session.token_type, 'bearer');
  assert.equal(session.expires_in, 3600);
  const claims = decodeJwt(session.access_token);
  assert.equal(claims.sub, signIn.data.user.id);
  assert.equal(claims.role, 'authenticated');
  assert.equal(claims.aud, 'authenticated');
  assert.equal(claims.aal, 'aal1');
  assert.equal(claims.amr[0].method, 'password');
  assert.equal(claims.email, email);
  assert.ok(claims.session_id);

  const { data: me, error: meError } = await supabase.auth.getUser();
  assert.equal(meError, null);
  assert.equal(me.user.id, signIn.data.user.id);

  // updateUser: metadata, then password; app_metadata is not the user's to set.
  const meta = await supabase.auth.updateUser({ data: { theme: 'dark' } });
  assert.equal(meta.error, null);
  assert.equal(meta.data.user.user_metadata.theme, 'dark');
  assert.equal(meta.data.user.user_metadata.name, 'Ada');
  assert.ok(events.includes('USER_UPDATED'));
  const raw = await fetch(`${URL_}/auth/v1/user`, {
    method: 'PUT',
    headers: { apikey: ANON, Authorization: `Bearer ${session.access_token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ app_metadata: { role: 'admin' } }),
  });
  assert.equal(raw.status, 403);
  assert.equal((await raw.json()).code, 'not_admin');
  // reauthenticate() emails a code (the nonce of a secure password change).
  const reauth = await supabase.auth.reauthenticate();
  assert.equal(reauth.error, null);
  assert.match(await lastCode(email, 'reauthentication'), /^\d{6}$/);
  const newPassword = `pw2-${randomBytes(8).toString('hex')}`;
  const pw = await supabase.auth.updateUser({ password: newPassword });
  assert.equal(pw.error, null);

  // refreshSession rotates the refresh token.
  const refreshed = await supabase.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.notEqual(refreshed.data.session.refresh_token, session.refresh_token);
  assert.ok(events.includes('TOKEN_REFRESHED'));

  // signOut (global): the token's session is gone server-side.
  const accessBefore = refreshed.data.session.access_token;
  const out = await supabase.auth.signOut();
  assert.equal(out.error, null);
  assert.ok(events.includes('SIGNED_OUT'));
  // auth-js turns `session_not_found` into AuthSessionMissingError.
  const after = await supabase.auth.getUser(accessBefore);
  assert.equal(after.data.user, null);
  assert.equal(after.error?.name, 'AuthSessionMissingError');
  const gone = await fetch(`${URL_}/auth/v1/user`, { headers: { apikey: ANON, Authorization: `Bearer ${accessBefore}` } });
  assert.equal(gone.status, 403);
  assert.equal((await gone.json()).code, 'session_not_found');

  // The new password works, the old one does not.
  assert.equal((await supabase.auth.signInWithPassword({ email, password })).error?.code, 'invalid_credentials');
  assert.equal((await supabase.auth.signInWithPassword({ email, password: newPassword })).error, null);
  await supabase.auth.signOut();
  sub.subscription.unsubscribe();
});

test('resetPasswordForEmail + verifyOtp with the code from the outbox', async () => {
  const supabase = client();
  const email = newEmail('recover');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  await supabase.auth.signUp({ email, password });
  await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'confirmation'), type: 'signup' });
  await supabase.auth.signOut();

  const events = [];
  const { data: sub } = supabase.auth.onAuthStateChange((event) => events.push(event));
  const reset = await supabase.auth.resetPasswordForEmail(email, { redirectTo: 'http://localhost:3000/reset' });
  assert.equal(reset.error, null);
  // Unknown addresses get the same answer (no enumeration).
  const unknown = await supabase.auth.resetPasswordForEmail(newEmail('nobody'));
  assert.equal(unknown.error, null);

  const recovered = await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'recovery'), type: 'recovery' });
  assert.equal(recovered.error, null);
  assert.ok(events.includes('PASSWORD_RECOVERY'));
  assert.equal(decodeJwt(recovered.data.session.access_token).amr[0].method, 'recovery');
  const newPassword = `pw3-${randomBytes(8).toString('hex')}`;
  assert.equal((await supabase.auth.updateUser({ password: newPassword })).error, null);
  await supabase.auth.signOut();
  assert.equal((await supabase.auth.signInWithPassword({ email, password: newPassword })).error, null);

  // The recovery code is single-use.
  const reused = await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'recovery'), type: 'recovery' });
  assert.equal(reused.error?.code, 'otp_expired');
  assert.equal(reused.error?.status, 403);
  await supabase.auth.signOut();
  sub.subscription.unsubscribe();
});

test('PKCE: resetPasswordForEmail, follow the email link, exchangeCodeForSession', async () => {
  const email = newEmail('pkce');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const setup = client();
  await setup.auth.signUp({ email, password });
  await setup.auth.verifyOtp({ email, token: await lastCode(email, 'confirmation'), type: 'signup' });
  await setup.auth.signOut();

  const supabase = client(ANON, 'pkce');
  const events = [];
  const { data: sub } = supabase.auth.onAuthStateChange((event) => events.push(event));
  const reset = await supabase.auth.resetPasswordForEmail(email, { redirectTo: 'http://localhost:3000/reset' });
  assert.equal(reset.error, null);
  // The browser follows the link: 303 to redirect_to?code=… (no tokens in the URL).
  const res = await fetch(await lastLink(email, 'recovery'), { redirect: 'manual' });
  assert.equal(res.status, 303);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, 'http://localhost:3000/reset');
  assert.equal(location.hash, '');
  const code = location.searchParams.get('code');
  assert.ok(code);
  const exchanged = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(exchanged.error, null);
  assert.equal(exchanged.data.user.email, email);
  assert.equal(exchanged.data.redirectType, 'recovery');
  assert.ok(events.includes('PASSWORD_RECOVERY'));
  assert.equal(decodeJwt(exchanged.data.session.access_token).amr[0].method, 'recovery');
  // The code is single-use.
  const again = await fetch(`${URL_}/auth/v1/token?grant_type=pkce`, {
    method: 'POST',
    headers: { apikey: ANON, 'Content-Type': 'application/json', 'X-Supabase-Api-Version': '2024-01-01' },
    body: JSON.stringify({ auth_code: code, code_verifier: 'x'.repeat(43) }),
  });
  assert.equal(again.status, 404);
  assert.equal((await again.json()).code, 'flow_state_not_found');
  await supabase.auth.signOut();
  sub.subscription.unsubscribe();
});

test('signInWithOtp (email code) creates and signs in a user', async () => {
  const supabase = client();
  const email = newEmail('otp');
  const sent = await supabase.auth.signInWithOtp({ email, options: { data: { via: 'otp' } } });
  assert.equal(sent.error, null);
  const verified = await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'confirmation'), type: 'email' });
  assert.equal(verified.error, null);
  assert.equal(verified.data.user.email, email);
  assert.equal(verified.data.user.user_metadata.via, 'otp');
  await supabase.auth.signOut();

  // A confirmed user gets a magic link / code.
  assert.equal((await supabase.auth.signInWithOtp({ email })).error, null);
  const again = await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'magic_link'), type: 'email' });
  assert.equal(again.error, null);
  assert.equal(again.data.user.id, verified.data.user.id);

  // shouldCreateUser: false for an unknown address.
  const refused = await supabase.auth.signInWithOtp({ email: newEmail('none'), options: { shouldCreateUser: false } });
  assert.equal(refused.error?.code, 'otp_disabled');
  await supabase.auth.signOut();
});

test('signInWithOtp (phone) + verifyOtp with the SMS code from the outbox', async () => {
  const supabase = client();
  const digits = `1555${String(Date.now()).slice(-7)}`;
  const sent = await supabase.auth.signInWithOtp({ phone: `+${digits}` });
  assert.equal(sent.error, null);
  assert.ok(sent.data.messageId);
  const dir = join(env('GOFORWARD_DATA_DIR'), 'sms_outbox');
  const text = await eventually(
    () => {
      try {
        return readdirSync(dir)
          .filter((n) => n.endsWith('.txt'))
          .sort()
          .map((n) => readFileSync(join(dir, n), 'utf8'))
          .filter((t) => t.startsWith(`To: +${digits}\n`))
          .pop();
      } catch {
        return undefined; // the outbox folder appears with the first message
      }
    },
    'an SMS in the outbox',
  );
  const token = /(\d{6})/.exec(text.split('\n\n')[1])[1];
  const verified = await supabase.auth.verifyOtp({ phone: `+${digits}`, token, type: 'sms' });
  assert.equal(verified.error, null);
  assert.equal(verified.data.user.phone, digits);
  assert.ok(verified.data.user.phone_confirmed_at);
  await supabase.auth.signOut();
});

test('signInAnonymously', async () => {
  const supabase = client();
  const { data, error } = await supabase.auth.signInAnonymously({ options: { data: { nick: 'guest' } } });
  assert.equal(error, null);
  assert.equal(data.user.is_anonymous, true);
  assert.equal(data.user.user_metadata.nick, 'guest');
  const claims = decodeJwt(data.session.access_token);
  assert.equal(claims.is_anonymous, true);
  assert.equal(claims.role, 'authenticated');
  assert.equal(claims.amr[0].method, 'anonymous');
  const me = await supabase.auth.getUser();
  assert.equal(me.data.user.id, data.user.id);
  await supabase.auth.signOut();
});

/** RFC 6238 TOTP (SHA-1, 30 s, 6 digits) of a base32 secret, `offset` steps from now. */
function totp(secretB32, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secretB32) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac('sha1', key).update(counter).digest();
  const o = mac[mac.length - 1] & 0x0f;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

test('MFA: enroll a TOTP factor, challenge, verify with a computed code (aal2), unenroll', async () => {
  const supabase = client();
  const email = newEmail('mfa');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  await supabase.auth.signUp({ email, password });
  await supabase.auth.verifyOtp({ email, token: await lastCode(email, 'confirmation'), type: 'signup' });

  const events = [];
  const { data: sub } = supabase.auth.onAuthStateChange((event) => events.push(event));
  const enrolled = await supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'authenticator' });
  assert.equal(enrolled.error, null);
  assert.equal(enrolled.data.type, 'totp');
  assert.ok(enrolled.data.totp.qr_code.startsWith('data:image/svg+xml;utf-8,'));
  assert.ok(enrolled.data.totp.uri.startsWith('otpauth://totp/'));
  const factorId = enrolled.data.id;

  let aal = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(aal.data.currentLevel, 'aal1');

  const challenge = await supabase.auth.mfa.challenge({ factorId });
  assert.equal(challenge.error, null);
  assert.ok(challenge.data.expires_at > Date.now() / 1000);
  const bad = await supabase.auth.mfa.verify({ factorId, challengeId: challenge.data.id, code: '000000' === totp(enrolled.data.totp.secret) ? '111111' : '000000' });
  assert.equal(bad.error?.code, 'mfa_verification_failed');
  const verified = await supabase.auth.mfa.verify({ factorId, challengeId: challenge.data.id, code: totp(enrolled.data.totp.secret) });
  assert.equal(verified.error, null);
  assert.ok(events.includes('MFA_CHALLENGE_VERIFIED'));
  aal = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(aal.data.currentLevel, 'aal2');
  assert.equal(aal.data.nextLevel, 'aal2');
  const factors = await supabase.auth.mfa.listFactors();
  assert.equal(factors.data.totp.length, 1);
  assert.equal(factors.data.totp[0].status, 'verified');

  // challengeAndVerify with the next step's code (each step is accepted once).
  const again = await supabase.auth.mfa.challengeAndVerify({ factorId, code: totp(enrolled.data.totp.secret, 1) });
  assert.equal(again.error, null);

  const removed = await supabase.auth.mfa.unenroll({ factorId });
  assert.equal(removed.error, null);
  assert.equal(removed.data.id, factorId);
  await supabase.auth.refreshSession();
  const none = await supabase.auth.mfa.listFactors();
  assert.equal(none.data.all.length, 0);
  await supabase.auth.signOut();
  sub.subscription.unsubscribe();
});

test('admin (service_role): createUser, listUsers, getUserById, updateUserById, deleteUser', async () => {
  const admin = client(SERVICE).auth.admin;
  const email = newEmail('admin');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const created = await admin.createUser({ email, password, email_confirm: true, user_metadata: { by: 'admin' }, app_metadata: { plan: 'pro' } });
  assert.equal(created.error, null);
  assert.equal(created.data.user.email, email);
  assert.equal(created.data.user.app_metadata.plan, 'pro');
  const id = created.data.user.id;

  // The new user signs in; app_metadata rides in the token.
  const user = client();
  const signedIn = await user.auth.signInWithPassword({ email, password });
  assert.equal(signedIn.error, null);
  assert.equal(decodeJwt(signedIn.data.session.access_token).app_metadata.plan, 'pro');
  await user.auth.signOut();

  const listed = await admin.listUsers({ page: 1, perPage: 1000 });
  assert.equal(listed.error, null);
  assert.ok(listed.data.users.some((u) => u.id === id));
  assert.ok(listed.data.total >= 1);
  const byId = await admin.getUserById(id);
  assert.equal(byId.data.user.email, email);
  const updated = await admin.updateUserById(id, { user_metadata: { vip: true } });
  assert.equal(updated.error, null);
  assert.equal(updated.data.user.user_metadata.vip, true);
  assert.equal(updated.data.user.user_metadata.by, 'admin');

  const duplicate = await admin.createUser({ email });
  assert.equal(duplicate.error?.code, 'email_exists');
  assert.equal(duplicate.error?.status, 422);

  const deleted = await admin.deleteUser(id);
  assert.equal(deleted.error, null);
  const gone = await admin.getUserById(id);
  assert.equal(gone.error?.code, 'user_not_found');
  assert.equal(gone.error?.status, 404);

  // inviteUserByEmail → the invitee verifies the code from the invite email.
  const invitee = newEmail('invite');
  const invited = await admin.inviteUserByEmail(invitee, { data: { team: 'blue' } });
  assert.equal(invited.error, null);
  assert.ok(invited.data.user.invited_at);
  const joined = await client().auth.verifyOtp({ email: invitee, token: await lastCode(invitee, 'invite'), type: 'invite' });
  assert.equal(joined.error, null);
  assert.equal(joined.data.user.user_metadata.team, 'blue');
  assert.ok(joined.data.user.email_confirmed_at);

  // The anon key is not an admin.
  const refused = await client().auth.admin.listUsers();
  assert.equal(refused.error?.code, 'not_admin');
  assert.equal(refused.error?.status, 403);
});

test('GET /settings reflects the server config', async () => {
  const res = await fetch(`${URL_}/auth/v1/settings`, { headers: { apikey: ANON } });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.mailer_autoconfirm, false);
  assert.equal(body.disable_signup, false);
  assert.equal(body.external.email, true);
  assert.equal(body.external.anonymous_users, true);
  assert.equal(body.external.phone, true);
});
