// A file attached to an inbox reply, as an operator does it: upload it in the reply box
// (a plain form, so it works without JavaScript), and the reply carries its link; the
// provider (the sandbox here) gets that link, and the link serves the very bytes, as what
// they are. A file that is not what WhatsApp takes (HTML named .png) is refused beside the
// field, and nothing is sent.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791230188', name: 'Ada Attach' };
export async function run(ctx) {
  const { api, sandbox, users, newPage, signIn, screenshot, waitFor, baseURL } = ctx;
  const r = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name }),
  });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, `contact: ${r.status} ${text}`);
  const contact = JSON.parse(text);
  const hello = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: PERSON.phone, body: 'Could you send me the floor plan?' }),
  });
  assert.ok(hello.ok);
  await waitFor(async () => {
    const c = await (await api(`/api/v1/contacts/${contact.id}`)).json();
    return c.windows?.whatsapp?.in_window === true;
  }, 'the inbound message to open the window');
  const ours = async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    return (Array.isArray(all) ? all : all.messages || [])
      .filter((m) => m.direction === 'outbound-api' && m.to.endsWith(PERSON.phone));
  };

  const page = await newPage({ viewport: { width: 1280, height: 1100 } });
  // A real PNG to attach, made here: a screenshot of a blank page.
  const PNG = await page.screenshot({ type: 'png', clip: { x: 0, y: 0, width: 4, height: 4 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#window-state.open');

  // HTML dressed as a PNG: refused by what it is.
  await page.setInputFiles('#attachment-file', {
    name: 'plan.png', mimeType: 'image/png', buffer: Buffer.from('<html><script>alert(1)</script></html>'),
  });
  await page.click('#upload-attachment');
  await page.waitForSelector('#attachment-error');
  assert.match(await page.textContent('#attachment-error'), /not recognised|WhatsApp takes/);
  assert.equal(await page.inputValue('#media_url'), '');

  // A real PNG: kept, and its link is in the reply form.
  await page.setInputFiles('#attachment-file', { name: 'Floor plan.png', mimeType: 'image/png', buffer: PNG });
  await page.click('#upload-attachment');
  await page.waitForSelector('#attachment-ready');
  const link = await page.inputValue('#media_url');
  assert.match(link, /\/media\/[0-9a-f]{48}\/Floor-plan\.png$/);
  await screenshot(page, 'inbox-attachment');
  await page.fill('#text', 'Here is the floor plan.');
  await page.click('text=Send reply');
  await page.waitForSelector('#reply-box .notice.ok');

  const sent = await waitFor(async () => {
    const got = await ours();
    return got.length >= 1 ? got[0] : null;
  }, 'the reply in the sandbox');
  assert.equal(sent.body, 'Here is the floor plan.');
  assert.deepEqual(sent.media_urls, [link]);
  // The link serves the bytes, as a PNG that cannot be read as a page.
  const res = await fetch(link);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(PNG));
  // A made-up token is not a file.
  const missing = await fetch(`${baseURL}/media/${'0'.repeat(48)}/x.png`);
  assert.equal(missing.status, 404);
  // The upload route is the console's: without a session it sends to sign-in; with the
  // session but without its CSRF token (another site's form) it is refused. Nothing kept.
  const form = () => {
    const f = new FormData();
    f.append('csrf', 'not-the-token');
    f.append('file', new Blob([PNG], { type: 'image/png' }), 'x.png');
    return f;
  };
  const anon = await fetch(`${baseURL}/inbox/${contact.id}/attachment`, { method: 'POST', body: form(), redirect: 'manual' });
  assert.equal(anon.status, 303);
  assert.match(anon.headers.get('location'), /^\/login/);
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(`${baseURL}/inbox/${contact.id}/attachment`, {
    method: 'POST', body: form(), redirect: 'manual', headers: { cookie, origin: baseURL },
  });
  assert.equal(forged.status, 303);
  assert.match(decodeURIComponent(forged.headers.get('location')), /attachment_error=.*(expired|token)/);
  // The conversation shows the attachment.
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#chat .attachment');
  assert.deepEqual(errors, []);
}
