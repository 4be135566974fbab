/* chatbox browser client, lists.js: The sidebar: people (with online dots) and conversations (last
 * message, unread badge).
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { authorLabel, convKey, isMine, parseKey, sameId, state } from './state.js';
import { avatarColor, formatTime, initials, userName } from './format.js';
import { renderConversationHeader } from './conversation.js';
import { bustGroupPictures, paintGroupPicture, paintUserAvatar } from './attachments.js';

// ---------------------------------------------------------------- users

export function addUser(u, render) {
  if (!u || u.id === undefined || u.id === null) return;
  var id = Number(u.id);
  var known = state.users.get(id);
  if (known) {
    if (u.name && known.name !== u.name) known.name = u.name;
    if (u.avatar_url !== undefined) known.avatar_url = u.avatar_url;
  } else {
    state.users.set(id, { id: id, name: u.name || 'User #' + id, avatar_url: u.avatar_url || null });
  }
  if (render) renderUsers();
}

export function onUserRegistered(e) {
  if (!state || !e || !e.user) return;
  addUser(e.user, true);
}

/** Someone's avatar changed: their entries in the lists show it (group pictures are refetched). */
export function onUserUpdated(e) {
  if (!state || !e || !e.user) return;
  addUser(e.user, true);
  bustGroupPictures();
  renderConversations();
}

export function renderUsers() {
  var $list = $('#user-list').empty();
  var users = Array.from(state.users.values()).filter(function (u) {
    return !sameId(u.id, state.me.id);
  });
  users.sort(function (a, b) {
    var ao = state.online.has(a.id) ? 0 : 1;
    var bo = state.online.has(b.id) ? 0 : 1;
    if (ao !== bo) return ao - bo;
    return a.name.localeCompare(b.name);
  });
  users.forEach(function (u) {
    var online = state.online.has(u.id);
    var key = convKey('user', u.id);
    var $li = $('<li>', { class: 'user-item', 'data-user-id': u.id, 'data-key': key })
      .toggleClass('active', state.current === key)
      .toggleClass('online', online);
    $('<span>', { class: 'dot', title: online ? 'online' : 'offline' }).appendTo($li);
    paintUserAvatar($('<span>', { class: 'avatar small', 'aria-hidden': 'true' }), u).appendTo($li);
    $('<span>', { class: 'user-name' }).text(u.name).appendTo($li);
    $('<span>', { class: 'sr-only' }).text(online ? ' (online)' : ' (offline)').appendTo($li);
    $list.append($li);
  });
  if (!users.length) {
    $('<li>', { class: 'muted empty' }).text('Nobody else yet.').appendTo($list);
  }
  var others = users.filter(function (u) { return state.online.has(u.id); }).length;
  $('#online-count').text(others + ' online');
  if (state.current && parseKey(state.current).kind === 'user') renderConversationHeader();
}

// ---------------------------------------------------------------- conversations

export function addConversation(c) {
  var key = convKey(c.kind, c.id);
  var conv = state.convs.get(key);
  if (!conv) {
    conv = { key: key, kind: c.kind, id: Number(c.id), name: c.name, is_all: !!c.is_all, last_message: null, unread: 0 };
    state.convs.set(key, conv);
  }
  conv.name = c.name || conv.name;
  conv.is_all = !!c.is_all;
  if (c.last_message !== undefined) conv.last_message = c.last_message;
  if (typeof c.unread === 'number') conv.unread = c.unread;
  conv.rank = ++state.rankCounter;
  if (c.kind === 'user') addUser({ id: c.id, name: c.name }, false);
  return conv;
}

export function ensureConversation(key) {
  var conv = state.convs.get(key);
  if (conv) return conv;
  var k = parseKey(key);
  if (k.kind === 'user') {
    return addConversation({ kind: 'user', id: k.id, name: userName(k.id), is_all: false, last_message: null, unread: 0 });
  }
  var g = state.groups.get(k.id);
  return addConversation({ kind: 'group', id: k.id, name: g ? g.name : 'Group #' + k.id, is_all: g ? !!g.is_all : false, last_message: null, unread: 0 });
}

export function renderConversations() {
  var $list = $('#conversation-list').empty();
  var convs = Array.from(state.convs.values());
  convs.sort(function (a, b) {
    if (a.is_all !== b.is_all) return a.is_all ? -1 : 1;
    return b.rank - a.rank;
  });
  var totalUnread = 0;
  convs.forEach(function (c) {
    totalUnread += c.unread || 0;
    var $li = $('<li>', { class: 'conv-item', 'data-key': c.key, 'data-kind': c.kind, 'data-id': c.id })
      .toggleClass('active', state.current === c.key)
      .toggleClass('has-unread', c.unread > 0)
      .toggleClass('is-all', c.is_all);
    var label = c.is_all ? 'All' : c.kind === 'group' ? '#' : initials(c.name);
    var $avatar = $('<span>', { class: 'avatar' + (c.kind === 'group' ? ' group' : '') })
      .css('background', c.kind === 'user' ? avatarColor(c.id) : '')
      .text(label).appendTo($li);
    if (c.kind === 'user') paintUserAvatar($avatar, state.users.get(c.id) || { id: c.id, name: c.name });
    else paintGroupPicture($avatar, state.groups.get(c.id));
    var $body = $('<span>', { class: 'conv-body' }).appendTo($li);
    var $top = $('<span>', { class: 'conv-top' }).appendTo($body);
    $('<span>', { class: 'conv-name' }).text(c.is_all ? 'All' : c.name).appendTo($top);
    if (c.kind === 'user' && state.online.has(c.id)) {
      $('<span>', { class: 'dot small', title: 'online' }).appendTo($top);
    }
    if (c.last_message) {
      $('<span>', { class: 'conv-time' }).text(formatTime(c.last_message.created_at)).appendTo($top);
    }
    var preview = '';
    if (c.last_message) {
      var who = authorLabel(c.last_message);
      var files = (c.last_message.attachments || []).length;
      var text = c.last_message.body || (files === 1 ? '1 file' : files + ' files');
      preview = (c.kind === 'group' || isMine(c.last_message) ? who + ': ' : '') + text;
    } else {
      preview = c.kind === 'group' ? 'No messages yet' : 'Say hello';
    }
    $('<span>', { class: 'conv-last' }).text(preview.replace(/\s+/g, ' ')).appendTo($body);
    if (c.unread > 0) {
      $('<span>', { class: 'badge', title: c.unread + ' unread' }).text(c.unread > 99 ? '99+' : String(c.unread)).appendTo($li);
    }
    $list.append($li);
  });
  document.title = (totalUnread > 0 ? '(' + totalUnread + ') ' : '') + 'chatbox';
}
