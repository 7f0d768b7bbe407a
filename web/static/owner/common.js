// Owner pages: copy buttons and confirmations. No inline script (CSP: script-src 'self').

async function copyFrom(selector, button) {
  const field = document.querySelector(selector);
  if (!field) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    field.select();
    copied = document.execCommand && document.execCommand('copy');
  }
  const label = button.textContent;
  button.textContent = copied ? 'Copied' : 'Select and copy';
  button.dataset.copied = copied ? 'yes' : 'no';
  setTimeout(() => { button.textContent = label; }, 2000);
}

document.querySelectorAll('[data-copy]').forEach((button) => {
  button.addEventListener('click', () => copyFrom(button.dataset.copy, button));
});

document.querySelectorAll('form[data-confirm]').forEach((form) => {
  form.addEventListener('submit', (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

// Times from the server are epoch seconds: shown in the owner's own time zone.
document.querySelectorAll('.ts[data-ts]').forEach((node) => {
  const date = new Date(Number(node.dataset.ts) * 1000);
  node.textContent = date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
  node.setAttribute('datetime', date.toISOString());
});
