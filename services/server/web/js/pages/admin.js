import { h, clear, field, formatTime, table, dialog } from '../dom.js';
import { api, session } from '../api.js';

const sections = [
  ['admin/users', 'Users'],
  ['admin/keys', 'API keys'],
  ['admin/audit', 'Audit log'],
  ['admin/quarantine', 'Quarantine'],
  ['admin/status', 'Status'],
];

function frame(main, active, heading) {
  main.append(
    h('h1', null, heading),
    h('nav', { class: 'subnav', 'aria-label': 'Administration' },
      h('ul', null, sections.map(([path, label]) => h('li', null,
        h('a', { href: `#/${path}`, 'aria-current': path === active ? 'page' : null }, label))))));
  const body = h('div', { class: 'admin-body' });
  main.appendChild(body);
  return body;
}

function errorBox(err) { return h('p', { class: 'msg msg-error', role: 'alert' }, err.message); }

const splitNames = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

export const users = {
  title: () => 'Users',
  async render(main, ctx) {
    const body = frame(main, 'admin/users', 'Users');
    const listBox = h('section', { 'aria-labelledby': 'users-title' }, h('h2', { id: 'users-title', tabindex: '-1' }, 'Accounts'));
    const name = h('input', { type: 'text', required: true, pattern: '[a-z0-9][a-z0-9._@\\-]{0,63}', autocomplete: 'off' });
    const password = h('input', { type: 'password', required: true, minlength: 12, autocomplete: 'new-password' });
    const roles = h('input', { type: 'text', autocomplete: 'off' });
    const groups = h('input', { type: 'text', autocomplete: 'off' });
    const msg = h('p', { class: 'msg', role: 'status', hidden: true });
    const form = h('form', { class: 'card', 'aria-labelledby': 'add-user-title' },
      h('h2', { id: 'add-user-title' }, 'Add a user'),
      h('div', { class: 'row' },
        field('User name', name, 'Lowercase letters, digits, . _ - @'),
        field('Initial password', password, 'At least 12 characters; the user must change it at first sign-in.'),
        field('Roles', roles, 'Comma-separated, e.g. attorney'),
        field('Groups', groups, 'Comma-separated, e.g. matter-1234')),
      msg,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add user')));
    body.append(form, listBox);
    const tableBox = h('div');
    listBox.appendChild(tableBox);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      msg.hidden = false;
      try {
        await api('/v1/users', { method: 'POST', body: { name: name.value.trim(), password: password.value, roles: splitNames(roles.value), groups: splitNames(groups.value) } });
        msg.className = 'msg msg-ok';
        msg.textContent = `Added ${name.value.trim()}.`;
        form.reset();
        load();
      } catch (err) {
        msg.className = 'msg msg-error';
        msg.textContent = err.message;
      }
    });
    async function load() {
      try {
        const list = await api('/v1/users');
        clear(tableBox).appendChild(table('Accounts', [
          { label: 'User', cell: (u) => u.name },
          { label: 'Roles', cell: (u) => u.roles.join(', ') || '—' },
          { label: 'Groups', cell: (u) => u.groups.join(', ') || '—' },
          { label: 'State', cell: (u) => (u.disabled ? h('span', { class: 'status status-failed' }, 'disabled') : u.must_change_password ? 'must change password' : h('span', { class: 'status status-ready' }, 'active')) },
          { label: 'Created', cell: (u) => formatTime(u.created_at) },
          {
            label: 'Actions',
            cell: (u) => (u.name === session.user.name ? '—' : h('button', {
              type: 'button', class: `small ${u.disabled ? 'secondary' : 'danger'}`, 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.name}`,
              onclick: async (event) => {
                try {
                  await api(`/v1/users/${encodeURIComponent(u.name)}/disabled`, { method: 'PUT', body: { disabled: !u.disabled } });
                  ctx.announce(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`);
                  load();
                } catch (err) { event.target.after(errorBox(err)); }
              },
            }, u.disabled ? 'Enable' : 'Disable')),
          },
        ], list));
      } catch (err) { clear(tableBox).appendChild(errorBox(err)); }
    }
    await load();
  },
};

