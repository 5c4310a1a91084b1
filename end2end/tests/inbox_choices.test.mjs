// Quick-reply buttons from the inbox, as an operator sends them: a reply with choices goes
// to WhatsApp as buttons (at Twilio, a Content API resource sent by its ContentSid); the
// conversation shows the choices; the person's tap on "Stop" opts them out (whatever id the
// button carried), and the next reply is refused `suppressed`. Bad choices are refused
// beside their field and nothing is sent.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791230177', name: 'Bea Buttons' };

export async function run(ctx) {
  const { api, sandbox, users, newPage, signIn, screenshot, waitFor } = ctx;
  const r = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name }),
  });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, `contact: ${r.status} ${text}`);
  const contact = JSON.parse(text);
  const hello = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: PERSON.phone, body: 'Can I move my appointment?' }),
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

  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.operator);
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#window-state.open');

  // Four buttons: refused beside the field, nothing sent.
  await page.fill('#text', 'Which day suits you?');
  await page.click('details.choices summary');
  await page.fill('#choices', 'Monday\nTuesday\nWednesday\nThursday');
  await page.click('text=Send reply');
  await page.waitForSelector('#choices-error');
  assert.match(await page.textContent('#choices-error'), /1 to 3/);
  assert.equal((await ours()).length, 0);

  // Three: sent as buttons.
  await page.fill('#choices', 'Monday\nTuesday\nStop');
  await screenshot(page, 'inbox-choices');
  await page.click('text=Send reply');
  await page.waitForSelector('#reply-box .notice.ok');
  const sent = await waitFor(async () => {
    const got = await ours();
    return got.length >= 1 ? got[0] : null;
  }, 'the buttons in the sandbox');
  assert.equal(sent.body, 'Which day suits you?');
  assert.ok(sent.content_sid && sent.content_sid.startsWith('HX'), JSON.stringify(sent));
  const contents = await (await sandbox('/sandbox/templates')).json();
  const list = Array.isArray(contents) ? contents : contents.templates || [];
  const resource = list.find((t) => t.sid === sent.content_sid);
  assert.ok(resource, 'the Content resource the message names');
  assert.deepEqual(
    resource.types['twilio/quick-reply'].actions.map((a) => a.title),
    ['Monday', 'Tuesday', 'Stop'],
  );
  // The conversation shows what the person saw.
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#chat li.chat-out');
  const shown = await page.textContent('#chat li.chat-out:last-of-type');
  assert.match(shown, /1\. Monday/);
  assert.match(shown, /3\. Stop/);
  await screenshot(page, 'inbox-choices-sent');

  // The person taps "Stop": the button's id is choice-3, its title Stop. They are opted out.
  const tap = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: PERSON.phone, body: 'Stop', button_text: 'Stop', button_payload: 'choice-3' }),
  });
  assert.ok(tap.ok);
  await waitFor(async () => {
    const c = await (await api(`/api/v1/contacts/${contact.id}`)).json();
    return c.suppressed?.whatsapp ? c : null;
  }, 'the tap to suppress the contact');
  await page.goto(`/inbox/${contact.id}`);
  await page.waitForSelector('#window-state');
  await page.fill('#text', 'Are you sure?');
  await page.click('details.choices summary');
  await page.fill('#choices', 'Yes\nNo');
  await page.click('text=Send reply');
  await page.waitForFunction(() => /suppressed/.test(document.querySelector('#reply-box')?.textContent || ''));
  // Only the STOP's own confirmation went after the tap; no second set of buttons.
  const after = await ours();
  assert.equal(after.filter((m) => m.content_sid).length, 1, 'no buttons after the STOP');
  assert.equal(after.length, 2, JSON.stringify(after.map((m) => m.body)));
  assert.deepEqual(errors, []);
}
