import { h, field } from '../dom.js';
import { api, session, setSession } from '../api.js';

export function title() { return 'Account'; }

export function render(main, ctx) {
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const message = h('p', { class: 'msg', role: 'status', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'pw-title' },
    h('h2', { id: 'pw-title' }, 'Change password'),
    field('Current password', current),
    field('New password', next, 'At least 12 characters. Changing it signs you out everywhere and revokes your API keys.'),
    field('New password again', again),
    message,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.hidden = false;
    message.className = 'msg msg-error';
    message.setAttribute('role', 'alert');
    if (next.value !== again.value) { message.textContent = 'The new passwords differ.'; again.focus(); return; }
    if (next.value.length < 12) { message.textContent = 'The new password needs at least 12 characters.'; next.focus(); return; }
    submit.disabled = true;
    try {
      await api(`/v1/users/${encodeURIComponent(session.user.name)}/password`, {
        method: 'PUT', body: { password: next.value, current_password: current.value },
      });
      setSession(null);
      ctx.announce('Password changed. Please sign in again.');
      ctx.navigate('signin');
    } catch (err) {
      message.textContent = err.message;
      submit.disabled = false;
    }
  });
  const user = session.user;
  main.append(
    h('h1', null, 'Your account'),
    session.mustChangePassword
      ? h('p', { class: 'msg msg-warn', role: 'alert' }, 'Your password must be changed before you can use Vellum.')
      : null,
    h('dl', { class: 'facts card narrow' },
      h('dt', null, 'User'), h('dd', null, user.name),
      h('dt', null, 'Roles'), h('dd', null, user.roles.join(', ') || '—'),
      h('dt', null, 'Groups'), h('dd', null, user.groups.join(', ') || '—')),
    form);
}
