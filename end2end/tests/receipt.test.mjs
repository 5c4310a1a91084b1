// A message's receipt from the console: a consented contact (with a user
// agent that is markup) gets a campaign message that an approver approved;
// on the contact's page the message's Receipt link opens the printable
// page, which shows the consent's evidence and text, the approval (who,
// and the approved content hash), the verdicts and the delivered report,
// escapes the user agent, runs no script, and (once the sealer has run)
// says every record is intact in the audit chain. Its JSON link answers
// the same receipt.
import assert from 'node:assert/strict';

const TAG = 'e2e-receipt';
const PERSON = { phone: '+4791238001', name: 'Rita Receipt' };
const AGENT = 'E2E Browser <img src=x onerror=alert(1)>';
const CONSENT_TEXT = 'Yes, remind me on WhatsApp. Reply STOP to end.';

export async function run(ctx) {
  const { api, users, newPage, signIn, screenshot, staff, waitFor } = ctx;

  const created = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name, tags: [TAG] }),
  });
  const contactText = await created.text();
  assert.ok(created.status === 201 || created.status === 200, contactText);
  const contact = JSON.parse(contactText);
  const consent = await api(`/api/v1/contacts/${contact.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({
      channel: 'whatsapp',
      source: 'api',
      evidence: {
        consent_text_version: 'e2e-receipt-v1',
        consent_text: CONSENT_TEXT,
        page_url: 'https://example.com/receipt-optin',
        ip: '203.0.113.77',
        user_agent: AGENT,
      },
    }),
  });
  assert.equal(consent.status, 201, await consent.text());

  // A campaign written by the operator, approved by the approver.
  const op = await staff(users.operator);
  const saved = await op.call('campaign_save', {
    csrf: op.csrf, name: 'Receipt campaign', channel: 'whatsapp', template_name: 'task_reminder',
    audience: 'tags', tags: TAG,
    'var_source[task_name]': 'value', 'var_value[task_name]': 'Bring the receipt',
    'var_source[due_time]': 'value', 'var_value[due_time]': '09:00', schedule: 'on_approval',
  });
  assert.equal(saved.status, 200, await saved.clone().text());
  const campaignId = await saved.json();
  assert.equal((await op.call('campaign_submit', { csrf: op.csrf, id: campaignId })).status, 200);
  const ap = await staff(users.approver);
  const reviewed = (await (await ap.call('campaign_page', { id: campaignId })).json()).review.content_hash;
  const approved = await ap.call('campaign_approve', { csrf: ap.csrf, id: campaignId, content_hash: reviewed });
  assert.equal(approved.status, 200, await approved.clone().text());

  // The contact's page, once the message is delivered.
  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);
  await waitFor(async () => {
    await page.goto(`/contacts/${contact.id}`);
    await page.waitForSelector('#timeline, .muted', { timeout: 10000 });
    return (await page.$('li.message[data-state=delivered], li.message[data-state=read]')) !== null;
  }, 'the campaign message delivered');
  const link = page.locator('li.message a.receipt-link').first();
  assert.equal(await link.textContent(), 'Receipt');
  await screenshot(page, 'receipt-link');

  // Receipt: the printable page opens beside the console.
  const [receipt] = await Promise.all([page.context().waitForEvent('page'), link.click()]);
  await receipt.waitForLoadState('domcontentloaded');
  assert.match(receipt.url(), /\/messages\/[0-9a-f-]{36}\/receipt$/);
  const scriptErrors = [];
  receipt.on('pageerror', (e) => scriptErrors.push(String(e)));
  // The sealer chains what was written every second: reload until intact.
  await waitFor(async () => {
    await receipt.reload();
    return (await receipt.getAttribute('[data-chain-overall]', 'data-chain-overall')) === 'intact';
  }, 'every record of the receipt chained and intact');
  const text = await receipt.textContent('body');
  for (const want of [
    PERSON.phone, 'task_reminder', 'Bring the receipt',
    '203.0.113.77', AGENT, 'https://example.com/receipt-optin', 'e2e-receipt-v1', CONSENT_TEXT,
    users.approver.email, users.operator.email, reviewed, 'delivered', 'no_consent',
  ]) {
    assert.ok(text.includes(want), `the receipt shows ${want}`);
  }
  // The hostile user agent is text, not an element; no script at all.
  assert.equal(await receipt.$$eval('img', (els) => els.length), 0, 'no element from the user agent');
  assert.equal(await receipt.$$eval('script', (els) => els.length), 0, 'no script');
  const evidence = await receipt.textContent('table.consent-evidence');
  assert.ok(evidence.includes(AGENT), evidence);
  assert.equal(await receipt.textContent('table.approval [data-chain]'), 'intact');
  await screenshot(receipt, 'receipt-page');

  // Its JSON link, under the same session.
  const jsonHref = await receipt.getAttribute('a[href$="format=json"]', 'href');
  const json = await (await receipt.request.get(jsonHref)).json();
  assert.equal(json.consent.record.user_agent, AGENT);
  assert.equal(json.authorization.kind, 'campaign');
  assert.equal(json.authorization.approved_by.email, users.approver.email);
  assert.equal(json.authorization.approved_content_hash, reviewed);
  assert.equal(json.chain, 'intact');
  assert.deepEqual(errors, []);
  assert.deepEqual(scriptErrors, []);
}
