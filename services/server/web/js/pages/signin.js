import { h, field } from '../dom.js';
import { signIn, session } from '../api.js';

export function title() { return 'Sign in'; }

export function render(main, ctx) {
  if (session.user) { ctx.afterSignIn(); return; }
  const user = h('input', { type: 'text', name: 'user', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'msg msg-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    field('User name', user),
    field('Password', password),
    error,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      await signIn(user.value.trim(), password.value);
      password.value = '';
      ctx.announce('Signed in.');
      ctx.afterSignIn();
    } catch (err) {
      error.hidden = false;
      error.textContent = err.status === 401 ? 'Wrong user name or password.'
        : err.status === 429 ? `Too many attempts: ${err.message}` : err.message;
      submit.disabled = false;
      password.focus();
    }
  });
  main.append(
    h('h1', { id: 'signin-title' }, 'Sign in to Vellum'),
    h('p', { class: 'lead' }, 'Private search and answers over your organisation\'s documents.'),
    form);
  user.focus();
}
