// The core flows with JavaScript off: sign in, read the review, approve
// (the form posts to the server function, which redirects back to the
// page), see the progress rendered by the server, reject with a reason,
// and sign out. A bad sign-in shows its error beside the form.
import assert from 'node:assert/strict';

async function consented(api, phone, name, tag) {
  const r = await api('/api/v1/contacts', { method: 'POST', body: JSON.stringify({ phone, name, tags: [tag] }) });
  const c = await r.json();
  const consent = await api(`/api/v1/contacts/${c.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({ channel: 'whatsapp', source: 'api', evidence: { consent_text_version: 'v1', page_url: 'https://example.com' } }),
  });
  assert.equal(consent.status, 201);
  return c;
}

async function draftAndSubmit(op, name, tag) {
  const saved = await op.call('campaign_save', {
    csrf: op.csrf, name, channel: 'whatsapp', template_name: 'task_reminder', audience: 'tags', tags: tag,
    'var_source[task_name]': 'value', 'var_value[task_name]': 'the no-script check',
    'var_source[due_time]': 'value', 'var_value[due_time]': '09:00', schedule: 'on_approval',
  });
  const text = await saved.text();
  assert.equal(saved.status, 200, text);
  const id = JSON.parse(text);
  const submitted = await op.call('campaign_submit', { csrf: op.csrf, id });
  assert.equal(submitted.status, 200);
  return id;
}

export async function run(ctx) {
  const { api, staff, users, newPage, screenshot, waitFor } = ctx;
  const tag = 'e2e-nojs';
  await consented(api, '+4791231001', 'Nina Noscript', tag);
  await consented(api, '+4791231002', 'Nils Noscript', tag);
  const op = await staff(users.operator);
  const toApprove = await draftAndSubmit(op, 'No-script approval', tag);
  const toReject = await draftAndSubmit(op, 'No-script rejection', tag);

  const page = await newPage({ javaScriptEnabled: false });

  // A wrong password: the server redirects back with the error, shown by the form.
  await page.goto('/login');
  await page.fill('#email', users.approver.email);
  await page.fill('#password', 'not the password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.field-error, .notice.error');
  assert.match(await page.textContent('body'), /not right/);
  await screenshot(page, 'login-error-nojs');

  // Sign in.
  await page.fill('#email', users.approver.email);
  await page.fill('#password', users.approver.password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('button[type=submit]')]);

  // The review is rendered on the server; approve with a plain form post.
  await page.goto(`/campaigns/${toApprove}`);
  assert.equal((await page.textContent('#audience-size')).trim(), '2');
  await Promise.all([page.waitForLoadState('load'), page.click('#approve-campaign')]);
  assert.equal(new URL(page.url()).pathname, `/campaigns/${toApprove}`);
  await page.waitForSelector('#progress');
  // No script polls here: reload until the server renders both as read.
  await waitFor(async () => {
    await page.reload();
    const read = await page.$('#by-state [data-state=read] dd');
    return read && (await read.textContent()).trim() === '2';
  }, 'both messages read (server-rendered)', 30000);
  await screenshot(page, 'campaign-progress-nojs');

  // Reject another with a reason.
  await page.goto(`/campaigns/${toReject}`);
  await page.fill('#reason', 'The due time is wrong');
  await Promise.all([page.waitForLoadState('load'), page.click('#reject-campaign')]);
  await page.waitForSelector('.rejection');
  assert.match(await page.textContent('.rejection'), /The due time is wrong/);

  // Sign out with the form; the session is gone.
  await Promise.all([page.waitForURL((u) => u.pathname === '/login'), page.click('text=Sign out')]);
  const res = await page.goto('/campaigns');
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(res.status(), 200);
}
