/* chatbox browser client, conversation.js: The open conversation: messages in (deduplicated),
 * history, rendering, read marks, sending.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { PAGE_SIZE, authorLabel, convKey, isMine, keyOfMessage, parseKey, sameId, state } from './state.js';
import { api, errorText, randomId } from './api.js';
import { flash, formatTime, userName } from './format.js';
import { hideTyping, noteDelivered } from './realtime.js';
import { addUser, ensureConversation, renderConversations, renderUsers } from './lists.js';
import { attachmentsEl, clearTray, hasFiles, linkify, restoreFiles, takeFiles, uploading } from './attachments.js';

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
  var mine = isMine(m);
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
    if (fresh) renderSeen();
    if (!mine) {
      if (m.sender) hideTyping(m.sender.id);
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
  clearTray();
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
    if (!before) setReadMarks(key, res.read_marks || []);
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
      renderSeen();
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
    $('#ask-anon-label').prop('hidden', true);
    $('#ask-anon').prop('checked', false);
    return;
  }
  var g = state.groups.get(k.id);
  $('#conv-title').text(conv.is_all ? 'All' : (g ? g.name : conv.name));
  var n = g && g.member_ids ? g.member_ids.length : null;
  var sub = conv.is_all ? 'Everyone' + (n ? ' · ' + n + ' members' : '') : n ? n + ' members' : 'Group';
  $('#conv-sub').text(sub).removeClass('is-online');
  $('#group-manage').prop('hidden', conv.is_all || (g && g.is_all));
  var questions = !!(g && g.questions && !g.is_all);
  $('#ask-anon-label').prop('hidden', !questions);
  if (!questions) $('#ask-anon').prop('checked', false);
}

// ---------------------------------------------------------------- message rendering

export function messageEl(m) {
  var mine = isMine(m);
  var $li = $('<li>', { class: 'message' + (mine ? ' mine' : ' theirs'), 'data-id': m.id })
    .toggleClass('anonymous', !!m.pseudonym);
  var $meta = $('<div>', { class: 'meta' }).appendTo($li);
  $('<span>', { class: 'sender' }).text(authorLabel(m)).appendTo($meta);
  $('<time>', { class: 'time', datetime: m.created_at, title: new Date(m.created_at).toLocaleString() })
    .text(formatTime(m.created_at)).appendTo($meta);
  if (m.edited_at) {
    $('<span>', { class: 'edited', title: 'edited ' + new Date(m.edited_at).toLocaleString() }).text('edited').appendTo($meta);
  }
  if (m.body) bodyEl(m).appendTo($li);
  var $files = attachmentsEl(m);
  if ($files) $files.appendTo($li);
  var $actions = $('<div>', { class: 'msg-actions' });
  if (mine) {
    $('<button>', { type: 'button', class: 'link msg-edit', 'data-id': m.id }).text('Edit').appendTo($actions);
    $('<button>', { type: 'button', class: 'link danger msg-delete', 'data-id': m.id }).text('Delete').appendTo($actions);
  }
  var g = m.group_id ? state.groups.get(Number(m.group_id)) : null;
  if (!mine && m.pseudonym && g && sameId(g.owner_id, state.me.id)) {
    $('<button>', { type: 'button', class: 'link danger msg-mute', 'data-group-id': m.group_id, 'data-pseudonym': m.pseudonym })
      .text('Mute this asker').appendTo($actions);
  }
  if ($actions.children().length) $actions.appendTo($li);
  return $li;
}

// The body as text, with the members it mentions highlighted: every piece goes in through .text().
export function bodyEl(m) {
  var $body = $('<div>', { class: 'body' });
  var names = (m.mentions || []).map(function (x) { return { id: x.id, at: '@' + String(x.name).toLowerCase() }; });
  names.sort(function (a, b) { return b.at.length - a.at.length; });
  var text = String(m.body);
  var lower = text.toLowerCase();
  var plain = '';
  var i = 0;
  while (i < text.length) {
    var hit = null;
    if (text[i] === '@') {
      hit = names.find(function (n) { return lower.startsWith(n.at, i); }) || null;
    }
    if (!hit) {
      plain += text[i];
      i += 1;
      continue;
    }
    if (plain) linkify($body, plain);
    plain = '';
    $('<span>', { class: 'mention' }).toggleClass('me', sameId(hit.id, state.me.id))
      .text(text.slice(i, i + hit.at.length)).appendTo($body);
    i += hit.at.length;
  }
  if (plain) linkify($body, plain);
  return $body;
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
  renderSeen();
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
  $('<span>', { class: 'sender' }).text(p.anonymous ? 'You (anonymously)' : 'You').appendTo($meta);
  $('<span>', { class: 'time status' }).text(p.failed ? 'not sent' : 'sending…').appendTo($meta);
  $('<div>', { class: 'body' }).text(p.body).appendTo($li);
  if (p.attachments && p.attachments.length) {
    $('<div>', { class: 'attachments muted' }).text(p.attachments.map(function (a) { return a.name; }).join(', ')).appendTo($li);
  }
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
  if (uploading()) {
    showSendError('Wait until the files are uploaded.');
    return;
  }
  if (!body.trim() && !hasFiles()) return;
  $input.val('');
  autosize();
  var clientId = randomId();
  var anonymous = !$('#ask-anon-label').prop('hidden') && $('#ask-anon').prop('checked');
  state.pending.set(clientId, { key: state.current, body: body, anonymous: anonymous, attachments: takeFiles() });
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
  var ids = (p.attachments || []).map(function (a) { return a.id; });
  var send = { body: p.body, client_id: clientId, attachment_ids: ids };
  if (p.anonymous) send.anonymous = true;
  api('POST', path, send)
    .then(function (res) {
      if (state !== s) return;
      if (p.anonymous && res && res.message) {
        // The live event may have come first, shown as anyone's question: now it is known as mine.
        state.myAnonymous.add(Number(res.message.id));
        var $shown = $('#message-list .message[data-id="' + Number(res.message.id) + '"]');
        if ($shown.length) $shown.replaceWith(messageEl(res.message));
      }
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
        if (state.current === p.key) restoreFiles(p.attachments);
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

// ---------------------------------------------------------------- "seen"

// Read marks of the others in conversation `key`, from a history answer: [{user_id, name, up_to}].
export function setReadMarks(key, marks) {
  var map = new Map();
  marks.forEach(function (r) { map.set(Number(r.user_id), { name: r.name, up_to: Number(r.up_to) }); });
  state.readMarks.set(key, map);
}

// App\Events\MessagesRead {reader_id, up_to, user_id | group_id}: someone else read further.
export function onMessagesRead(e) {
  if (!state || !e || sameId(e.reader_id, state.me.id)) return;
  var key = e.group_id !== undefined ? convKey('group', e.group_id) : convKey('user', e.reader_id);
  var map = state.readMarks.get(key);
  if (!map) {
    map = new Map();
    state.readMarks.set(key, map);
  }
  var old = map.get(Number(e.reader_id));
  if (old && old.up_to >= Number(e.up_to)) return;
  map.set(Number(e.reader_id), { name: userName(e.reader_id), up_to: Number(e.up_to) });
  if (state.current === key) renderSeen();
}

// One-to-one: "Seen" under the newest of my messages the partner has read. Groups: "Seen by N"
// under my newest message, with the names on hover.
export function renderSeen() {
  $('#message-list .seen').remove();
  if (!state || !state.current) return;
  var key = state.current;
  var store = state.stores.get(key);
  var marks = state.readMarks.get(key);
  if (!store || !marks || !marks.size) return;
  var mineIds = [];
  store.messages.forEach(function (m, id) { if (isMine(m)) mineIds.push(id); });
  if (!mineIds.length) return;
  mineIds.sort(function (a, b) { return a - b; });
  var target, text, title;
  if (parseKey(key).kind === 'user') {
    var upTo = 0;
    marks.forEach(function (r) { if (r.up_to > upTo) upTo = r.up_to; });
    var read = mineIds.filter(function (id) { return id <= upTo; });
    if (!read.length) return;
    target = read[read.length - 1];
    text = 'Seen';
    title = '';
  } else {
    target = mineIds[mineIds.length - 1];
    var names = [];
    marks.forEach(function (r) { if (r.up_to >= target) names.push(r.name); });
    if (!names.length) return;
    names.sort();
    text = 'Seen by ' + names.length;
    title = names.join(', ');
  }
  var $el = $('#message-list .message[data-id="' + target + '"]');
  $('<div>', { class: 'seen', title: title }).text(text).appendTo($el);
}

// ---------------------------------------------------------------- edits, deletions, mentions

function forEachStore(fn) {
  state.stores.forEach(function (store, key) { fn(store, key); });
}

// App\Events\MessageUpdated {message}: the message as it is now, wherever it is shown.
export function onMessageUpdated(e) {
  if (!state || !e || !e.message) return;
  var m = e.message;
  var id = Number(m.id);
  var key = keyOfMessage(m);
  var store = state.stores.get(key);
  if (store && store.messages.has(id)) store.messages.set(id, m);
  var conv = state.convs.get(key);
  if (conv && conv.last_message && Number(conv.last_message.id) === id) conv.last_message = m;
  var $old = $('#message-list .message[data-id="' + id + '"]');
  if ($old.length && !$old.find('.edit-box').length) {
    $old.replaceWith(messageEl(m));
    renderSeen();
  }
  renderConversations();
}

// App\Events\MessageDeleted {message_id, user_id | group_id}: gone from every view.
export function onMessageDeleted(e) {
  if (!state || !e) return;
  var id = Number(e.message_id);
  forEachStore(function (store, key) {
    if (!store.messages.delete(id)) return;
    var conv = state.convs.get(key);
    if (conv && conv.last_message && Number(conv.last_message.id) === id) {
      var newest = null;
      store.messages.forEach(function (m, mid) { if (!newest || mid > Number(newest.id)) newest = m; });
      conv.last_message = newest;
    }
  });
  state.convs.forEach(function (conv) {
    if (conv.last_message && Number(conv.last_message.id) === id) conv.last_message = null;
  });
  $('#message-list .message[data-id="' + id + '"]').remove();
  renderSeen();
  renderConversations();
}

// App\Events\Mentioned {from, pseudonym?, group, message_id}: someone named me in a group.
export function onMentioned(e) {
  if (!state || !e || !e.group) return;
  var who = e.from ? e.from.name : 'Anonymous ' + (e.pseudonym || '');
  var key = convKey('group', e.group.id);
  var conv = state.convs.get(key);
  var where = conv && conv.is_all ? 'All' : e.group.name || (conv && conv.name) || 'a group';
  flash(who + ' mentioned you in ' + where + '.');
  $('#flash').attr('data-mention', e.message_id);
}

function findMessage(id) {
  var found = null;
  forEachStore(function (store) { if (!found && store.messages.has(id)) found = store.messages.get(id); });
  return found;
}

// Inline editing: the body becomes a text box with Save and Cancel.
export function startEdit(id) {
  id = Number(id);
  var m = findMessage(id);
  var $li = $('#message-list .message[data-id="' + id + '"]');
  if (!m || !$li.length || $li.find('.edit-box').length) return;
  var $box = $('<form>', { class: 'edit-box' });
  $('<textarea>', { class: 'edit-input', maxlength: 4000, 'aria-label': 'Edit message' }).val(m.body).appendTo($box);
  var $row = $('<div>', { class: 'msg-actions' }).appendTo($box);
  $('<button>', { type: 'submit', class: 'small edit-save' }).text('Save').appendTo($row);
  $('<button>', { type: 'button', class: 'link edit-cancel' }).text('Cancel').appendTo($row);
  $('<span>', { class: 'form-error edit-error', hidden: true }).appendTo($row);
  $li.children('.body, .msg-actions').prop('hidden', true);
  $box.insertAfter($li.children('.body'));
  $box.find('textarea').trigger('focus');
  $box.on('submit', function (ev) {
    ev.preventDefault();
    var body = $box.find('textarea').val();
    if (!body.trim()) return;
    $box.find('.edit-save').prop('disabled', true);
    api('PATCH', '/api/messages/' + id, { body: body }).then(function (res) {
      $box.remove();
      onMessageUpdated(res);
    }).catch(function (err) {
      $box.find('.edit-save').prop('disabled', false);
      $box.find('.edit-error').text(errorText(err)).prop('hidden', false);
    });
  });
  $box.find('.edit-cancel').on('click', function () {
    $box.remove();
    $li.children('.body, .msg-actions').prop('hidden', false);
  });
}

// Deleting asks first, in the page.
export function askDelete(id) {
  id = Number(id);
  var $li = $('#message-list .message[data-id="' + id + '"]');
  if (!$li.length || $li.find('.confirm').length) return;
  var $c = $('<div>', { class: 'confirm', role: 'alert' }).text('Delete this message for everyone? ');
  $('<button>', { type: 'button', class: 'small danger confirm-delete' }).text('Delete').appendTo($c);
  $('<button>', { type: 'button', class: 'link confirm-cancel' }).text('Cancel').appendTo($c);
  $li.children('.msg-actions').prop('hidden', true);
  $c.appendTo($li);
  $c.find('.confirm-cancel').on('click', function () {
    $c.remove();
    $li.children('.msg-actions').prop('hidden', false);
  });
  $c.find('.confirm-delete').on('click', function () {
    $(this).prop('disabled', true);
    api('DELETE', '/api/messages/' + id).then(function () {
      onMessageDeleted({ message_id: id });
    }).catch(function (err) {
      $c.remove();
      $li.children('.msg-actions').prop('hidden', false);
      showSendError('Not deleted: ' + errorText(err));
    });
  });
}
