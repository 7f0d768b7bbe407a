// Attendance page and certificate: the owner's time zone for the CSV and a print
// button (local times: common.js) (no inline script: CSP script-src 'self').

const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

document.querySelectorAll('.tz-name').forEach((node) => { node.textContent = ` (${tz})`; });
document.querySelectorAll('a.csv').forEach((link) => {
  const url = new URL(link.href, location.href);
  url.searchParams.set('tz', tz);
  link.href = url.toString();
});
document.querySelectorAll('.print-button').forEach((button) => {
  button.addEventListener('click', () => window.print());
});
