// What the browser tests share: collecting a page's script errors.

/// The page's uncaught errors and console errors (a resource that failed to
/// load is the test's business, not a script error), collected as they come.
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('Failed to load resource')) errors.push(m.text());
  });
  return errors;
}
