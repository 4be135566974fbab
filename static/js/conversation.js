/* chatbox browser client, conversation.js: The open conversation: messages in (deduplicated),
 * history, rendering, read marks, sending.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { PAGE_SIZE, keyOfMessage, parseKey, sameId, state } from './state.js';
import { api, errorText, randomId } from './api.js';
import { formatTime, userName } from './format.js';
import { hideTyping, noteDelivered } from './realtime.js';
import { addUser, ensureConversation, renderConversations, renderUsers } from './lists.js';

// ---------------------------------------------------------------- messages in, dedupe, unread

export function receiveMessage(m, channel, backlog) {
  if (!state || !m || m.id === undefined) return;
  noteDelivered(channel, m.id);
  if (m.sender) addUser(m.sender, false);
  acceptMessage(m, { incoming: true, backlog: backlog });
}

// Puts a message everywhere it belongs (sidebar preview, unread count, open view). Safe to call
// any number of times with the same message: everything is keyed by the message id.
export function acceptMessage(m, opts) {
  var key = keyOfMessage(m);
  var conv = ensureConversation(key);
  var mine = sameId(m.sender.id, state.me.id);
  var isNewest = !conv.last_message || Number(m.id) > Number(conv.last_message.id);

  if (m.client_id && state.pending.has(m.client_id) && mine) {
    state.pending.delete(m.client_id);
    $('#message-list .message.pending[data-client-id="' + cssEscape(m.client_id) + '"]').remove();
  }

  var store = state.stores.get(key);
  var fresh = false;
  if (store && !store.messages.has(Number(m.id))) {
    store.messages.set(Number(m.id), m);
    fresh = true;
  }

  if (isNewest) {
    conv.last_message = m;
    conv.rank = ++state.rankCounter;
    var viewing = state.current === key && !document.hidden;
    if (opts.incoming && !mine && !viewing) conv.unread = (conv.unread || 0) + 1;
  }
  if (state.current === key) {
    if (fresh) insertMessageEl(m, { scroll: mine || isNearBottom() });
    if (!mine) {
      hideTyping(m.sender.id);
      scheduleRead(key);
    }
  }
  renderConversations();
}

export function cssEscape(s) {
  return window.CSS && CSS.escape ? CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&');
}

// ---------------------------------------------------------------- opening a conversation

export function openConversation(key) {
  if (!state) return;
  var conv = ensureConversation(key);
  state.current = key;
  conv.unread = 0; // the server is told by markRead, shortly
  $('#empty-state').prop('hidden', true);
  $('#conversation').prop('hidden', false).attr('data-key', key);
  $('#message-list').empty();
  $('#send-error').prop('hidden', true);
  $('#history-start, #load-older').prop('hidden', true);
  hideTyping();
  renderConversationHeader();
  renderConversations();
  renderUsers();

  var store = state.stores.get(key);
  if (!store) {
    store = { messages: new Map(), hasMore: false, loaded: false, loadingOlder: false };
    state.stores.set(key, store);
  }
  // Re-render what is already known (also pending sends), then fetch the newest page again so
  // nothing is missed while the view was closed.
  renderAllMessages(store);
  loadPage(key, null).then(function () {
    if (state && state.current === key) scrollToBottom();
  });
  if (!document.hidden) markRead(key);
  $('#message-input').val('').trigger('focus');
  autosize();
  return conv;
}

export function messagesPath(key) {
  var k = parseKey(key);
  return (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/messages';
}

export function loadPage(key, before) {
  var store = state.stores.get(key);
  var url = messagesPath(key) + '?limit=' + PAGE_SIZE + (before ? '&before=' + encodeURIComponent(before) : '');
  var s = state;
  return api('GET', url).then(function (res) {
    if (!state || state !== s) return;
    var list = res.messages || [];
    var added = [];
    list.forEach(function (m) {
      if (m.sender) addUser(m.sender, false);
      if (!store.messages.has(Number(m.id))) {
        store.messages.set(Number(m.id), m);
        added.push(m);
      }
    });
    // A refresh of the newest page says nothing about older pages already loaded.
    if (before || !store.loaded) store.hasMore = !!res.has_more;
    store.loaded = true;
    var conv = state.convs.get(key);
    if (conv && list.length) {
      var newest = list[list.length - 1];
      if (!conv.last_message || Number(newest.id) > Number(conv.last_message.id)) {
        conv.last_message = newest;
        renderConversations();
      }
    }
    if (state.current === key) {
      if (before) {
        prependMessages(added);
      } else {
        added.forEach(function (m) { insertMessageEl(m, { scroll: false }); });
      }
      updateHistoryTop(store);
      scheduleRead(key);
    }
  }).catch(function (e) {
    if (state && state.current === key && e.status !== 401) {
      if (e.status === 403 || e.status === 404) {
        showSendError('This conversation is not available: ' + errorText(e));
      } else {
        showSendError('Cannot load messages: ' + errorText(e));
      }
    }
  });
}

export function loadOlder() {
  if (!state || !state.current) return;
  var key = state.current;
  var store = state.stores.get(key);
  if (!store || !store.loaded || !store.hasMore || store.loadingOlder) return;
  var ids = Array.from(store.messages.keys());
  if (!ids.length) return;
  var oldest = Math.min.apply(null, ids);
  store.loadingOlder = true;
  $('#load-older').prop('disabled', true).text('Loading…');
  loadPage(key, oldest).then(function () {
    store.loadingOlder = false;
    $('#load-older').prop('disabled', false).text('Load older messages');
    // The view may still be at the top with more to load (short pages): keep going.
    if (state && state.current === key && $('#message-scroll').scrollTop() < 40) {
      setTimeout(loadOlder, 50);
    }
  });
}

export function updateHistoryTop(store) {
  $('#load-older').prop('hidden', !store.hasMore);
  $('#history-start').prop('hidden', store.hasMore || !store.loaded);
}

export function renderConversationHeader() {
  if (!state.current) return;
  var conv = state.convs.get(state.current) || ensureConversation(state.current);
  var k = parseKey(state.current);
  if (k.kind === 'user') {
    var online = state.online.has(k.id);
    $('#conv-title').text(userName(k.id));
    $('#conv-sub').text(online ? 'online' : 'offline').toggleClass('is-online', online);
    $('#group-manage').prop('hidden', true);
    return;
  }
  var g = state.groups.get(k.id);
  $('#conv-title').text(conv.is_all ? 'All' : (g ? g.name : conv.name));
  var n = g && g.member_ids ? g.member_ids.length : null;
  var sub = conv.is_all ? 'Everyone' + (n ? ' · ' + n + ' members' : '') : n ? n + ' members' : 'Group';
  $('#conv-sub').text(sub).removeClass('is-online');
  $('#group-manage').prop('hidden', conv.is_all || (g && g.is_all));
}

// ---------------------------------------------------------------- message rendering

export function messageEl(m) {
  var mine = sameId(m.sender.id, state.me.id);
  var $li = $('<li>', { class: 'message' + (mine ? ' mine' : ' theirs'), 'data-id': m.id });
  var $meta = $('<div>', { class: 'meta' }).appendTo($li);
  $('<span>', { class: 'sender' }).text(mine ? 'You' : m.sender.name).appendTo($meta);
  $('<time>', { class: 'time', datetime: m.created_at, title: new Date(m.created_at).toLocaleString() })
    .text(formatTime(m.created_at)).appendTo($meta);
  $('<div>', { class: 'body' }).text(m.body).appendTo($li);
  return $li;
}

export function renderAllMessages(store) {
  var $list = $('#message-list').empty();
  var ids = Array.from(store.messages.keys()).sort(function (a, b) { return a - b; });
  ids.forEach(function (id) {
    $list.append(messageEl(store.messages.get(id)));
  });
  state.pending.forEach(function (p, clientId) {
    if (p.key === state.current) $list.append(pendingEl(p, clientId));
  });
  updateHistoryTop(store);
  scrollToBottom();
}

export function insertMessageEl(m, opts) {
  var id = Number(m.id);
  var $list = $('#message-list');
  if ($list.children('.message[data-id="' + id + '"]').length) return;
  var $el = messageEl(m);
  var $after = null;
  $list.children('.message:not(.pending)').each(function () {
    if (Number($(this).attr('data-id')) > id) {
      $after = $(this);
      return false;
    }
    return true;
  });
  if ($after) {
    $el.insertBefore($after);
  } else {
    var $firstPending = $list.children('.message.pending').first();
    if ($firstPending.length) $el.insertBefore($firstPending);
    else $list.append($el);
  }
  if (opts && opts.scroll) scrollToBottom();
}

export function prependMessages(list) {
  if (!list.length) return;
  var $scroll = $('#message-scroll');
  var before = $scroll[0].scrollHeight;
  var top = $scroll.scrollTop();
  list.forEach(function (m) { insertMessageEl(m, { scroll: false }); });
  $scroll.scrollTop(top + ($scroll[0].scrollHeight - before));
}

export function pendingEl(p, clientId) {
  var $li = $('<li>', { class: 'message mine pending', 'data-client-id': clientId });
  var $meta = $('<div>', { class: 'meta' }).appendTo($li);
  $('<span>', { class: 'sender' }).text('You').appendTo($meta);
  $('<span>', { class: 'time status' }).text(p.failed ? 'not sent' : 'sending…').appendTo($meta);
  $('<div>', { class: 'body' }).text(p.body).appendTo($li);
  if (p.failed) {
    $li.addClass('failed');
    $('<button>', { type: 'button', class: 'link retry', 'data-client-id': clientId }).text('Retry').appendTo($li);
  }
  return $li;
}

export function isNearBottom() {
  var el = $('#message-scroll')[0];
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

export function scrollToBottom() {
  var el = $('#message-scroll')[0];
  el.scrollTop = el.scrollHeight;
}

export function refreshTimes() {
  $('#message-list time.time').each(function () {
    $(this).text(formatTime($(this).attr('datetime')));
  });
  if (state) renderConversations();
}

// ---------------------------------------------------------------- read marks

// Throttled, not debounced: a stream of messages must not keep postponing the read mark.
export function scheduleRead(key) {
  if (!state || state.current !== key || document.hidden) return;
  if (state.readTimers.has(key)) return;
  var s = state;
  state.readTimers.set(key, setTimeout(function () {
    s.readTimers.delete(key);
    markRead(key);
  }, 250));
}

export function markRead(key) {
  if (!state || state.current !== key) return;
  var conv = state.convs.get(key);
  var store = state.stores.get(key);
  var newest = 0;
  if (store) store.messages.forEach(function (m, id) { if (id > newest) newest = id; });
  if (conv && conv.last_message && Number(conv.last_message.id) > newest) newest = Number(conv.last_message.id);
  if (conv && conv.unread) {
    conv.unread = 0;
    renderConversations();
  }
  if (!newest) return;
  if (conv && conv.readUpTo >= newest) return;
  var k = parseKey(key);
  var path = (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/read';
  api('POST', path, { message_id: newest }).then(function () {
    if (conv && !(conv.readUpTo >= newest)) conv.readUpTo = newest;
  }).catch(function () { /* tried again on the next message or visit */ });
}

