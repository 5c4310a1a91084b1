// The README's newcomer walk, step 2, literally: "Contacts -> add a contact with a
// WhatsApp opt-in (the evidence is required)". Missing evidence is refused beside its
// field and records nothing; a good one lands on the contact's page with the consent
// and its evidence; the same number again is refused; a contact added without a consent
// gets no template (no_consent); name, tags, time zone and fields are edited; the
// consent CSV import works from the Contacts page.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791237001', name: 'Nora Newcomer' };
const QUIET = { phone: '+4791237002', name: 'Quiet Person' };

export async function run(ctx) {
  const { api, users, newPage, signIn, screenshot, waitFor } = ctx;
  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);

  // Contacts -> Add a contact.
  await page.click('nav >> text=Contacts');
  await page.waitForURL(/\/contacts$/);
  await page.click('#new-contact summary');
  await page.fill('#new-phone', PERSON.phone);
  await page.fill('#new-name', PERSON.name);
  await page.fill('#new-tags', 'newcomers, Oslo');
  await page.selectOption('#consent_channel', 'whatsapp');
  await page.fill('#consent_text_version', 'front-desk-v1');
  // Without saying how the consent was given: refused beside the field.
  await page.click('text=Add contact');
  await page.waitForSelector('#page_url-error:not(:empty)');
  assert.match(await page.textContent('#page_url-error'), /how the consent was given/);
  assert.equal((await api(`/api/v1/contacts?phone=${encodeURIComponent(PERSON.phone)}`)).status, 404, 'nothing recorded');
  await screenshot(page, 'contacts-new-refused');

  // With the evidence: the contact's page, with the consent and its evidence.
  await page.fill('#page_url', 'https://example.com/signed/nora.pdf');
  await page.fill('#consent_text', 'Yes, send me appointment reminders on WhatsApp. Reply STOP to stop.');
  await Promise.all([page.waitForURL(/\/contacts\/[0-9a-f-]{36}$/), page.click('text=Add contact')]);
  const id = page.url().split('/').pop();
  await page.waitForSelector('#standing');
  assert.equal((await page.textContent('#contact-phone')).trim(), PERSON.phone);
  assert.match(await page.textContent('#standing [data-channel=whatsapp]'), /active/);
  const history = await page.textContent('main');
  for (const want of ['staff', 'front-desk-v1', 'https://example.com/signed/nora.pdf', users.operator.email]) {
    assert.ok(history.includes(want), `the consent history shows ${want}`);
  }
  await screenshot(page, 'contact-created');
  const stored = await (await api(`/api/v1/contacts/${id}/consents`)).json();
  const consent = stored.consents.find((c) => c.channel === 'whatsapp');
  assert.equal(consent.status, 'active');
  assert.equal(consent.source, 'staff');
  assert.equal(consent.strength, 'attested');
  assert.match(consent.consent_text_hash, /^[0-9a-f]{64}$/);

  // The same number again is refused, with a link to the contact, and changes nothing.
  await page.goto('/contacts');
  await page.click('#new-contact summary');
  await page.fill('#new-phone', PERSON.phone);
  await page.selectOption('#consent_channel', '');
  await page.click('text=Add contact');
  await page.waitForSelector('#phone-error:not(:empty)');
  assert.match(await page.textContent('#phone-error'), new RegExp(`already exists: /contacts/${id}`));

  // A contact added without a consent gets no template.
  await page.fill('#new-phone', QUIET.phone);
  await page.fill('#new-name', QUIET.name);
  await Promise.all([page.waitForURL(/\/contacts\/[0-9a-f-]{36}$/), page.click('text=Add contact')]);
  const quietId = page.url().split('/').pop();
  const refused = await api('/api/whatsapp/send', {
    method: 'POST',
    body: JSON.stringify({ user_id: quietId, template_name: 'task_reminder', variables: { task_name: 'x', due_time: 'y' } }),
  });
  const refusedText = await refused.text();
  assert.equal(refused.status, 422, refusedText);
  assert.equal(JSON.parse(refusedText).error.code, 'no_consent');

  // Edit: name, tags, time zone and fields; a bad zone is refused beside its field.
  await page.goto(`/contacts/${id}`);
  await page.click('#edit-contact summary');
  await page.fill('#edit-tz', 'Mars/Olympus');
  await page.click('#edit-contact >> text=Save');
  await page.waitForSelector('#time_zone-error:not(:empty)');
  assert.match(await page.textContent('#time_zone-error'), /IANA/);
  await page.fill('#edit-name', 'Nora N. Newcomer');
  await page.fill('#edit-tags', 'newcomers, vip');
  await page.fill('#edit-tz', 'Europe/Oslo');
  await page.fill('#edit-fields', 'clinic=Grünerløkka\nplan=gold');
  await page.click('#edit-contact >> text=Save');
  await waitFor(async () => (await page.textContent('dl.summary')).includes('Nora N. Newcomer'), 'the edit to show');
  const summary = await page.textContent('dl.summary');
  assert.match(summary, /newcomers, vip/);
  assert.match(summary, /Europe\/Oslo/);
  assert.match(summary, /clinic: Grünerløkka/);
  await screenshot(page, 'contact-edited');
  const after = (await (await api(`/api/v1/contacts/${id}`)).json()).contact;
  assert.deepEqual(after.tags, ['newcomers', 'vip']);
  assert.equal(after.attributes.plan, 'gold');
  assert.equal(after.phone, PERSON.phone, 'the number stays');

  // The consent CSV import, from the Contacts page (admins).
  const admin = await newPage({ viewport: { width: 1280, height: 1000 } });
  await signIn(admin, users.admin);
  await admin.goto('/contacts');
  await admin.fill('#csv', [
    'phone,channel,source,captured_at,consent_text_version,page_url',
    '+4791237003,whatsapp,import,2026-01-05T10:00:00Z,v1,https://example.com/paper',
    'not-a-phone,whatsapp,import,2026-01-05T10:00:00Z,v1,https://example.com/paper',
  ].join('\n'));
  await admin.click('button:has-text("Import")');
  await admin.waitForSelector('#import-report');
  const report = await admin.textContent('#import-report');
  assert.match(report, /1 imported/);
  assert.match(report, /1 refused/);
  await screenshot(admin, 'contacts-import');
  assert.deepEqual(errors, []);
}
