// A form that asks per purpose, end to end: an admin leaves WhatsApp's one
// text empty in the console's form editor and fills in a text for each of
// two purposes instead; the public page (phone-sized, no JavaScript) shows
// one unticked box per purpose, labelled with it; the person ticks
// reminders only, and the consent recorded names that purpose with that
// box's text and version. The gates then let reminders go and refuse
// marketing (no_consent).
import assert from 'node:assert/strict';
import { watchErrors } from './watch.mjs';

const PERSON = '+4791231701';
const SERVICE_TEXT = 'Yes, send me reminders of my viewings on WhatsApp. Reply STOP to opt out.';
const MARKETING_TEXT = 'Yes, send me offers on WhatsApp. Reply STOP to opt out.';

export async function run({ api, users, newPage, screenshot, signIn }) {
  const slug = 'by-purpose-' + Date.now().toString(36);

  // The console: a new form asking for WhatsApp per purpose.
  const admin = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = watchErrors(admin);
  await signIn(admin, users.admin);
  await admin.goto('/forms/new');
  await admin.fill('#slug', slug);
  await admin.fill('#title', 'Viewing updates');
  assert.equal(await admin.isChecked('input[name=offer_whatsapp]'), true);
  await admin.click('summary:has-text("Or ask for WhatsApp per purpose")');
  await admin.fill('#purpose-text-whatsapp-service', SERVICE_TEXT);
  await admin.fill('#purpose-text-whatsapp-marketing', MARKETING_TEXT);
  await screenshot(admin, 'form-editor-per-purpose');
  await Promise.all([
    admin.waitForURL((url) => /\/forms\/[A-Za-z0-9-]+$/.test(url.pathname) && !url.pathname.endsWith("/new")),
    admin.click('button:has-text("Save form")'),
  ]);
  await admin.getByText('whatsapp:service:v2').first().waitFor();
  const body = await admin.textContent('body');
  assert.match(body, /whatsapp:marketing:v1/);
  assert.match(body, /whatsapp:service:v2/);
  assert.doesNotMatch(body, /whatsapp:v\d/, 'WhatsApp is not also asked once');
  // Editing shows the purposes' texts where they were typed.
  await admin.goto(admin.url() + '/edit');
  await admin.waitForSelector('#purpose-text-whatsapp-service');
  assert.equal(await admin.inputValue('#purpose-text-whatsapp-service'), SERVICE_TEXT);
  assert.equal(await admin.inputValue('#whatsapp_text'), '');
  assert.deepEqual(errors, [], 'no errors in the console');
  await admin.context().close();

  // The public page on a phone, without JavaScript.
  const page = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, javaScriptEnabled: false });
  assert.equal((await page.goto(`/optin/${slug}`)).status(), 200);
  const boxes = page.locator('input[type=checkbox][name=channel]');
  assert.equal(await boxes.count(), 2, 'one box per purpose');
  const reminders = page.getByLabel(/reminders of my viewings/);
  const offers = page.getByLabel(/send me offers/);
  assert.equal(await reminders.getAttribute('value'), 'whatsapp:service');
  assert.equal(await offers.getAttribute('value'), 'whatsapp:marketing');
  assert.match(await page.locator(`label[for="${await reminders.getAttribute('id')}"] strong`).textContent(), /^WhatsApp: Reminders and account messages$/);
  assert.equal(await reminders.isChecked(), false, 'boxes start unticked');
  assert.equal(await offers.isChecked(), false, 'boxes start unticked');
  await screenshot(page, 'optin-form-per-purpose-phone');
  await page.getByLabel('Your name').fill('Per Purpose');
  await page.getByLabel('Mobile number').fill(PERSON);
  await reminders.check();
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign up' }).click()]);
  assert.match(await page.locator('.status').textContent(), /WhatsApp \(Reminders and account messages\):\s*you're signed up/);
  await page.context().close();

  // What was recorded: one consent, for the purpose ticked, with its text.
  const contact = await (await api(`/api/v1/contacts?phone=${encodeURIComponent(PERSON)}`)).json();
  const exported = await (await api(`/api/v1/contacts/${contact.id}/consents/export?format=json`)).json();
  assert.equal(exported.consents.length, 1, JSON.stringify(exported.consents));
  const c = exported.consents[0];
  assert.equal(c.purpose, 'service');
  assert.equal(c.consent_text, SERVICE_TEXT);
  assert.equal(c.consent_text_version, 'whatsapp:service:v2');

  // The consent gate: reminders (service) may go, marketing may not. (The
  // test's API key is not approved for the template, so the send itself is
  // refused later, by not_authorized; the consent gate's verdict is what counts.)
  const verdict = async (message) => {
    const res = await api('/api/v1/messages', { method: 'POST', body: JSON.stringify({ contact_id: contact.id, ...message }) });
    const b = await res.json();
    assert.ok(b.decision, JSON.stringify(b));
    return b.decision.verdicts.find((v) => v.gate === 'no_consent').verdict;
  };
  assert.equal(await verdict({ template_name: 'task_reminder', variables: { task_name: 'Viewing', due_time: '17:00' } }), 'pass');
  assert.equal(await verdict({ text: 'Spring offer: 10% off.', purpose: 'marketing' }), 'block');
}
