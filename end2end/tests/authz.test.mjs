// Authorization is decided on the server, whatever the page shows: server
// functions answer 401 without a session and 403 with a role too low, a
// missing CSRF token or a foreign Origin; pages redirect to sign-in; the
// author of a campaign is refused approval even as an approver; sign-in is
// throttled per account with one answer for every refusal; signing out
// ends the session.
import assert from 'node:assert/strict';

const form = (params) => new URLSearchParams(params).toString();

async function status(res) {
  await res.arrayBuffer();
  return res.status;
}

export async function run(ctx) {
  const { baseURL, api, staff, users, newPage, signIn, waitFor } = ctx;
  const anonymous = (fn, params = {}, headers = {}) => fetch(baseURL + '/_sf/' + fn, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: baseURL, ...headers },
    body: form(params),
  });

  // --- No session: 401 for every kind of call.
  for (const [fn, params] of [
    ['current_staff', {}],
    ['dashboard', {}],
    ['campaigns_list', {}],
    ['campaign_approve', { csrf: 'x', id: 'x' }],
    ['campaign_save', { csrf: 'x', name: 'x', channel: 'whatsapp', template_name: 'x', audience: 'tags', schedule: 'on_approval' }],
    ['inbox_reply', { csrf: 'x', contact_id: 'x', channel: 'whatsapp', reply_key: 'x', mode: 'text', text: 'hi' }],
    ['settings_data', {}],
    ['api_key_create', { csrf: 'x', name: 'x' }],
    ['automation_approve', { csrf: 'x', id: 'x' }],
    ['sender_set_active', { csrf: 'x', id: 'x', active: 'true' }],
    ['contact_create', { csrf: 'x', phone: '+4791239999' }],
    ['contact_edit', { csrf: 'x', id: 'x' }],
    ['inbox_review', { csrf: 'x', id: 'x', outcome: 'opt_out' }],
    ['inbox_assign', { csrf: 'x', contact_id: 'x', to: '' }],
    ['inbox_counts', {}],
    ['canned_create', { csrf: 'x', title: 'x', body: 'x' }],
    ['consents_import_report', {}],
  ]) {
    assert.equal(await status(await anonymous(fn, params)), 401, `${fn} without a session`);
  }
  // A crafted post-login destination (control characters) is ignored:
  // the sign-in works and lands on the dashboard, never a 500.
  for (const next of ['/campaigns\r\nSet-Cookie: x=1', '/a\u0000b', 'https://evil.example/']) {
    const res = await anonymous('login', { email: users.operator.email, password: users.operator.password, next });
    await res.arrayBuffer();
    assert.ok(res.status < 500, `login with next=${JSON.stringify(next)}: ${res.status}`);
    const location = res.headers.get('location') || res.headers.get('serverfnredirect') || '';
    assert.ok(!location.includes('evil') && !location.includes('Set-Cookie'), `redirected to ${location}`);
  }

  // Malformed calls are the client's fault (400), never a 500.
  const op = await staff(users.operator);
  assert.equal(await status(await op.call('campaign_approve', { csrf: op.csrf })), 400, 'missing argument');
  assert.equal(await status(await anonymous('no_such_function')), 400, 'unknown server function');

  // --- Pages: without a session, the sign-in page (with the way back).
  const page = await fetch(baseURL + '/campaigns?status=draft', { redirect: 'manual', headers: { Accept: 'text/html' } });
  assert.equal(page.status, 302);
  assert.equal(page.headers.get('location'), '/login?next=/campaigns%3Fstatus%3Ddraft');

  // --- A viewer, created by an admin through the console.
  const admin = await staff(users.admin);
  const viewer = { email: 'viewer@example.com', password: 'viewer-password-1' };
  assert.equal(await status(await admin.call('user_create', { csrf: admin.csrf, email: viewer.email, name: 'Vera Viewer', role: 'viewer', password: viewer.password })), 200);
  const v = await staff(viewer);
  assert.equal(v.me.role, 'viewer');
  assert.equal(await status(await v.call('campaigns_list')), 200, 'a viewer reads');
  for (const [fn, params] of [
    ['campaign_save', { name: 'x', channel: 'whatsapp', template_name: 'task_reminder', audience: 'tags', tags: 'x', schedule: 'on_approval' }],
    ['campaign_submit', { id: 'x' }],
    ['campaign_approve', { id: 'x' }],
    ['inbox_reply', { contact_id: 'x', channel: 'whatsapp', reply_key: 'x', mode: 'text', text: 'hi' }],
    ['templates_sync', {}],
    ['template_create', { name: 'authz_x', language: 'en', category: 'UTILITY', body: 'Hello there.', samples: '' }],
    ['contact_suppress', { id: 'x', channel: 'all', note: 'x' }],
    ['contact_create', { phone: '+4791239998', consent_channel: '' }],
    ['contact_edit', { id: 'x' }],
    ['inbox_review', { id: 'x', outcome: 'opt_out' }],
    ['inbox_assign', { contact_id: 'x', to: '' }],
    ['canned_create', { title: 'x', body: 'x' }],
    ['canned_delete', { id: 'x' }],
    ['settings_data', {}],
  ]) {
    assert.equal(await status(await v.call(fn, { csrf: v.csrf, ...params })), 403, `${fn} as a viewer`);
  }

  // --- An operator on approver and admin actions: 403.
  for (const [fn, params] of [
    ['campaign_approve', { id: 'x' }],
    ['campaign_reject', { id: 'x', reason: 'no' }],
    ['automation_approve', { id: 'x' }],
    ['api_key_create', { name: 'x' }],
    ['user_create', { email: 'x@example.com', role: 'admin', password: 'long enough password' }],
    ['sender_set_active', { id: 'x', active: 'true', authorize: 'yes' }],
    ['tier_save', { ladder: '250', limit: 'unlimited' }],
  ]) {
    assert.equal(await status(await op.call(fn, { csrf: op.csrf, ...params })), 403, `${fn} as an operator`);
  }
  // A page for admins only answers 403 to an operator.
  const settingsPage = await fetch(baseURL + '/settings', { redirect: 'manual', headers: { Cookie: op.cookie, Accept: 'text/html' } });
  assert.equal(settingsPage.status, 403);

  // --- CSRF: the right session but no token, a wrong token, or another site.
  const list = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: '+4791232001', name: 'Authz Person', tags: ['e2e-authz'] }),
  });
  const person = await list.json();
  await api(`/api/v1/contacts/${person.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({ channel: 'whatsapp', source: 'api', evidence: { consent_text_version: 'v1', page_url: 'https://example.com' } }),
  });
  const draft = {
    name: 'Authz draft', channel: 'whatsapp', template_name: 'task_reminder', audience: 'tags', tags: 'e2e-authz',
    'var_source[task_name]': 'value', 'var_value[task_name]': 'the form', 'var_source[due_time]': 'value',
    'var_value[due_time]': 'noon', schedule: 'on_approval',
  };
  assert.equal(await status(await op.call('campaign_save', draft)), 403, 'no CSRF token');
  assert.equal(await status(await op.call('campaign_save', { ...draft, csrf: 'f'.repeat(64) })), 403, 'a wrong CSRF token');
  assert.equal(
    await status(await op.call('campaign_save', { ...draft, csrf: op.csrf }, { headers: { Origin: 'https://evil.example' } })),
    403, 'a foreign Origin');
  assert.equal(await status(await op.call('campaign_save', { ...draft, name: '', csrf: op.csrf })), 400, 'a bad field');

  // --- The author of a campaign may not approve it, even as an admin.
  const saved = await admin.call('campaign_save', { ...draft, csrf: admin.csrf });
  assert.equal(saved.status, 200, await saved.clone().text());
  const id = await saved.json();
  assert.equal(await status(await admin.call('campaign_submit', { csrf: admin.csrf, id })), 200);
  const self = await admin.call('campaign_approve', { csrf: admin.csrf, id });
  assert.equal(self.status, 403);
  assert.match(await self.text(), /another approver/);
  // Rejecting needs a reason, beside the field.
  const ap = await staff(users.approver);
  const noReason = await ap.call('campaign_reject', { csrf: ap.csrf, id, reason: '  ' });
  assert.equal(noReason.status, 400);
  assert.equal((await noReason.json()).Invalid.field, 'reason');
  assert.equal(await status(await ap.call('campaign_reject', { csrf: ap.csrf, id, reason: 'Wrong audience' })), 200);

  // --- A scheduled campaign: pause, resume and cancel; nothing is sent.
  const tomorrow = new Date(Date.now() + 36 * 3600 * 1000).toISOString().slice(0, 16);
  const later = await op.call('campaign_save', { ...draft, name: 'Authz scheduled', csrf: op.csrf, schedule: 'at', scheduled_at: tomorrow });
  const laterText = await later.text();
  assert.equal(later.status, 200, laterText);
  const laterId = JSON.parse(laterText);
  assert.equal(await status(await op.call('campaign_submit', { csrf: op.csrf, id: laterId })), 200);
  // An approval binds to what the approver reviewed: without the review's
  // content hash (or with a stale one) nothing is approved.
  assert.equal(await status(await ap.call('campaign_approve', { csrf: ap.csrf, id: laterId })), 409, 'no review hash');
  assert.equal(
    await status(await ap.call('campaign_approve', { csrf: ap.csrf, id: laterId, content_hash: 'f'.repeat(64) })),
    409, 'a stale review hash');
  const reviewed = (await (await ap.call('campaign_page', { id: laterId })).json()).review.content_hash;
  assert.match(reviewed, /^[0-9a-f]{64}$/);
  assert.equal(await status(await ap.call('campaign_approve', { csrf: ap.csrf, id: laterId, content_hash: reviewed })), 200);
  const statusOf = async () => (await (await op.call('campaign_page', { id: laterId })).json()).info.status;
  assert.equal(await statusOf(), 'scheduled');
  assert.equal(await status(await op.call('campaign_pause', { csrf: op.csrf, id: laterId })), 200);
  assert.equal(await statusOf(), 'paused');
  assert.equal(await status(await op.call('campaign_pause', { csrf: op.csrf, id: laterId })), 409, 'already paused');
  assert.equal(await status(await op.call('campaign_resume', { csrf: op.csrf, id: laterId })), 200);
  assert.equal(await statusOf(), 'scheduled');
  assert.equal(await status(await op.call('campaign_cancel', { csrf: op.csrf, id: laterId })), 200);
  assert.equal(await statusOf(), 'cancelled');
  // A time in the past is refused beside its field.
  const past = await op.call('campaign_save', { ...draft, csrf: op.csrf, schedule: 'at', scheduled_at: '2020-01-01T10:00' });
  assert.equal(past.status, 400);
  assert.equal((await past.json()).Invalid.field, 'scheduled_at');

  // --- Sign-in throttling: five wrong passwords lock the account; the
  // right one is then refused with the same answer as a wrong one.
  const locked = { email: 'locked@example.com', password: 'locked-password-1' };
  assert.equal(await status(await admin.call('user_create', { csrf: admin.csrf, email: locked.email, role: 'operator', password: locked.password })), 200);
  const attempt = (password) => anonymous('login', { email: locked.email, password });
  const answers = [];
  for (let i = 0; i < 5; i++) {
    const r = await attempt('wrong password ' + i);
    assert.equal(r.status, 400);
    answers.push(await r.text());
  }
  const refused = await attempt(locked.password);
  assert.equal(refused.status, 400, 'locked: the right password is refused');
  assert.equal(await refused.text(), answers[0], 'the same answer as for a wrong password');
  const unknown = await anonymous('login', { email: 'nobody@example.com', password: 'whatever' });
  assert.equal(await unknown.text(), answers[0], 'the same answer for an unknown account');

  // --- The session cookie: HttpOnly, SameSite, path /; signing out ends it.
  const login = await anonymous('login', { email: users.operator.email, password: users.operator.password });
  const cookie = login.headers.get('set-cookie');
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Lax/);
  assert.match(cookie, /Path=\//);
  const jar = cookie.split(';')[0];
  const csrf = (await (await anonymous('current_staff', {}, { Cookie: jar })).json()).csrf;
  assert.equal(await status(await anonymous('logout', { csrf }, { Cookie: jar })), 200);
  assert.equal(await status(await anonymous('current_staff', {}, { Cookie: jar })), 401, 'the session is gone');

  // In the browser: the viewer sees no draft button and no sign-out error.
  const p = await newPage();
  await signIn(p, viewer);
  await p.goto('/campaigns');
  await p.waitForSelector('.toolbar');
  assert.equal(await p.locator('a[href="/campaigns/new"]').count(), 0);
  await p.click('text=Sign out');
  await waitFor(async () => new URL(p.url()).pathname === '/login', 'sign-out to reach the sign-in page');
}
