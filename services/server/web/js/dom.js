// DOM helpers. Everything the app shows is built with createElement and textContent: no
// document or user text ever goes through innerHTML (the CSP forbids inline script anyway, but
// a document that contains markup must show as text).

/**
 * h('div', {class: 'x', onclick: fn, 'aria-label': '…'}, child, 'text', [more children])
 * Attributes: `class`, `for`, `dataset` (object), `on<event>` (listener), booleans (true sets
 * the attribute, false/null/undefined leaves it out), anything else via setAttribute.
 * Never pass `style`: the CSP forbids style attributes; use classes.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'value' && 'value' in el) el.value = value;
      else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'multiple') {
        el[key] = Boolean(value);
      } else if (key === 'style') throw new Error('style attributes are forbidden by the CSP');
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let idCounter = 0;
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled form field: label + control (+ optional hint), with ids wired. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, labelText), control];
  if (hint) {
    const hintEl = h('p', { class: 'hint', id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
    parts.push(hintEl);
  }
  return h('div', { class: 'field' }, parts);
}

/** A status/error message area (role=status or alert). */
export function messageBox(kind, text) {
  return h('p', { class: `msg msg-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

export function formatTime(value) {
  if (value === undefined || value === null || value === '') return '';
  let date;
  if (typeof value === 'number') date = new Date(value * 1000);
  else date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A table from column specs [{label, cell: row => Node|string}] and rows. */
export function table(caption, columns, rows, emptyText = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, emptyText);
  return h('div', { class: 'table-wrap' },
    h('table', null,
      h('caption', { class: caption.visible ? '' : 'visually-hidden' }, caption.text || caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', null, rows.map((row) => h('tr', null, columns.map((c) => h('td', null, c.cell(row))))))));
}

/**
 * A modal dialog (<dialog> with showModal: focus is trapped and Escape closes it). Resolves
 * with what `onSubmit` returns, or null when cancelled.
 */
export function dialog({ title, body, submitLabel = 'OK', cancelLabel = 'Cancel', danger = false, onSubmit }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const titleId = uid('dlg');
    const error = h('p', { class: 'msg msg-error', role: 'alert', hidden: true });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: titleId }, title),
      body,
      error,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, submitLabel),
        h('button', { type: 'button', class: 'secondary', onclick: () => finish(null) }, cancelLabel)));
    const dlg = h('dialog', { 'aria-labelledby': titleId }, form);
    let done = false;
    function finish(value) {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      if (previous && previous.focus) previous.focus();
      resolve(value);
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const value = onSubmit ? await onSubmit(form) : true;
        if (value === undefined) return; // keep open (validation failed)
        finish(value);
      } catch (err) {
        error.hidden = false;
        error.textContent = err.message || String(err);
      }
    });
    dlg.addEventListener('cancel', (event) => { event.preventDefault(); finish(null); });
    document.body.appendChild(dlg);
    dlg.showModal();
    const first = dlg.querySelector('input, textarea, select');
    (first || dlg.querySelector('button')).focus();
  });
}

export function confirmDialog(title, text, submitLabel = 'Delete') {
  return dialog({ title, body: h('p', null, text), submitLabel, danger: true });
}
