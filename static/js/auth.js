/* chatbox browser client, auth.js: The sign-in and sign-up forms, and starting / stopping the chat
 * for a signed-in user.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { ACK_EVERY_MS, clearState, resetState, state } from './state.js';
import { api, errorText } from './api.js';
import { flash } from './format.js';
import { connectRealtime, flushAck, setConnState } from './realtime.js';
import { addConversation, addUser, renderConversations, renderUsers } from './lists.js';
import { refreshTimes } from './conversation.js';
import { closeModal } from './groups.js';

// ---------------------------------------------------------------- views

export function showView(name) {
  $('#boot').prop('hidden', true);
  $('#auth-view').prop('hidden', name !== 'auth');
  $('#chat-view').prop('hidden', name !== 'chat');
}

export function showAuth(tab, notice) {
  showView('auth');
  selectTab(tab || 'login');
  $('#auth-notice').text(notice || '').prop('hidden', !notice);
  document.title = 'chatbox';
  offerOidc();
  if (oidcError) {
    showFormError('#login-error', oidcError);
    oidcError = '';
  }
}

// ---------------------------------------------------------------- sign-in with the provider

// What the page says for each `oidc_error` the server's callback redirects with.
var OIDC_ERRORS = {
  expired: 'That sign-in took too long or was started in another window. Please try again.',
  denied: 'Sign-in was cancelled.',
  refused: 'The provider did not accept this sign-in. Please try again.',
  invalid: 'The provider\'s answer could not be verified. Please try again.',
  unavailable: 'The provider cannot be reached right now. Please try again in a minute.',
};

// The failed provider sign-in this page was sent back with, taken out of the address bar so a
// reload does not show it again.
var oidcError = (function () {
  var params = new URLSearchParams(window.location.search);
  var code = params.get('oidc_error');
  if (code === null) return '';
  params.delete('oidc_error');
  var rest = params.toString();
  window.history.replaceState(null, '', window.location.pathname + (rest ? '?' + rest : '') + window.location.hash);
  return OIDC_ERRORS[code] || 'Signing in did not work. Please try again.';
})();

var oidcOffered = null;

// Shows "Sign in with …" when the server has a provider configured (asked once per page).
function offerOidc() {
  if (oidcOffered) return;
  oidcOffered = api('GET', '/api/config')
    .then(function (config) {
      var oidc = config && config.oidc;
      if (!oidc || !oidc.enabled) return;
      $('#oidc-button').text('Sign in with ' + oidc.name).attr('href', oidc.login_url);
      $('#oidc-signin').prop('hidden', false);
    })
    .catch(function () {
      oidcOffered = null;
    });
}

export function selectTab(tab) {
  $('.tab').removeClass('active').attr('aria-selected', 'false');
  $('#tab-' + tab).addClass('active').attr('aria-selected', 'true');
  $('#login-form').prop('hidden', tab !== 'login');
  $('#register-form').prop('hidden', tab !== 'register');
  $('#login-error, #register-error').prop('hidden', true).text('');
  var first = tab === 'login' ? '#login-email' : '#register-name';
  $(first).trigger('focus');
}

export function showFormError(selector, text) {
  $(selector).text(text).prop('hidden', !text);
}

// ---------------------------------------------------------------- auth

export function onLogin(ev) {
  ev.preventDefault();
  var email = $('#login-email').val().trim();
  var password = $('#login-password').val();
  if (!email || !password) {
    showFormError('#login-error', 'Enter your e-mail and password.');
    return;
  }
  showFormError('#login-error', '');
  var $btn = $('#login-submit').prop('disabled', true);
  api('POST', '/api/login', { email: email, password: password })
    .then(function (res) {
      $('#login-password').val('');
      startChat(res.user);
    })
    .catch(function (e) {
      if (e.code === 'invalid_credentials') {
        showFormError('#login-error', 'Wrong e-mail or password.');
      } else {
        showFormError('#login-error', errorText(e));
      }
    })
    .then(function () {
      $btn.prop('disabled', false);
    });
}

export function onRegister(ev) {
  ev.preventDefault();
  var body = {
    name: $('#register-name').val().trim(),
    email: $('#register-email').val().trim(),
    password: $('#register-password').val(),
  };
  showFormError('#register-error', '');
  var $btn = $('#register-submit').prop('disabled', true);
  api('POST', '/api/register', body)
    .then(function (res) {
      $('#register-password').val('');
      startChat(res.user);
    })
    .catch(function (e) {
      showFormError('#register-error', errorText(e));
    })
    .then(function () {
      $btn.prop('disabled', false);
    });
}

export function onLogout() {
  var wasMe = state && state.me;
  stopChat();
  api('POST', '/api/logout').catch(function () {}).then(function () {
    if (wasMe) showAuth('login', 'You are signed out.');
  });
}

export function onLogoutEverywhere() {
  var wasMe = state && state.me;
  stopChat();
  api('POST', '/api/logout/everywhere').catch(function () {}).then(function () {
    if (wasMe) showAuth('login', 'You are signed out on every device.');
  });
}

export function sessionEnded() {
  if (!state || !state.me) return;
  stopChat();
  showAuth('login', 'Your session has ended. Please sign in again.');
}

// ---------------------------------------------------------------- start / stop

export function startChat(user) {
  stopChat();
  resetState();
  state.me = user;
  var epoch = state.epoch = Date.now();
  $('#me-name').text(user.name);
  $('#admin-link').prop('hidden', !user.is_admin);
  $('#conversation-list, #user-list, #message-list').empty();
  $('#conversation').prop('hidden', true);
  $('#empty-state').prop('hidden', false);
  setConnState('connecting');
  showView('chat');

  Promise.all([api('GET', '/api/users'), api('GET', '/api/conversations'), api('GET', '/api/groups')])
    .then(function (r) {
      if (!state || state.epoch !== epoch) return;
      (r[0].users || []).forEach(function (u) {
        addUser(u, false);
        if (u.online) state.online.add(Number(u.id));
      });
      (r[2].groups || []).forEach(function (g) {
        state.groups.set(Number(g.id), g);
      });
      var list = r[1].conversations || [];
      // The server lists them newest activity first; keep that order (rank: higher = newer).
      for (var i = list.length - 1; i >= 0; i--) addConversation(list[i]);
      renderUsers();
      renderConversations();
      connectRealtime();
    })
    .catch(function (e) {
      if (e.status !== 401) flash('Cannot load your conversations: ' + errorText(e));
    });

  state.timers.push(setInterval(flushAck, ACK_EVERY_MS));
  state.timers.push(setInterval(refreshTimes, 60000));
}

export function stopChat() {
  if (!state) return;
  state.timers.forEach(clearInterval);
  state.readTimers.forEach(clearTimeout);
  clearTimeout(state.typingTimer);
  if (state.echo) {
    try {
      state.echo.disconnect();
    } catch (e) {
      /* already closed */
    }
  }
  clearState();
  closeModal();
  $('#conversation-list, #user-list, #message-list').empty();
}
