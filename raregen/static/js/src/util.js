// Small helpers shared by the wallet pages: encodings, the JSON API client, DOM bits.

import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

export { bytesToHex, hexToBytes };

export const utf8 = (text) => new TextEncoder().encode(text);

export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function fromBase64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** An error answered by the server: {"error": {"code", "message", "field"}} plus the status. */
export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? '';
}

/**
 * Call the wallet's JSON API. Same-origin cookies; the CSRF token on every non-GET.
 * Resolves with the parsed body (null for an empty one); throws ApiError otherwise.
 */
export async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Check your connection and try again.');
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = data?.error ?? {};
    const fallback = resp.status === 401 ? 'Please sign in again.' : `The server answered ${resp.status}.`;
    throw new ApiError(resp.status, err.code ?? `HTTP_${resp.status}`, err.message ?? fallback, err.field ?? null);
  }
  return data;
}

/** GET /wallet/api/me; a 401 sends the browser to the sign-in page and never resolves. */
export async function me() {
  try {
    return await api('GET', '/wallet/api/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname)}`);
      return new Promise(() => {});
    }
    throw err;
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Show a message in a status element: kind is "info", "ok", "warn" or "error". */
export function say(el, kind, message) {
  if (!el) return;
  el.hidden = !message;
  el.className = `notice notice-${kind}`;
  el.textContent = message;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

/** Write an e-mail address into `el` with line-break opportunities (<wbr>) after each "."
 * and before the "@", so a long address wraps between its parts on a narrow screen. */
export function showEmail(el, email) {
  const parts = String(email).split(/(?<=\.)|(?=@)/);
  el.replaceChildren();
  parts.forEach((part, i) => {
    if (i) el.append(document.createElement('wbr'));
    el.append(part);
  });
}

/** Show exactly one of the page's steps ([data-step]) and focus its heading. */
export function showStep(name) {
  for (const el of $$('[data-step]')) el.hidden = el.dataset.step !== name;
  const heading = $(`[data-step="${name}"] h2`);
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/** Run `fn` with `button` disabled and labelled `busyLabel`; restores it afterwards. */
export async function busy(button, busyLabel, fn) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyLabel;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.textContent = label;
    button.removeAttribute('aria-busy');
  }
}

export function shortKey(hex) {
  return hex ? `${hex.slice(0, 10)}…${hex.slice(-6)}` : '';
}
