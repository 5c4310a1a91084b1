// Settings, automations and opt-in forms in the browser: an API key is
// shown once; activating a sender needs an explicit authorization; the
// tier limit applies at once; an automation created by an admin is
// approved by an approver (never by its creator); an opt-in form with a
// versioned consent text and a QR code; a consent import reports each
// refused row.
import assert from 'node:assert/strict';

export async function run(ctx) {
  const { users, newPage, signIn, screenshot, staff, waitFor, baseURL, api, sandbox } = ctx;
  const page = await newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.admin);

  // --- API keys: created, shown once, gone on the next visit.
  await page.goto('/settings');
  await page.waitForSelector('#api-keys');
  await page.fill('#key-name', 'e2e n8n');
  // A key needs at least one scope.
  await page.click('text=Create API key');
  await page.waitForSelector('#scopes-error:not(:empty)');
  assert.match(await page.textContent('#scopes-error'), /at least one/);
  await page.check('#scope_send');
  await page.check('#scope_reminders');
  await page.click('text=Create API key');
  await page.waitForSelector('#new-api-key');
  const key = (await page.textContent('#new-api-key')).trim();
  assert.match(key, /^hmd_[0-9a-f]{64}$/);
  // It may send, and nothing else.
  const asKey = (path, init = {}) => fetch(new URL(path, baseURL), {
    ...init, headers: { 'X-API-Key': key, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  assert.equal((await asKey('/api/whatsapp/templates')).status, 200);
  const denied = await asKey('/api/v1/forms');
  assert.equal(denied.status, 403);
  assert.equal((await denied.json()).error.scope, 'forms:read');
  assert.equal(await page.inputValue('#key-name'), '', 'the form is emptied');
  await page.reload();
  await page.waitForSelector('#api-keys');
  await screenshot(page, 'settings');
  assert.equal(await page.locator('#new-api-key').count(), 0, 'the key is shown once');
  assert.ok(!(await page.content()).includes(key), 'the key is never rendered again');

  // --- Staff lifecycle: an admin deactivates someone; their session ends
  // at once.
  const admin = await staff(users.admin);
  const temp = { email: 'temp-e2e@example.com', password: 'temporary-password-1' };
  assert.equal((await admin.call('user_create', { csrf: admin.csrf, email: temp.email, role: 'operator', password: temp.password })).status, 200);
  const tempSession = await staff(temp);
  assert.equal((await tempSession.call('current_staff')).status, 200);
  await page.goto('/settings');
  await page.waitForSelector('#deactivate-temp-e2e-example-com');
  await page.click('#deactivate-temp-e2e-example-com');
  await page.waitForSelector('#reactivate-temp-e2e-example-com');
  await screenshot(page, 'settings-staff');
  assert.equal((await tempSession.call('current_staff')).status, 401, 'the session ended at once');
  // The only admin cannot demote themself (one active admin always remains).
  const demote = await admin.call('staff_update', { csrf: admin.csrf, email: users.admin.email, action: 'role', role: 'operator' });
  assert.equal(demote.status, 409, await demote.text());

  // --- Senders: activation needs the explicit authorization.
  const senders = await (await admin.call('settings_data')).json();
  const wa = senders.senders.find((s) => s.kind.includes('whatsapp'));
  assert.ok(wa && wa.active, 'the sandbox WhatsApp sender is active');
  const unauthorized = await admin.call('sender_set_active', { csrf: admin.csrf, id: wa.id, active: 'true' });
  assert.equal(unauthorized.status, 400);
  assert.equal((await unauthorized.json()).Invalid.field, 'authorize');
  // Deactivate and activate again through the page (recorded each time).
  const row = page.locator('#senders tr', { hasText: wa.address });
  await row.locator('text=Deactivate').click();
  await page.waitForSelector(`#senders tr:has-text("${wa.address}") input[name=authorize]`);
  await page.locator(`#senders tr:has-text("${wa.address}") input[name=authorize]`).check();
  await page.locator(`#senders tr:has-text("${wa.address}") button:has-text("Activate")`).click();
  await page.waitForSelector(`#senders tr:has-text("${wa.address}") button:has-text("Deactivate")`);
  const after = await (await admin.call('settings_data')).json();
  assert.equal(after.senders.find((s) => s.id === wa.id).active, true);

  // --- The tier limit applies at once (the dashboard shows it).
  await page.fill('#limit', '500');
  await page.click('text=Save tier');
  await page.waitForSelector('#runtime .notice.ok');
  await page.goto('/');
  await page.waitForSelector('text=of 500 people');
  // --- Each runtime setting says where its value comes from.
  const sources = await (await admin.call('settings_data')).json();
  assert.match(sources.tier_limit.origin, /^set by admin@example\.com on \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  assert.equal(sources.recipient_pace_seconds.origin, 'from the environment');
  assert.equal(sources.help_text.origin, 'the default');
  await page.goto('/settings');
  await page.waitForSelector('#runtime');
  const runtimeText = await page.textContent('#runtime');
  assert.match(runtimeText, /In force: 500 \(set by admin@example\.com on /);
  assert.match(runtimeText, /In force: 0 \(from the environment\)/);
  // --- Retention: each kind, how long it is kept and what sets it.
  const retention = await page.textContent('#retention');
  for (const v of ['HEIMDALL_RETAIN_MESSAGE_BODY_DAYS', 'HEIMDALL_RETAIN_INBOUND_TEXT_DAYS',
    'HEIMDALL_WEBHOOK_AUDIT_DAYS', 'HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS']) {
    assert.ok(retention.includes(v), `${v} in ${retention}`);
  }
  assert.match(retention, /1826 days \(about 5 years\)/);
  assert.equal(await page.locator('#retention tbody tr').count(), 4);

  // --- Automations: the admin creates one; the approver approves it.
  await page.goto('/automations');
  await page.fill('#auto-name', 'Reminders from n8n');
  const keyValue = await page.$eval('#api_key_id', (s) => [...s.options].find((o) => o.text.startsWith('e2e n8n')).value);
  await page.selectOption('#api_key_id', keyValue);
  await page.locator('label:has-text("task_reminder") input').check();
  await page.check('#auto-free-form');
  await page.click('text=Create (needs approval)');
  await page.waitForSelector('#automations');
  assert.match(await page.textContent('#automations'), /pending/);
  assert.equal(await page.locator('#automations button:has-text("Approve")').count(), 0, 'no approval for its creator');
  const list = await (await admin.call('automations_data')).json();
  const auto = list.automations.find((a) => a.name === 'Reminders from n8n');
  const selfApprove = await admin.call('automation_approve', { csrf: admin.csrf, id: auto.id });
  assert.equal(selfApprove.status, 403, 'the creator cannot approve it');

  const ap = await newPage();
  await signIn(ap, users.approver);
  await ap.goto('/automations');
  await ap.click('#automations button:has-text("Approve")');
  await waitFor(async () => (await ap.textContent('#automations')).includes('approved'), 'the automation to be approved');
  assert.match(await ap.textContent('#automations'), /free-form replies inside the window/);
  await screenshot(ap, 'automations');

  // --- Approved for free-form replies, the key answers a person who wrote, in Markdown,
  // and the sandbox receives it as WhatsApp formatting.
  const bot = '+4791236001';
  const made = await api('/api/v1/contacts', { method: 'POST', body: JSON.stringify({ phone: bot, name: 'Bot Person' }) });
  const madeText = await made.text();
  assert.ok(made.status === 201 || made.status === 200, madeText);
  const botContact = JSON.parse(madeText);
  const wrote = await sandbox('/sandbox/inbound', { method: 'POST', body: JSON.stringify({ from: bot, body: 'When do you open?' }) });
  assert.ok(wrote.ok);
  await waitFor(async () => (await (await api(`/api/v1/contacts/${botContact.id}`)).json()).windows?.whatsapp?.in_window === true, 'the window to open');
  const answer = await asKey('/api/v1/messages', {
    method: 'POST',
    body: JSON.stringify({ contact_id: botContact.id, channel: 'whatsapp', text: 'We open at **09:00**.' }),
  });
  const answerText = await answer.text();
  assert.equal(answer.status, 202, answerText);
  assert.equal(JSON.parse(answerText).state, 'queued', answerText);
  await waitFor(async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    return (Array.isArray(all) ? all : all.messages || []).some((m) => m.to.endsWith(bot) && m.body === 'We open at *09:00*.');
  }, 'the reply in the sandbox');

  // --- An opt-in form with a consent text and a QR code.
  await page.goto('/forms/new');
  await page.fill('#slug', 'e2e-newsletter');
  await page.fill('#title', 'Service updates');
  await page.fill('#whatsapp_text', 'Yes, send me service updates on WhatsApp. Reply STOP to stop.');
  await Promise.all([page.waitForURL(/\/forms\/[0-9a-f-]{36}$/), page.click('text=Save form')]);
  await page.waitForSelector('#qr-codes');
  assert.match(await page.textContent('main'), /whatsapp:v1/);
  await page.fill('#source_label', 'front desk');
  await page.click('text=Create QR code');
  await page.waitForSelector('#qr-codes img');
  await screenshot(page, 'form');
  // A bad edit is refused beside its field and changes nothing.
  await page.goto('/forms/new');
  await page.fill('#slug', 'e2e-newsletter');
  await page.fill('#title', 'Duplicate');
  await page.fill('#whatsapp_text', 'Text');
  await page.click('text=Save form');
  await page.waitForSelector('#slug-error');
  assert.match(await page.textContent('#slug-error'), /already exists/);

  // --- A consent import reports refused rows by number.
  await page.goto('/forms');
  await page.fill('#csv', [
    'phone,channel,source,captured_at,consent_text_version,page_url',
    '+4791233001,whatsapp,import,2026-01-05T10:00:00Z,v1,https://example.com/paper',
    'not-a-phone,whatsapp,import,2026-01-05T10:00:00Z,v1,https://example.com/paper',
  ].join('\n'));
  await page.click('button:has-text("Import")');
  await page.waitForSelector('#import-report');
  const report = await page.textContent('#import-report');
  assert.match(report, /1 imported/);
  assert.match(report, /1 refused/);
  await screenshot(page, 'forms');

  assert.deepEqual(errors, [], 'no script errors');
}
