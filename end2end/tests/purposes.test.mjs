// Purposes in the console: an admin defines one and tags a template with
// it; from then on the template goes only to people whose consent covers
// that purpose (a consent to `service` no longer lets it go: no_consent),
// and the contact page lists each consent's purpose. An operator sees the
// purposes but no form to change them.
import assert from 'node:assert/strict';
import { watchErrors } from './watch.mjs';

const PERSON = { phone: '+4791231601', name: 'Pål Purpose' };

export async function run(ctx) {
  const { api, users, newPage, screenshot, signIn, waitFor } = ctx;
  const contact = await (await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name }),
  })).json();
  const consent = await api(`/api/v1/contacts/${contact.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({
      channel: 'whatsapp', source: 'api', purposes: ['service'],
      evidence: { consent_text_version: 'e2e-purpose-v1', page_url: 'https://example.com/signup' },
    }),
  });
  assert.equal(consent.status, 201, await consent.text());
  const send = async () => {
    const res = await api('/api/v1/messages', {
      method: 'POST',
      body: JSON.stringify({ contact_id: contact.id, template_name: 'task_reminder', variables: { task_name: 'Survey', due_time: '12:00' } }),
    });
    return { status: res.status, body: await res.json() };
  };
  // The consent gate's verdict (the test's API key is not approved for the
  // template, so the send itself is refused by not_authorized, later).
  const consentVerdict = (r) => r.body.decision.verdicts.find((v) => v.gate === 'no_consent').verdict;
  const before = await send();
  assert.equal(consentVerdict(before), 'pass', JSON.stringify(before.body));

  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = watchErrors(page);
  await signIn(page, users.admin);
  await page.goto('/templates');
  await page.waitForSelector('#purposes');
  assert.match(await page.textContent('#purposes [data-purpose=service]'), /Reminders and account messages/);
  assert.match(await page.textContent('#purposes [data-purpose=marketing]'), /marketing/i);
  await page.fill('#purpose-name', 'e2e-surveys');
  await page.fill('#purpose-label', 'Surveys about our service');
  await page.click('#add-purpose');
  await page.waitForSelector('#purposes [data-purpose=e2e-surveys]');

  await page.selectOption('#purpose-task_reminder', 'e2e-surveys');
  await page.click('tr[data-template=task_reminder] .purpose button');
  await waitFor(async () => {
    const v = await page.$eval('#purpose-task_reminder', (s) => s.value).catch(() => null);
    const r = await send();
    return v === 'e2e-surveys' && r.status === 422 && r.body.error.code === 'no_consent' ? r : null;
  }, 'the template to be tagged and refused for want of a consent to surveys');
  await screenshot(page, 'purposes');

  // Back to service: it goes again.
  await page.selectOption('#purpose-task_reminder', 'service');
  await page.click('tr[data-template=task_reminder] .purpose button');
  await waitFor(async () => (consentVerdict(await send()) === 'pass' ? true : null), 'the template back on service');

  // The contact page names each consent's purpose.
  await page.goto(`/contacts/${contact.id}`);
  await page.waitForSelector('#standing');
  assert.match(await page.textContent('#standing [data-channel=whatsapp][data-purpose=service]'), /active/);
  assert.match(await page.textContent('main'), /Purpose\s*service/);
  assert.deepEqual(errors, []);

  // An operator reads the purposes and changes nothing.
  const op = await newPage({ viewport: { width: 1280, height: 1000 } });
  await signIn(op, users.operator);
  await op.goto('/templates');
  await op.waitForSelector('#purposes');
  assert.equal(await op.$('#add-purpose'), null);
  assert.equal(await op.$('#purpose-task_reminder'), null);
}
