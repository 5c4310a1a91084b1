// A long reply from the inbox, as an operator writes it: in Markdown, longer than one
// WhatsApp message at Twilio (1,600 characters). The preview shows it part by part as it
// will go (WhatsApp formatting, each part within the limit); sent, it reaches the sandbox
// as that many messages, in order, each as the preview showed it; the conversation shows
// the parts numbered.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791230101', name: 'Per Parts' };

function longMarkdown() {
  let text = '**Your plan for the week**\n\n';
  for (let i = 1; text.length < 3400; i++) {
    text += `Day ${i}: we meet at _10:00_ and go through step ${i} together. `;
    if (i % 4 === 0) text += '\n\n';
  }
  return text.trim();
}

export async function run(ctx) {
  const { api, sandbox, users, newPage, signIn, screenshot, waitFor } = ctx;
  const r = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name }),
  });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, `contact: ${r.status} ${text}`);
  const contact = JSON.parse(text);
  // They write first: the 24-hour window opens.
  const hello = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: PERSON.phone, body: 'Can you send me the whole plan?' }),
  });
  assert.ok(hello.ok);
  await waitFor(async () => {
    const c = await (await api(`/api/v1/contacts/${contact.id}`)).json();
    return c.windows?.whatsapp?.in_window === true;
  }, 'the inbound message to open the window');

  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#window-state.open');
  const markdown = longMarkdown();
  await page.fill('#text', markdown);
  await page.click('#preview-reply');
  await page.waitForSelector('#reply-preview');
  assert.match(await page.textContent('#reply-preview h3'), /Goes as 3 messages/);
  const previewed = await page.$$eval('#reply-preview .preview-text', (els) => els.map((e) => e.textContent));
  assert.equal(previewed.length, 3);
  assert.ok(previewed[0].startsWith('*Your plan for the week*\n\nDay 1: we meet at _10:00_'), previewed[0]);
  for (const p of previewed) assert.ok(p.length <= 1600, `a part of ${p.length} characters`);
  const metas = await page.$$eval('#reply-preview .preview-part .small', (els) => els.map((e) => e.textContent));
  assert.match(metas[0], /^Part 1 of 3 · \d+ of 1600 characters$/);
  await screenshot(page, 'inbox-preview');

  await page.click('text=Send reply');
  await page.waitForSelector('#reply-box .notice.ok');
  assert.match(await page.textContent('#reply-box .notice.ok'), /in 3 parts/);

  // The sandbox got three messages, in order, each as previewed.
  const got = await waitFor(async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    const ours = (Array.isArray(all) ? all : all.messages || [])
      .filter((m) => m.direction === 'outbound-api' && m.to.endsWith(PERSON.phone));
    return ours.length >= 3 ? ours : null;
  }, 'three parts in the sandbox');
  assert.equal(got.length, 3);
  assert.deepEqual(got.map((m) => m.body), previewed);

  // The conversation shows the parts numbered, in order.
  await page.waitForFunction(() => document.querySelectorAll('#chat li.chat-out[data-part]').length === 3);
  const labels = await page.$$eval('#chat li.chat-out[data-part] .part-label', (els) => els.map((e) => e.textContent));
  assert.deepEqual(labels, ['part 1 of 3', 'part 2 of 3', 'part 3 of 3']);
  await screenshot(page, 'inbox-parts');
  assert.deepEqual(errors, []);
}
