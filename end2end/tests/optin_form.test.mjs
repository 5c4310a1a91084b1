// The public opt-in form on a phone-sized screen, with JavaScript switched
// off: it fits the screen, its fields are labelled, a bad phone number and
// a missing tick are shown beside their fields (and nothing is recorded),
// and a good submission records the consent with the browser's evidence.
// The QR landing page is checked at the same size.
import assert from 'node:assert/strict';

const UA = 'Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Mobile Safari/537.36 heimdall-e2e';
const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent: UA,
};
const WA_TEXT = 'Yes, send me updates about 12 Elm St on WhatsApp. Reply STOP to opt out.';
const SMS_TEXT = 'Yes, text me updates about 12 Elm St. Msg & data rates may apply.';

async function json(res, status) {
  const body = await res.text();
  assert.equal(res.status, status, body);
  return JSON.parse(body);
}

/// The page fits a phone's width and its controls are big enough to tap.
async function checkLayout(newPage, path) {
  const page = await newPage(PHONE);
  await page.goto(path);
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
    fontSize: parseFloat(getComputedStyle(document.body).fontSize),
  }));
  assert.ok(m.scroll <= m.width, `no sideways scrolling at ${m.width}px (content is ${m.scroll}px)`);
  assert.ok(m.fontSize >= 16, 'body text is at least 16px');
  for (const sel of ['#name', '#phone', 'button[type=submit]']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.height >= 44, `${sel} is at least 44px tall`);
    assert.ok(box.x >= 0 && box.x + box.width <= m.width, `${sel} is on screen`);
  }
  await page.context().close();
}

export async function run({ newPage, api, baseURL, screenshot }) {
  const slug = 'elm-st-' + Date.now().toString(36);
  const form = await json(await api('/api/v1/forms', {
    method: 'POST',
    body: JSON.stringify({
      slug,
      title: '12 Elm St open house',
      intro: 'Get price changes and viewing times for this home.',
      fields: [{ key: 'email', label: 'Email', required: false }],
      thank_you: 'Thanks for visiting 12 Elm St!',
      channels: [
        { channel: 'whatsapp', consent_text: WA_TEXT },
        { channel: 'sms', consent_text: SMS_TEXT },
      ],
    }),
  }), 201);

  await checkLayout(newPage, `/optin/${slug}`);

  // The whole flow without JavaScript.
  const page = await newPage({ ...PHONE, javaScriptEnabled: false });
  const res = await page.goto(`/optin/${slug}`);
  assert.equal(res.status(), 200);
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await page.locator('script').count(), 0);
  await page.locator('h1', { hasText: '12 Elm St open house' }).waitFor();
  const legend = page.locator('fieldset > legend');
  assert.equal((await legend.textContent()).trim(), 'How may we message you?');
  const wa = page.getByLabel(/WhatsApp/);
  const sms = page.getByLabel(/Text message/);
  assert.equal(await wa.isChecked(), false, 'boxes start unticked');
  assert.equal(await sms.isChecked(), false, 'boxes start unticked');
  // The honeypot is not visible to people.
  const hp = await page.locator('#website').boundingBox();
  assert.ok(!hp || hp.x + hp.width <= 0 || hp.width <= 1, 'the honeypot is off screen');
  await screenshot(page, 'optin-form-phone');

  // A bad number and no tick: errors beside the fields, nothing recorded.
  await page.getByLabel('Your name').fill('Ada Lovelace');
  await page.getByLabel('Mobile number').fill('555 12');
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign up' }).click()]);
  const phoneError = page.locator('#phone-error');
  assert.match(await phoneError.textContent(), /valid mobile number/);
  assert.equal(await page.locator('#phone').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('#phone').getAttribute('aria-describedby'), /\bphone-error\b/);
  assert.match(await page.locator('#channels-error').textContent(), /Tick at least one/);
  assert.match(await page.locator('fieldset').getAttribute('aria-describedby'), /\bchannels-error\b/);
  assert.equal(await page.getByLabel('Your name').inputValue(), 'Ada Lovelace', 'what was typed is kept');
  // The error sits right under its field.
  const input = await page.locator('#phone').boundingBox();
  const err = await phoneError.boundingBox();
  assert.ok(err.y >= input.y + input.height && err.y - (input.y + input.height) < 40, 'the error is beside the phone field');
  await screenshot(page, 'optin-form-errors');
  const none = await api('/api/v1/contacts?phone=%2B4791234567');
  assert.equal(none.status, 404, 'nothing was recorded');

  // Fixed: recorded with the browser's evidence.
  await page.getByLabel('Mobile number').fill('+47 912 34 567');
  await page.getByLabel(/WhatsApp/).check();
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Sign up' }).click()]);
  await page.getByText('Thanks for visiting 12 Elm St!').waitFor();
  assert.match(await page.locator('.status').textContent(), /WhatsApp:\s*you're signed up/);
  await screenshot(page, 'optin-form-thanks');

  const contact = await json(await api('/api/v1/contacts?phone=%2B4791234567'), 200);
  const exported = await json(await api(`/api/v1/contacts/${contact.id}/consents/export?format=json`), 200);
  assert.equal(exported.consents.length, 1);
  const c = exported.consents[0];
  assert.equal(c.channel, 'whatsapp');
  assert.equal(c.status, 'active');
  assert.equal(c.source, 'web_form');
  assert.equal(c.ip, '127.0.0.1');
  assert.equal(c.user_agent, UA);
  assert.equal(c.page_url, `${baseURL}/optin/${slug}`);
  assert.equal(c.form_id, form.id);
  assert.equal(c.consent_text, WA_TEXT);
  assert.equal(c.consent_text_version, 'whatsapp:v1');
  assert.match(c.consent_text_hash, /^[0-9a-f]{64}$/);
  await page.context().close();

  // The QR landing page at the same size, with its WhatsApp link.
  const qr = await json(await api(`/api/v1/forms/${form.id}/qr-codes`, {
    method: 'POST',
    body: JSON.stringify({ source_label: 'open house 12 Elm St' }),
  }), 201);
  await checkLayout(newPage, `/q/${qr.code}`);
  const landing = await newPage({ ...PHONE, javaScriptEnabled: false });
  assert.equal((await landing.goto(`/q/${qr.code}`)).status(), 200);
  const link = landing.getByRole('link', { name: 'Message us on WhatsApp' });
  assert.match(await link.getAttribute('href'), /^https:\/\/wa\.me\/\d+\?text=Hi%21%20I%20scanned%20the%20code%20at%20open%20house%2012%20Elm%20St\.$/);
  await screenshot(landing, 'optin-qr-landing-phone');
  const print = await landing.goto(`/q/${qr.code}/print`);
  assert.equal(print.status(), 200);
  assert.equal(await landing.locator('.print svg').count(), 1);
  await landing.context().close();
  const after = await json(await api(`/api/v1/forms/${form.id}`), 200);
  assert.equal(after.stats.qr_codes[0].scans, 2, 'two landing visits, the print page not counted');
}
