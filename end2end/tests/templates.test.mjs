// Templates written in the console: an admin writes one with two named
// variables (a missing sample is refused beside its field, and nothing is
// recorded), submits it through Twilio's Content API and sees it pending;
// the sandbox (as WhatsApp) rejects it and, after "Refresh approval", the
// page shows the reason. A second one goes through Meta's template API, is
// approved by the sandbox and shows approved after a refresh. The API's
// template list says the same. Screenshots: templates-new, -rejected, -approved.
import assert from 'node:assert/strict';
import { watchErrors } from './watch.mjs';

const REASON = 'Sample values must not be placeholders';

async function apiTemplate(api, name) {
  const r = await api('/api/whatsapp/templates');
  assert.equal(r.status, 200);
  const body = await r.json();
  return body.templates.find((t) => t.name === name);
}

async function fillNew(page, { name, body, samples, provider, category }) {
  if (!(await page.locator('#new-template').evaluate((d) => d.open))) {
    await page.click('#new-template summary');
  }
  await page.fill('#tpl-name', name);
  await page.fill('#tpl-language', 'en');
  if (category) await page.selectOption('#tpl-category', category);
  if (provider) await page.selectOption('#tpl-provider', provider);
  await page.fill('#tpl-body', body);
  await page.fill('#tpl-samples', samples);
}

export async function run(ctx) {
  const { api, sandbox, waitFor, users, newPage, screenshot, signIn } = ctx;
  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = watchErrors(page);
  await signIn(page, users.admin);
  await page.goto('/templates');
  await page.waitForSelector('#new-template');
  // Both providers are offered in sandbox mode.
  const offered = await page.locator('#tpl-provider option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(offered.sort(), ['meta', 'twilio']);

  // --- A sample missing: the error stands beside the samples field, nothing is recorded.
  await fillNew(page, {
    name: 'e2e_pickup_ready',
    body: 'Hi {{first_name}}, your order {{order_id}} is ready for pickup.',
    samples: 'first_name=Kari',
    provider: 'twilio',
  });
  await page.click('#new-template button[type=submit]');
  await page.waitForSelector('#samples-error');
  assert.match(await page.textContent('#samples-error'), /order_id/);
  assert.equal(await apiTemplate(api, 'e2e_pickup_ready'), undefined, 'nothing recorded on error');

  // --- Through Twilio: pending.
  await fillNew(page, {
    name: 'e2e_pickup_ready',
    body: 'Hi {{first_name}}, your order {{order_id}} is ready for pickup.',
    samples: 'first_name=Kari\norder_id=A-17',
    provider: 'twilio',
  });
  await page.click('#new-template button[type=submit]');
  await page.waitForSelector('tr[data-template=e2e_pickup_ready][data-status=pending]');
  const row = page.locator('tr[data-template=e2e_pickup_ready]');
  const rowText = await row.textContent();
  assert.match(rowText, /console/);
  assert.match(rowText, /first_name/);
  assert.match(rowText, /order_id/);
  assert.match(rowText, /\{\{2\}\}/);
  await page.waitForSelector('#template-created');
  await screenshot(page, 'templates-new');
  // At Twilio: the content with positional placeholders and the samples, pending review.
  const atTwilio = (await (await sandbox('/sandbox/templates')).json())
    .find((t) => t.friendly_name === 'e2e_pickup_ready');
  assert.ok(atTwilio, 'the content exists at the sandbox');
  assert.equal(atTwilio.status, 'pending');
  assert.equal(atTwilio.types['twilio/text'].body, 'Hi {{1}}, your order {{2}} is ready for pickup.');
  assert.deepEqual(atTwilio.variables, { 1: 'Kari', 2: 'A-17' });
  assert.equal((await apiTemplate(api, 'e2e_pickup_ready')).status, 'pending');

  // --- WhatsApp rejects it; a refresh shows why.
  const reject = await sandbox('/sandbox/templates', {
    method: 'POST',
    body: JSON.stringify({ name: 'e2e_pickup_ready', status: 'rejected', rejection_reason: REASON }),
  });
  assert.equal(reject.status, 200);
  await page.click('#refresh-approval');
  await page.waitForSelector('tr[data-template=e2e_pickup_ready][data-status=rejected]');
  assert.match(await row.locator('.rejection').textContent(), new RegExp(REASON));
  await screenshot(page, 'templates-rejected');
  const viaApi = await apiTemplate(api, 'e2e_pickup_ready');
  assert.equal(viaApi.status, 'rejected');
  assert.equal(viaApi.rejection_reason, REASON);

  // --- Through Meta: pending, approved by the sandbox, approved after a refresh.
  await fillNew(page, {
    name: 'e2e_visit_booked',
    body: 'Hello {{name}}, your visit on {{day}} is booked.',
    samples: 'name=Ola\nday=Monday',
    provider: 'meta',
  });
  await page.click('#new-template button[type=submit]');
  await page.waitForSelector('tr[data-template=e2e_visit_booked][data-status=pending]');
  assert.match(await page.locator('tr[data-template=e2e_visit_booked]').textContent(), /meta/);
  const approve = await sandbox('/sandbox/templates', {
    method: 'POST',
    body: JSON.stringify({ name: 'e2e_visit_booked', status: 'approved' }),
  });
  assert.equal(approve.status, 200);
  await page.click('#refresh-approval');
  await page.waitForSelector('tr[data-template=e2e_visit_booked][data-status=approved]');
  await page.locator('tr[data-template=e2e_visit_booked]').scrollIntoViewIfNeeded();
  await screenshot(page, 'templates-approved');
  await waitFor(async () => (await apiTemplate(api, 'e2e_visit_booked'))?.status === 'approved', 'the API to show it approved');
  // The rejected one is still rejected.
  assert.equal(await page.getAttribute('tr[data-template=e2e_pickup_ready]', 'data-status'), 'rejected');

  assert.deepEqual(errors, [], `script errors: ${errors.join('\n')}`);
}