// ---------------------------------------------------------------- sending

export function showSendError(text) {
  $('#send-error').text(text || '').prop('hidden', !text);
}

export function sendCurrent() {
  if (!state || !state.current) return;
  var $input = $('#message-input');
  var body = $input.val();
  if (!body.trim()) return;
  $input.val('');
  autosize();
  var clientId = randomId();
  state.pending.set(clientId, { key: state.current, body: body });
  $('#message-list').append(pendingEl(state.pending.get(clientId), clientId));
  scrollToBottom();
  postMessage(clientId);
}

export function postMessage(clientId) {
  var p = state.pending.get(clientId);
  if (!p) return;
  p.failed = false;
  showSendError('');
  var k = parseKey(p.key);
  var path = (k.kind === 'user' ? '/api/users/' : '/api/groups/') + k.id + '/messages';
  var s = state;
  api('POST', path, { body: p.body, client_id: clientId })
    .then(function (res) {
      if (state !== s) return;
      state.pending.delete(clientId);
      $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').remove();
      if (res && res.message) acceptMessage(res.message, { incoming: false });
    })
    .catch(function (e) {
      if (state !== s || !state.pending.has(clientId)) return;
      if (e.status === 0 || e.status >= 500 || e.status === 429) {
        p.failed = true;
        $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').replaceWith(pendingEl(p, clientId));
        showSendError('Not sent: ' + errorText(e) + ' Use Retry to send it again.');
      } else {
        state.pending.delete(clientId);
        $('#message-list .message.pending[data-client-id="' + cssEscape(clientId) + '"]').remove();
        if (state.current === p.key && !$('#message-input').val()) $('#message-input').val(p.body);
        showSendError('Not sent: ' + errorText(e));
      }
    });
}

// The send box grows with its text, up to the CSS max-height.
export function autosize() {
  var el = $('#message-input')[0];
  if (!el) return;
  el.style.height = 'auto';
  el.style.height = el.scrollHeight + 2 + 'px';
}
