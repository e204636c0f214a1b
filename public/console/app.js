// The web console: token prompt, routes (#/jobs, #/jobs/:id, #/services, #/services/:name), errors.
import { ApiError, getServices, session } from './api.js';
import { h } from './dom.js';
import { jobView, jobsView } from './jobs.js';
import { serviceView, servicesView } from './services.js';

const main = document.getElementById('main');
const alertBox = document.getElementById('alert');
const nav = document.getElementById('nav');
const signOut = document.getElementById('signout');

/** the view on screen: its stop() ends its live updates */
let current = null;
let alertSource = null;

const routes = [
  [/^#\/jobs\/(\d+)$/, (m) => jobView(main, ctx, m[1]), 'Job'],
  [/^#\/jobs(?:\?(.*))?$/, (m) => jobsView(main, ctx, new URLSearchParams(m[1] ?? '')), 'Jobs'],
  [/^#\/services\/([^/?]+)$/, (m) => serviceView(main, ctx, decodeURIComponent(m[1])), 'Service'],
  [/^#\/services$/, () => servicesView(main, ctx), 'Services'],
];

function showError(message, source) {
  alertSource = source;
  alertBox.replaceChildren(
    h('p', {}, message),
    h('button', { type: 'button', class: 'link', onclick: () => clearError() }, 'Dismiss'),
  );
  alertBox.hidden = false;
}

function clearError(source) {
  if (source && alertSource !== source) return;
  alertSource = null;
  alertBox.hidden = true;
  alertBox.replaceChildren();
}

/** what every view gets: navigation, live updates, and one way to handle API errors */
const ctx = {
  lastError: null,
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  /**
   * An API error: a 401, or a 403 of a read that any useful token passes, sends back to the token
   * prompt; anything else is shown as the API's message (never a stack trace).
   */
  fail(err, { forbiddenToPrompt = true, source = 'read' } = {}) {
    ctx.lastError = err;
    if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && forbiddenToPrompt))) {
      session.clear();
      showPrompt(`The token was refused: ${err.message}`);
      return;
    }
    showError(err instanceof ApiError ? `${err.message} (${err.code})` : `The console failed: ${err.message}`, source);
  },
  /** a read for a view: its answer, or undefined after the error was handled; a later good read clears a read's error */
  async read(fn, opts) {
    try {
      const r = await fn();
      ctx.lastError = null;
      if (opts?.source !== 'action') clearError('read');
      return r;
    } catch (err) {
      ctx.fail(err, opts);
      return undefined;
    }
  },
  /** an action (cancel…): a 403 is the API's message, not a sign-out; its error stays until dismissed */
  act(fn) {
    return ctx.read(fn, { forbiddenToPrompt: false, source: 'action' });
  },
  /**
   * Runs fn now and every `ms` while the tab is visible, until it returns false or the view
   * changes. Answers the view's handle.
   */
  every(ms, fn) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      timer = null;
      if (stopped) return;
      let again = true;
      if (document.visibilityState !== 'hidden') {
        try {
          again = await fn();
        } catch (err) {
          ctx.fail(err);
        }
      }
      if (!stopped && again !== false) timer = setTimeout(tick, ms);
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible' && timer !== null) (clearTimeout(timer), tick());
    };
    document.addEventListener('visibilitychange', onVisible);
    tick();
    return {
      stop() {
        stopped = true;
        if (timer !== null) clearTimeout(timer);
        document.removeEventListener('visibilitychange', onVisible);
      },
    };
  },
};

function stopView() {
  current?.stop();
  current = null;
}

function showPrompt(message) {
  stopView();
  nav.hidden = true;
  signOut.hidden = true;
  document.getElementById('dialog').close();
  document.title = 'Sign in · swarm-utils';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'token-hint' });
  const error = h('p', { class: 'error', id: 'signin-error', role: 'alert' }, message ?? '');
  if (message) input.setAttribute('aria-invalid', 'true');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin',
      onsubmit: async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        button.disabled = true;
        error.textContent = '';
        session.set(token);
        try {
          await getServices();
        } catch (err) {
          session.clear();
          button.disabled = false;
          input.setAttribute('aria-invalid', 'true');
          error.textContent = err instanceof ApiError && err.isAuth ? `The token was refused: ${err.message}` : err.message;
          input.focus();
          input.select();
          return;
        }
        route();
      },
    },
    h('h1', {}, 'Sign in'),
    h(
      'p',
      { id: 'token-hint' },
      'An admin token, or a token named by a service label (swarm-utils.backup.token, …). It is kept in this browser tab only and sent to the API as a Bearer header.',
    ),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    error,
    h('div', { class: 'buttons' }, button),
  );
  main.replaceChildren(form);
  input.focus();
}

function route() {
  if (!session.token()) return showPrompt();
  // a hash that is not a route (the skip link's #main) keeps the view
  if (current && !location.hash.startsWith('#/')) return;
  const hash = location.hash.startsWith('#/') ? location.hash : '#/jobs';
  stopView();
  clearError();
  nav.hidden = false;
  signOut.hidden = false;
  const found = routes.find(([re]) => re.test(hash));
  for (const a of nav.querySelectorAll('a')) {
    const here = hash.startsWith(a.getAttribute('href'));
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!found) {
    main.replaceChildren(h('h1', { tabindex: -1 }, 'Not found'), h('p', {}, h('a', { href: '#/jobs' }, 'Go to the jobs')));
  } else {
    const [re, make, title] = found;
    document.title = `${title} · swarm-utils`;
    current = make(re.exec(hash));
  }
  // screen readers and keyboards start at the new view's heading
  main.querySelector('h1')?.focus();
}

// a closed dialog leaves nothing behind (no stale fields, no second accessible name)
document.getElementById('dialog').addEventListener('close', (e) => {
  e.target.replaceChildren();
  e.target.removeAttribute('aria-labelledby');
});
signOut.addEventListener('click', () => {
  session.clear();
  showPrompt();
});
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  (main.querySelector('h1') ?? main).focus();
});
window.addEventListener('hashchange', route);
route();
