/* chatbox browser client, main.js: Entry point: wires the page's controls to the modules and
 * starts.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { state } from './state.js';
import { api, errorText } from './api.js';
import { onLogin, onLogout, onLogoutEverywhere, onRegister, selectTab, showAuth, startChat } from './auth.js';
import { sendTyping } from './realtime.js';
import {
  askDelete, autosize, loadOlder, openConversation, postMessage, scheduleRead, sendCurrent, startEdit,
} from './conversation.js';
import { closeModal, muteAsker, openManageGroup, openNewGroup } from './groups.js';
import { initAttachments } from './attachments.js';

// ---------------------------------------------------------------- wiring

$(function () {
  $('.tab').on('click', function () { selectTab($(this).attr('data-tab')); });
  $('#login-form').on('submit', onLogin);
  $('#register-form').on('submit', onRegister);
  $('#logout').on('click', onLogout);
  $('#logout-everywhere').on('click', onLogoutEverywhere);

  $('#conversation-list').on('click', '.conv-item', function () {
    openConversation($(this).attr('data-key'));
  });
  $('#user-list').on('click', '.user-item', function () {
    openConversation($(this).attr('data-key'));
  });
  $('#new-group').on('click', openNewGroup);
  $('#group-manage').on('click', openManageGroup);
  $('#modal-close').on('click', closeModal);
  $('#modal').on('click', function (ev) {
    if (ev.target === this) closeModal();
  });
  $(document).on('keydown', function (ev) {
    if (ev.key === 'Escape' && !$('#modal').prop('hidden')) closeModal();
  });

  $('#send-form').on('submit', function (ev) {
    ev.preventDefault();
    sendCurrent();
  });
  $('#message-input').on('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendCurrent();
    }
  }).on('input', function () {
    autosize();
    if ($(this).val().trim()) sendTyping();
  });
  $('#message-list').on('click', '.retry', function () {
    postMessage($(this).attr('data-client-id'));
  }).on('click', '.msg-edit', function () {
    startEdit($(this).attr('data-id'));
  }).on('click', '.msg-delete', function () {
    askDelete($(this).attr('data-id'));
  }).on('click', '.msg-mute', function () {
    muteAsker($(this).attr('data-group-id'), $(this).attr('data-pseudonym'));
  });

  initAttachments();

  $('#load-older').on('click', loadOlder);
  $('#message-scroll').on('scroll', function () {
    if (this.scrollTop < 40) loadOlder();
  });

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && state && state.current) scheduleRead(state.current);
  });

  api('GET', '/api/me')
    .then(function (res) {
      startChat(res.user);
    })
    .catch(function (e) {
      showAuth('login', e.status === 401 ? '' : errorText(e));
    });
});