export const keys = {
  title: () => 'API keys',
  async render(main, ctx) {
    const body = frame(main, 'admin/keys', 'API keys');
    const name = h('input', { type: 'text', required: true, maxlength: 50, autocomplete: 'off' });
    const user = h('input', { type: 'text', autocomplete: 'off', placeholder: session.user.name });
    const days = h('input', { type: 'number', min: 1, max: 365, value: 90 });
    const reason = h('input', { type: 'text', maxlength: 500, autocomplete: 'off' });
    const created = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card', 'aria-labelledby': 'new-key-title' },
      h('h2', { id: 'new-key-title' }, 'Create a key'),
      h('div', { class: 'row' },
        field('What it is for', name, 'E.g. scanner-3 or open-webui'),
        field('For user (optional)', user, 'Leave empty for your own key.'),
        field('Days valid', days),
        field('Reason (for another user)', reason, 'Required when making a key for someone else; recorded in the audit log.')),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create key')),
      created);
    const tableBox = h('div');
    body.append(form, h('section', { 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'Keys'), tableBox));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clear(created);
      const request = { name: name.value.trim(), expires_in_days: Number(days.value) || undefined };
      if (user.value.trim() && user.value.trim() !== session.user.name) {
        request.user = user.value.trim();
        request.reason = reason.value.trim() || undefined;
      }
      try {
        const result = await api('/v1/keys', { method: 'POST', body: request });
        const keyField = h('input', { type: 'text', readonly: true, value: result.key, class: 'secret', id: 'new-key-value' });
        created.append(h('div', { class: 'msg msg-ok' },
          h('p', null, h('strong', null, 'Copy this key now: it is shown only once.')),
          h('label', { for: 'new-key-value' }, `Key ${result.info.id} for ${result.info.user}`), keyField,
          h('button', { type: 'button', class: 'small secondary', onclick: () => { keyField.select(); navigator.clipboard?.writeText(result.key).catch(() => {}); ctx.announce('Key copied.'); } }, 'Copy')));
        keyField.focus();
        keyField.select();
        form.querySelector('button[type=submit]').blur();
        name.value = '';
        load();
      } catch (err) { created.appendChild(errorBox(err)); }
    });
    async function load() {
      try {
        const list = await api('/v1/keys?all=true');
        clear(tableBox).appendChild(table('API keys', [
          { label: 'Key', cell: (k) => h('code', null, k.id) },
          { label: 'User', cell: (k) => k.user },
          { label: 'For', cell: (k) => k.name },
          { label: 'Created', cell: (k) => formatTime(k.created_at) },
          { label: 'Expires', cell: (k) => formatTime(k.expires_at) },
          { label: 'State', cell: (k) => (k.revoked_at ? h('span', { class: 'status status-failed' }, `revoked ${formatTime(k.revoked_at)}`) : h('span', { class: 'status status-ready' }, 'active')) },
          {
            label: 'Actions',
            cell: (k) => (k.revoked_at ? '—' : h('button', {
              type: 'button', class: 'small danger', 'aria-label': `Revoke key ${k.id}`,
              onclick: async (event) => {
                const ok = await dialog({ title: 'Revoke this key?', body: h('p', null, `Key ${k.id} (${k.name}) of ${k.user} stops working at once.`), submitLabel: 'Revoke', danger: true });
                if (!ok) return;
                try {
                  await api(`/v1/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
                  ctx.announce(`Key ${k.id} revoked.`);
                  load();
                } catch (err) { event.target.after(errorBox(err)); }
              },
            }, 'Revoke')),
          },
        ], list, 'No API keys.'));
      } catch (err) { clear(tableBox).appendChild(errorBox(err)); }
    }
    await load();
  },
};

export const audit = {
  title: () => 'Audit log',
  async render(main, ctx) {
    const body = frame(main, 'admin/audit', 'Audit log');
    const q = ctx.query;
    const user = h('input', { type: 'text', value: q.get('user') || '', autocomplete: 'off' });
    const action = h('input', { type: 'text', value: q.get('action') || '', autocomplete: 'off', list: 'audit-actions' });
    const documentId = h('input', { type: 'text', value: q.get('document') || '', autocomplete: 'off' });
    const since = h('input', { type: 'datetime-local', value: q.get('since') || '' });
    const until = h('input', { type: 'datetime-local', value: q.get('until') || '' });
    const actions = h('datalist', { id: 'audit-actions' },
      ['search', 'ask', 'summarize', 'read', 'upload', 'delete', 'login', 'logout', 'authenticate', 'request', 'audit.read', 'user.change'].map((a) => h('option', { value: a })));
    const verifyBox = h('div', { id: 'audit-verify', 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Verifying the log…'));
    const form = h('form', { class: 'card', role: 'search', 'aria-label': 'Filter the audit log' },
      h('div', { class: 'row' },
        field('User', user), field('Action', action), field('Document id', documentId),
        field('From', since), field('Until', until)),
      actions,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter')));
    const results = h('section', { 'aria-labelledby': 'audit-records-title' });
    body.append(verifyBox, form, results);

    api('/v1/audit/verify').then((v) => {
      clear(verifyBox).appendChild(h('p', { class: `msg ${v.ok ? 'msg-ok' : 'msg-error'}`, role: v.ok ? 'status' : 'alert' },
        h('strong', null, v.ok ? 'Verified: ' : 'Verification FAILED: '),
        `${v.records} records`,
        v.first_time ? ` from ${formatTime(v.first_time)} to ${formatTime(v.last_time)}` : '',
        v.unsigned_tail ? `; ${v.unsigned_tail} newest not yet under a signed checkpoint` : '',
        `. ${v.message || ''}`));
    }).catch((err) => clear(verifyBox).appendChild(errorBox(err)));

    const toIso = (local) => (local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, 'Z') : '');
    async function load(focus) {
      const params = new URLSearchParams();
      if (user.value.trim()) params.set('user', user.value.trim());
      if (action.value.trim()) params.set('action', action.value.trim());
      if (documentId.value.trim()) params.set('document', documentId.value.trim());
      if (since.value) params.set('since', toIso(since.value));
      if (until.value) params.set('until', toIso(until.value));
      params.set('limit', '200');
      clear(results).appendChild(h('p', { class: 'loading' }, 'Loading…'));
      try {
        const data = await api(`/v1/audit?${params}`);
        const heading = h('h2', { id: 'audit-records-title', tabindex: '-1' }, `Records (${data.records.length}${data.truncated ? ', more exist: narrow the filters' : ''})`);
        clear(results).append(heading, table('Audit records', [
          { label: '#', cell: (r) => String(r.seq) },
          { label: 'Time', cell: (r) => formatTime(r.time) },
          { label: 'User', cell: (r) => r.principal || '—' },
          { label: 'Action', cell: (r) => r.action },
          { label: 'Resource', cell: (r) => h('span', { class: 'resource' }, r.resource || '') },
          { label: 'Outcome', cell: (r) => outcomeCell(r) },
          { label: 'Reads', cell: (r) => String(r.reads ?? '') },
          { label: 'Address', cell: (r) => r.address || '' },
          { label: 'Detail', cell: (r) => detailText(r.detail) },
        ], data.records, 'No records match.'));
        if (focus) heading.focus();
      } catch (err) { clear(results).appendChild(errorBox(err)); }
    }
    form.addEventListener('submit', (event) => { event.preventDefault(); load(true); });
    await load(false);
  },
};

function outcomeCell(r) {
  const ok = r.outcome === 'ok';
  const parts = [h('span', { class: `status ${ok ? 'status-ready' : 'status-failed'}` }, r.outcome || '')];
  if (r.decision && typeof r.decision === 'object') {
    const policies = (r.decision.policies || []).join(', ');
    parts.push(h('span', { class: 'meta' }, ` ${r.decision.allowed ? 'permitted' : 'forbidden'}${policies ? ` by ${policies}` : ''}`));
  }
  return h('span', null, parts);
}

function detailText(detail) {
  if (!detail || typeof detail !== 'object') return '';
  const parts = Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const text = parts.join('; ');
  return h('span', { class: 'detail', title: text }, text.length > 160 ? `${text.slice(0, 160)}…` : text);
}

export const quarantine = {
  title: () => 'Quarantine',
  async render(main) {
    const body = frame(main, 'admin/quarantine', 'Quarantine');
    body.appendChild(h('p', null, 'Files that could not be indexed, and why. Fix the file (or use OCR for scans) and upload it again.'));
    try {
      const list = await api('/v1/quarantine');
      body.appendChild(table('Quarantined files', [
        { label: 'Collection', cell: (r) => r.collection },
        { label: 'File', cell: (r) => h('span', { class: 'file-name' }, r.file_name) },
        { label: 'Kind', cell: (r) => r.kind },
        { label: 'Reason', cell: (r) => r.reason },
        { label: 'When', cell: (r) => formatTime(r.quarantined_at) },
      ], list, 'No quarantined files.'));
    } catch (err) { body.appendChild(errorBox(err)); }
  },
};

export const status = {
  title: () => 'Status',
  async render(main) {
    const body = frame(main, 'admin/status', 'Status');
    try {
      const s = await api('/v1/status');
      const figure = (label, value) => h('div', { class: 'figure' }, h('dt', null, label), h('dd', null, String(value)));
      body.append(
        h('p', { class: `msg ${s.ready ? 'msg-ok' : 'msg-error'}`, role: 'status' }, s.ready ? 'Ready: every check passes.' : 'Not ready: see the checks below.'),
        h('dl', { class: 'figures' },
          [
            ['Documents', s.documents], ['Chunks', s.chunks],
            ['Ingests in progress', s.ingests_in_progress ?? s.uploads_in_progress],
            ['Answers in progress', s.answers_in_progress ?? s.answers_running],
            ['Answers waiting', s.answers_waiting],
          ].filter(([, v]) => v !== undefined && v !== null).map(([label, v]) => figure(label, v))),
        h('h2', null, 'Checks'),
        table('Readiness checks', [
          { label: 'Check', cell: (c) => c.name },
          { label: 'Result', cell: (c) => h('span', { class: `status ${c.ok ? 'status-ready' : 'status-failed'}` }, c.ok ? 'ok' : 'failing') },
          { label: 'Detail', cell: (c) => c.detail },
        ], s.checks || []));
    } catch (err) { body.appendChild(errorBox(err)); }
  },
};

