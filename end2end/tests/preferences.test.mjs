// The preference page as the person meets it: they reply HELP; the reply
// that reaches the sandbox carries a link; on a phone, with JavaScript
// off, the page shows what they agreed to; they stop offers on WhatsApp
// and the page says so at once; a marketing send is then refused with
// `suppressed` while a reminder still goes; "Stop everything" stops the
// rest.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791231501', name: 'Pia Preferanse' };

export async function run(ctx) {
  const { api, sandbox, newPage, screenshot, waitFor } = ctx;
  const r = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name }),
  });
  const contact = await r.json();
  assert.ok(contact.id, JSON.stringify(contact));
  const consent = await api(`/api/v1/contacts/${contact.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({
      channel: 'whatsapp',
      source: 'api',
      purposes: ['service', 'marketing'],
      evidence: { consent_text_version: 'e2e-pref-v1', page_url: 'https://example.com/signup' },
    }),
  });
  assert.equal(consent.status, 201, await consent.text());

  const help = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: PERSON.phone, body: 'HELP' }),
  });
  assert.ok(help.ok, `sandbox inbound: ${help.status}`);
  const reply = await waitFor(async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    return (Array.isArray(all) ? all : all.messages || [])
      .find((m) => m.direction === 'outbound-api' && m.to.endsWith(PERSON.phone) && /\/p\//.test(m.body || ''));
  }, 'the HELP reply with its link in the sandbox');
  const link = reply.body.match(/https?:\/\/\S+\/p\/[A-Za-z0-9_-]+/);
  assert.ok(link, reply.body);
  const path = new URL(link[0]).pathname;

  const page = await newPage({ javaScriptEnabled: false, viewport: { width: 390, height: 844 }, isMobile: true });
  await page.goto(path);
  assert.match(await page.textContent('h1'), /Your messages from us/);
  assert.match(await page.textContent('main'), /ending in 1501/);
  assert.equal(await page.$('script'), null);
  const offers = '#whatsapp-marketing';
  assert.match(await page.textContent(offers), /You receive these/);
  assert.match(await page.textContent(offers), /e2e-pref-v1/);
  // Nothing wider than the phone's screen.
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 390, `page is ${wide}px wide`);
  await screenshot(page, 'preferences');

  await page.click('#stop-whatsapp-marketing');
  await page.waitForSelector('#notice');
  assert.match(await page.textContent('#notice'), /no more offers and news messages by WhatsApp/);
  assert.match(await page.textContent(offers), /Stopped/);
  assert.match(await page.textContent('#whatsapp-service'), /You receive these/);
  await screenshot(page, 'preferences-stopped');

  // The gates agree, at once: a reminder (service) passes the consent
  // and suppression gates. (The test's API key is not approved for the
  // template, so it is refused by not_authorized: a gate of its own.)
  const send = async (template, variables) => {
    const res = await api('/api/v1/messages', {
      method: 'POST',
      body: JSON.stringify({ contact_id: contact.id, template_name: template, variables }),
    });
    return { status: res.status, body: await res.json() };
  };
  const verdict = (r, gate) => r.body.decision.verdicts.find((v) => v.gate === gate).verdict;
  const reminder = await send('task_reminder', { task_name: 'Viewing', due_time: '17:00' });
  assert.equal(verdict(reminder, 'suppressed'), 'pass', JSON.stringify(reminder.body));
  assert.equal(verdict(reminder, 'no_consent'), 'pass', JSON.stringify(reminder.body));

  await page.click('#stop-everything');
  await page.waitForSelector('#notice');
  assert.match(await page.textContent('#notice'), /nothing more from us/);
  const after = await send('task_reminder', { task_name: 'Viewing', due_time: '18:00' });
  assert.equal(after.status, 422, JSON.stringify(after.body));
  assert.equal(after.body.error.code, 'suppressed');
}
