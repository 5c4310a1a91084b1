// The inbox as a team works it. A message that reads as an opt-out in other words
// stopped the person's messages when it came in; the navigation says there is one to
// check, and a reviewer records what it was (their name and the time stay on it). A
// conversation is assigned to someone; a canned reply fills the reply box; a reply
// carries an attachment (a bad link is refused beside its field); the navigation counts
// the conversations that wait for an answer.
import assert from 'node:assert/strict';

const STOPPER = { phone: '+4791238001', name: 'Stina Stopper' };
const ASKER = { phone: '+4791238002', name: 'Arne Asker' };

async function contact(api, person) {
  const r = await api('/api/v1/contacts', { method: 'POST', body: JSON.stringify(person) });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, `contact ${person.phone}: ${r.status} ${text}`);
  return JSON.parse(text);
}

export async function run(ctx) {
  const { api, sandbox, users, newPage, signIn, screenshot, waitFor } = ctx;
  const stopper = await contact(api, STOPPER);
  const asker = await contact(api, ASKER);
  const write = async (from, body) => {
    const r = await sandbox('/sandbox/inbound', { method: 'POST', body: JSON.stringify({ from, body }) });
    assert.ok(r.ok, await r.text());
  };
  await write(STOPPER.phone, 'Please stop texting me about the offers');
  await write(ASKER.phone, 'When do you open on Saturday?');
  await waitFor(async () => (await (await api(`/api/v1/contacts/${asker.id}`)).json()).windows?.whatsapp?.in_window === true, 'the window to open');
  await waitFor(async () => (await (await api(`/api/v1/contacts/${stopper.id}`)).json()).suppressed?.whatsapp === true, 'the revocation to suppress at once');

  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);
  await page.goto('/inbox');
  await page.waitForSelector('#nav-review');
  assert.match(await page.textContent('#nav-review'), /^\d+ to check$/);
  await page.waitForSelector('#nav-unread');
  assert.ok(Number(await page.textContent('#nav-unread')) >= 1, 'unread conversations are counted');

  // --- The review: the reviewer and time stay on the message; the stop stands.
  await page.goto(`/inbox/${stopper.id}`);
  await page.waitForSelector('.review-actions');
  await screenshot(page, 'inbox-review');
  await page.click('.review-actions >> text=Yes, an opt-out');
  await page.waitForSelector('#chat .reviewed');
  assert.match(await page.textContent('#chat .reviewed'), /reviewed by Operator|reviewed by operator@example\.com/);
  assert.match(await page.textContent('#chat .reviewed'), /an opt-out/);
  assert.equal(await page.locator('.review-actions').count(), 0, 'reviewed once');
  assert.equal((await (await api(`/api/v1/contacts/${stopper.id}`)).json()).suppressed.whatsapp, true, 'the stop stands');

  // --- Assign the other conversation to myself.
  await page.goto(`/inbox/${asker.id}`);
  await page.waitForSelector('#assign-form');
  await page.selectOption('#assign-to', users.operator.email);
  await page.click('#assign-form button[type=submit]');
  await page.waitForSelector('#assigned');
  assert.match(await page.textContent('#assigned'), new RegExp(`Assigned to ${users.operator.email.replace('.', '\\.')}`));
  await waitFor(async () => (await page.textContent('#threads')).includes(`→ ${users.operator.email}`), 'the thread to show its assignee');

  // --- A canned reply, kept once, fills the box.
  await page.click('#canned-replies summary');
  await page.fill('#canned-title', 'Saturday hours');
  await page.fill('#canned-body', 'On Saturdays we open at **10:00**.');
  await page.click('text=Keep this reply');
  await page.waitForSelector('#canned_id option:has-text("Saturday hours")', { state: 'attached' });
  await page.selectOption('#canned_id', { label: 'Saturday hours' });
  assert.equal(await page.inputValue('#text'), 'On Saturdays we open at **10:00**.', JSON.stringify(errors));

  // --- An attachment: a bad link is refused beside its field; a good one goes along.
  await page.fill('#media_url', 'http://example.com/hours.pdf');
  await page.click('text=Send reply');
  await page.waitForSelector('#media_url-error:not(:empty)');
  assert.match(await page.textContent('#media_url-error'), /https/);
  await page.fill('#media_url', 'https://example.com/hours.pdf');
  if ((await page.inputValue('#text')) === '') await page.selectOption('#canned_id', { label: 'Saturday hours' });
  await page.click('text=Send reply');
  await page.waitForSelector('#reply-box .notice.ok');
  const sent = await waitFor(async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    return (Array.isArray(all) ? all : all.messages || []).find((m) => m.direction === 'outbound-api' && m.to.endsWith(ASKER.phone));
  }, 'the reply in the sandbox');
  assert.equal(sent.body, 'On Saturdays we open at *10:00*.');
  assert.deepEqual(sent.media_urls, ['https://example.com/hours.pdf']);
  await page.waitForSelector('#chat .attachment');
  assert.match(await page.textContent('#chat .attachment'), /https:\/\/example\.com\/hours\.pdf/);
  await screenshot(page, 'inbox-team');

  // Answered, the conversation no longer waits (the count drops to what else waits).
  await waitFor(async () => {
    await page.goto('/inbox');
    await page.waitForSelector('#threads');
    return (await page.locator(`#threads a[href="/inbox/${asker.id}"] .badge-unread`).count()) === 0;
  }, 'the answered thread to be read');
  assert.deepEqual(errors, []);
}
