// The share viewer (one share at a time, download, print) and the written-down check.

import { $, $$, say } from './util.js';

function wordList(share) {
  return share.split(' ');
}

function renderWords(ol, share) {
  ol.replaceChildren(
    ...wordList(share).map((w) => {
      const li = document.createElement('li');
      li.textContent = w;
      return li;
    }),
  );
}

function shareText(share, n, total) {
  return [
    `RareGen wallet recovery share ${n} of ${total} (SLIP-39; any 3 of the ${total} shares recover the wallet)`,
    '',
    ...wordList(share).map((w, i) => `${String(i + 1).padStart(2, ' ')}. ${w}`),
    '',
    'Keep each share in a different safe place. Anyone holding 3 shares controls your keys.',
    '',
  ].join('\n');
}

function download(share, n, total) {
  const url = URL.createObjectURL(new Blob([shareText(share, n, total)], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `raregen-share-${n}-of-${total}.txt`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function fillPrintSheet(shares) {
  const sheet = $('#print-shares');
  if (!sheet) return;
  sheet.replaceChildren(
    ...shares.map((share, i) => {
      const section = document.createElement('section');
      section.className = 'print-share';
      const h = document.createElement('h2');
      h.textContent = `RareGen recovery share ${i + 1} of ${shares.length}`;
      const p = document.createElement('p');
      p.textContent = `Any 3 of the ${shares.length} shares recover the wallet. Keep this sheet apart from the others.`;
      const ol = document.createElement('ol');
      ol.className = 'share-words';
      renderWords(ol, share);
      section.append(h, p, ol);
      return section;
    }),
  );
}

/** Show `shares` one at a time; resolves when the user says all are written down. */
export function showShares(shares) {
  let at = 0;
  const seen = new Set();
  const title = $('#share-title');
  const ol = $('#share-words');
  const prev = $('#share-prev');
  const next = $('#share-next');
  const done = $('#shares-done');
  const progress = $('#share-progress');

  function render() {
    const focused = document.activeElement;
    seen.add(at);
    title.textContent = `Share ${at + 1} of ${shares.length}`;
    renderWords(ol, shares[at]);
    prev.disabled = at === 0;
    next.disabled = at === shares.length - 1;
    done.disabled = seen.size < shares.length;
    progress.textContent =
      seen.size < shares.length
        ? `You have seen ${seen.size} of ${shares.length} shares.`
        : `You have seen all ${shares.length} shares.`;
    // A focused button that just became disabled would drop the keyboard focus to the page:
    // at the last share go on to "I have written down all 5 shares", at the first to "Next".
    if (focused === next && next.disabled) (done.disabled ? prev : done).focus();
    if (focused === prev && prev.disabled) next.focus();
  }

  fillPrintSheet(shares);
  return new Promise((resolve) => {
    prev.onclick = () => {
      at = Math.max(0, at - 1);
      render();
    };
    next.onclick = () => {
      at = Math.min(shares.length - 1, at + 1);
      render();
    };
    $('#share-download').onclick = () => download(shares[at], at + 1, shares.length);
    $('#share-print').onclick = () => window.print();
    done.onclick = () => resolve();
    render();
  });
}

function pick(count, from) {
  const pool = Array.from({ length: from }, (_, i) => i);
  const out = [];
  const rnd = crypto.getRandomValues(new Uint32Array(count));
  for (let i = 0; i < count; i++) out.push(pool.splice(rnd[i] % pool.length, 1)[0]);
  return out.sort((a, b) => a - b);
}

/**
 * Ask for two words from each of two randomly chosen shares. Resolves true once the answers
 * match; the "show again" button resolves false.
 */
export function confirmShares(shares) {
  const fields = $('#confirm-fields');
  const status = $('#confirm-status');
  const asked = [];
  for (const s of pick(2, shares.length)) {
    for (const w of pick(2, wordList(shares[s]).length)) asked.push({ s, w });
  }
  fields.replaceChildren(
    ...asked.map(({ s, w }, i) => {
      const label = document.createElement('label');
      label.className = 'field';
      const span = document.createElement('span');
      span.textContent = `Share ${s + 1}, word ${w + 1}`;
      const input = document.createElement('input');
      Object.assign(input, { type: 'text', id: `confirm-${i}`, autocomplete: 'off', spellcheck: false, required: true });
      input.setAttribute('autocapitalize', 'none');
      input.dataset.share = String(s + 1);
      input.dataset.word = String(w + 1);
      label.append(span, input);
      return label;
    }),
  );
  say(status, 'info', '');
  return new Promise((resolve) => {
    $('#confirm-form').onsubmit = (ev) => {
      ev.preventDefault();
      const wrong = asked.filter(({ s, w }, i) => $(`#confirm-${i}`).value.trim().toLowerCase() !== wordList(shares[s])[w]);
      for (const [i] of asked.entries()) $(`#confirm-${i}`).setAttribute('aria-invalid', 'false');
      for (const item of wrong) $(`#confirm-${asked.indexOf(item)}`).setAttribute('aria-invalid', 'true');
      if (wrong.length) {
        say(status, 'error', `${wrong.length === 1 ? 'One word does' : `${wrong.length} words do`} not match. Check what you wrote down, or show the shares again.`);
        return;
      }
      resolve(true);
    };
    $('#confirm-back').onclick = () => resolve(false);
  });
}

/** Remove every share from the page (after confirmation). */
export function clearShares() {
  for (const el of $$('#share-words, #print-shares, #confirm-fields')) el.replaceChildren();
}
