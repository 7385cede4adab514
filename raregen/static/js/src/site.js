// Loaded on every page. Job panels: htmx polls them ("every 2s") while the job is not
// terminal; the server drops the trigger at a terminal state. When a poll fails (404, 5xx),
// htmx does not swap, so the panel is replaced here by a static copy with a notice: the old
// element leaves the document and htmx's poll timer stops with it. Also: copy buttons.

function stopPanel(panel, status) {
  const copy = panel.cloneNode(true);
  for (const attr of ['hx-get', 'hx-trigger', 'hx-swap']) copy.removeAttribute(attr);
  copy.classList.add('job-panel-stopped');
  const note = document.createElement('p');
  note.className = 'notice notice-warn';
  note.setAttribute('role', 'status');
  note.textContent =
    status === 404
      ? 'This job is not known to the server; status updates stopped.'
      : `Status updates stopped: the server answered ${status || 'nothing'}. Reload the page to try again.`;
  copy.append(note);
  panel.replaceWith(copy);
}

// Copy buttons: <button data-copy="text">; the button says "Copied" for a moment.
document.addEventListener('click', async (ev) => {
  const button = ev.target.closest?.('button[data-copy]');
  if (!button) return;
  const label = button.dataset.label ?? button.textContent;
  button.dataset.label = label;
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => {
    button.textContent = label;
  }, 2000);
});

document.addEventListener('htmx:responseError', (ev) => {
  const panel = ev.detail?.elt?.closest?.('.job-panel');
  if (panel) stopPanel(panel, ev.detail.xhr?.status ?? 0);
});
