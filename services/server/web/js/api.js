// The one door to the server: the `/v1` JSON API with the session cookie (HttpOnly, so this
// code never sees it) and the CSRF token from the session body on every state change.

import { h, dialog } from './dom.js';

export const session = {
  user: null,         // UserView
  csrf: null,         // hex token for X-CSRF-Token
  expiresAt: 0,
  mustChangePassword: false,
  breakGlass: false,  // the deployment's policies offer emergency access to this user
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = (body && body.code) || 'error';
    this.body = body || {};
  }
}

const listeners = { unauthenticated: [] };
export function onUnauthenticated(fn) { listeners.unauthenticated.push(fn); }

function isStateChange(method) {
  return !['GET', 'HEAD'].includes(method.toUpperCase());
}

/** Encodes a reason as UTF-8 bytes in a header-safe (Latin-1) string: fetch sends its bytes. */
function headerBytes(text) {
  const bytes = new TextEncoder().encode(text);
  let out = '';
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

function headersFor(method, extra, breakGlass) {
  const headers = { Accept: 'application/json', ...extra };
  if (isStateChange(method) && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  if (breakGlass) headers['X-Vellum-Break-Glass'] = headerBytes(breakGlass);
  return headers;
}

async function errorFrom(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return new ApiError(response.status, body);
}

/**
 * Whether a refusal may be retried with emergency access. Only where the deployment's policies
 * offer break-glass (the session says so: `break_glass: true`); then a 403 `forbidden`, and a
 * 404 on a document (the server answers an unreadable document like a missing one) may be.
 */
export function breakGlassMaybe(err) {
  if (!session.breakGlass || !(err instanceof ApiError)) return false;
  if (err.body.break_glass_offered === false) return false;
  return (err.status === 403 && err.code === 'forbidden') || err.status === 404;
}

/** Asks for the emergency-access reason; resolves with it or null. */
export function askBreakGlassReason(err) {
  const reason = h('textarea', { id: 'break-glass-reason', rows: 3, maxlength: 500, required: true });
  return dialog({
    title: 'Emergency access (break-glass)',
    body: [
      err && err.status !== 404 ? h('p', null, `The server answered: ${err.message}`) : null,
      h('p', null, 'Where policy allows it you may proceed with emergency access. Your reason, ' +
        'your name and everything you open are recorded in the audit log and reviewed.'),
      h('div', { class: 'field' }, h('label', { for: 'break-glass-reason' }, 'Reason for emergency access'), reason),
    ],
    submitLabel: 'Open with emergency access',
    onSubmit: () => {
      const text = reason.value.trim();
      if (!text) { reason.focus(); return undefined; }
      return text;
    },
  });
}

/**
 * fetch + JSON. Options: {method, body (object → JSON, FormData as is), breakGlass, raw (return
 * the Response), allowBreakGlass (on a 403 `forbidden`, ask for a reason and retry once)}.
 */
export async function api(path, options = {}) {
  const method = options.method || 'GET';
  const extra = {};
  let body = options.body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== 'string') {
    extra['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  }
  const response = await fetch(path, {
    method,
    headers: headersFor(method, extra, options.breakGlass),
    body,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!response.ok) {
    const err = await errorFrom(response);
    if (response.status === 401 && !options.noAuthRedirect) {
      for (const fn of listeners.unauthenticated) fn(err);
    }
    if (options.allowBreakGlass && !options.breakGlass && breakGlassMaybe(err)) {
      const reason = await askBreakGlassReason(err);
      if (reason) return api(path, { ...options, breakGlass: reason });
    }
    throw err;
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  if (type.includes('application/json')) return response.json();
  return response.text();
}

export async function loadSession() {
  try {
    const body = await api('/web/session', { noAuthRedirect: true });
    setSession(body);
    return true;
  } catch (err) {
    if (err.status === 401) { setSession(null); return false; }
    throw err;
  }
}

export function setSession(body) {
  session.user = body ? body.user : null;
  session.csrf = body ? body.csrf : null;
  session.expiresAt = body ? body.expires_at : 0;
  session.mustChangePassword = body ? Boolean(body.must_change_password) : false;
  session.breakGlass = body ? body.break_glass === true : false;
}

export async function signIn(user, password) {
  const body = await api('/web/session', { method: 'POST', body: { user, password }, noAuthRedirect: true });
  setSession(body);
  return body;
}

export async function signOut() {
  try {
    await api('/web/session', { method: 'DELETE', noAuthRedirect: true });
  } finally {
    setSession(null);
  }
}

export function isAdmin() {
  return Boolean(session.user && session.user.roles && session.user.roles.includes('admin'));
}

/**
 * Uploads one file with XHR (fetch has no upload progress). onProgress(fraction) while the bytes
 * go up; resolves with {status, body}; 422 is a quarantine, not a transport failure.
 */
export function uploadFile(file, collection, labels, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append('collection', collection);
    if (labels) form.append('labels', labels);
    form.append('file', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/documents');
    xhr.setRequestHeader('Accept', 'application/json');
    if (session.csrf) xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total, 'sending');
    });
    xhr.upload.addEventListener('load', () => onProgress(1, 'processing'));
    xhr.addEventListener('load', () => {
      let body = xhr.response;
      if (body === null && xhr.responseText) {
        try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      }
      if (xhr.status === 401) for (const fn of listeners.unauthenticated) fn(new ApiError(401, body));
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener('error', () => reject(new Error('The connection failed during the upload.')));
    xhr.addEventListener('abort', () => reject(new Error('The upload was cancelled.')));
    xhr.send(form);
  });
}

/**
 * POSTs and reads a Server-Sent Events stream (fetch + ReadableStream: EventSource cannot POST).
 * onEvent(name, data) for each event, data parsed as JSON.
 */
export async function streamEvents(path, body, onEvent, { signal } = {}) {
  const response = await fetch(path, {
    method: 'POST',
    headers: headersFor('POST', { 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  if (!response.ok) {
    const err = await errorFrom(response);
    if (response.status === 401) for (const fn of listeners.unauthenticated) fn(err);
    throw err;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let eventName = 'message';
  let dataLines = [];
  const dispatch = () => {
    if (dataLines.length) {
      const raw = dataLines.join('\n');
      let data;
      try { data = JSON.parse(raw); } catch { data = raw; }
      onEvent(eventName, data);
    }
    eventName = 'message';
    dataLines = [];
  };
  const line = (text) => {
    if (text === '') { dispatch(); return; }
    if (text.startsWith(':')) return; // a comment (keep-alive)
    const colon = text.indexOf(':');
    const fieldName = colon < 0 ? text : text.slice(0, colon);
    let val = colon < 0 ? '' : text.slice(colon + 1);
    if (val.startsWith(' ')) val = val.slice(1);
    if (fieldName === 'event') eventName = val;
    else if (fieldName === 'data') dataLines.push(val);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (buffer[newline] === '\r' && newline === buffer.length - 1) break;
      line(buffer.slice(0, newline));
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
    }
  }
  for (const rest of buffer.split(/\r\n|\r|\n/)) if (rest !== '') line(rest);
  dispatch();
}
