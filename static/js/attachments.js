/* chatbox browser client, attachments.js: Files and pictures: the composer's attach button and
 * drag and drop with upload progress, attachments shown in messages (thumbnails that open the
 * full picture, other files as downloads with name and size), links in message text, avatars and
 * group pictures in lists, and the profile menu that sets or removes one's avatar.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html(). Links get an href only for http and https.
 */
import { state } from './state.js';
import { api, errorText } from './api.js';
import { avatarColor, flash, initials } from './format.js';
import { renderConversations, renderUsers } from './lists.js';

// ---------------------------------------------------------------- limits

/** As the server: at most 10 attachments per message. */
export const MAX_FILES_PER_MESSAGE = 10;

// ---------------------------------------------------------------- the composer's tray

// Files chosen for the message being written, in order: {local, name, size, progress, attachment?,
// failed?, xhr?}. `attachment` is the server's answer once uploaded.
let tray = [];
let nextLocal = 1;

/** Uploads every file of `files` (a FileList or array), showing progress in the tray. */
export function addFiles(files) {
  if (!state || !state.current) return;
  Array.prototype.forEach.call(files || [], function (file) {
    if (tray.length >= MAX_FILES_PER_MESSAGE) {
      flash('At most ' + MAX_FILES_PER_MESSAGE + ' files per message.');
      return;
    }
    var item = { local: nextLocal++, name: file.name || 'file', size: file.size, progress: 0, key: state.current };
    tray.push(item);
    upload(item, file);
  });
  renderTray();
}

function upload(item, file) {
  var form = new FormData();
  form.append('file', file, file.name || 'file');
  var xhr = new XMLHttpRequest();
  item.xhr = xhr;
  xhr.open('POST', '/api/attachments');
  xhr.withCredentials = true;
  xhr.setRequestHeader('Accept', 'application/json');
  xhr.upload.onprogress = function (ev) {
    if (ev.lengthComputable) {
      item.progress = ev.loaded / ev.total;
      renderTray();
    }
  };
  xhr.onload = function () {
    item.xhr = null;
    var json = null;
    try {
      json = JSON.parse(xhr.responseText);
    } catch (e) {
      json = null;
    }
    if (xhr.status === 201 && json && json.attachment) {
      item.attachment = json.attachment;
      item.progress = 1;
    } else {
      item.failed = (json && json.error && json.error.message) || 'The server answered ' + xhr.status + '.';
    }
    renderTray();
  };
  xhr.onerror = function () {
    item.xhr = null;
    item.failed = 'The server cannot be reached.';
    renderTray();
  };
  xhr.send(form);
}

function removeFromTray(local) {
  tray = tray.filter(function (item) {
    if (item.local !== local) return true;
    if (item.xhr) item.xhr.abort();
    return false;
  });
  renderTray();
}

/** Empties the tray (another conversation was opened, or the user signed out). */
export function clearTray() {
  tray.forEach(function (item) { if (item.xhr) item.xhr.abort(); });
  tray = [];
  renderTray();
}

/** Whether some file is still on its way up. */
export function uploading() {
  return tray.some(function (item) { return !item.attachment && !item.failed; });
}

/** Whether the tray holds uploaded files to send. */
export function hasFiles() {
  return tray.some(function (item) { return !!item.attachment; });
}

/** The uploaded files of the tray, for the message being sent; empties the tray. */
export function takeFiles() {
  var taken = tray.filter(function (item) { return !!item.attachment; }).map(function (item) { return item.attachment; });
  tray = [];
  renderTray();
  return taken;
}

/** Puts files of a message that was not sent back into the tray. */
export function restoreFiles(attachments) {
  (attachments || []).forEach(function (a) {
    tray.push({ local: nextLocal++, name: a.name, size: a.size, progress: 1, attachment: a });
  });
  renderTray();
}

function renderTray() {
  var $tray = $('#attach-tray').empty();
  $tray.prop('hidden', tray.length === 0);
  tray.forEach(function (item) {
    var $chip = $('<li>', { class: 'attach-chip', 'data-local': item.local })
      .toggleClass('failed', !!item.failed)
      .toggleClass('done', !!item.attachment);
    $('<span>', { class: 'attach-name' }).text(item.name).appendTo($chip);
    var status = item.failed ? item.failed : item.attachment ? formatSize(item.size) : Math.round(item.progress * 100) + '%';
    $('<span>', { class: 'attach-status' }).text(status).appendTo($chip);
    if (!item.attachment && !item.failed) {
      $('<progress>', { max: 1, class: 'attach-progress' }).prop('value', item.progress).appendTo($chip);
    }
    $('<button>', { type: 'button', class: 'ghost attach-remove', 'aria-label': 'Remove ' + item.name })
      .text('×')
      .on('click', function () { removeFromTray(item.local); })
      .appendTo($chip);
    $tray.append($chip);
  });
}

// ---------------------------------------------------------------- in messages

export function formatSize(bytes) {
  var n = Number(bytes) || 0;
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10 * 1024 ? 1 : 0) + ' KB';
  return (n / (1024 * 1024)).toFixed(1) + ' MB';
}

/** Up to four letters of a file name's extension, for the file's badge ("PDF", "ZIP"). */
function extension(name) {
  var m = /\.([A-Za-z0-9]{1,4})$/.exec(String(name || ''));
  return m ? m[1].toUpperCase() : 'FILE';
}

function isPicture(a) {
  return /^image\/(png|jpeg|gif|webp)$/.test(a.content_type);
}

/** Same-origin API paths only: an attachment's URL never leads anywhere else. */
function apiPath(url) {
  return typeof url === 'string' && /^\/api\/[A-Za-z0-9_/.-]+$/.test(url) ? url : null;
}

/** The attachments of message `m`, as elements to put under its body. */
export function attachmentsEl(m) {
  var list = (m && m.attachments) || [];
  if (!list.length) return null;
  var $box = $('<div>', { class: 'attachments' });
  list.forEach(function (a) {
    var url = apiPath(a.url);
    if (!url) return;
    if (isPicture(a)) {
      var $a = $('<a>', { class: 'attachment picture', href: url, target: '_blank', rel: 'noopener noreferrer', title: a.name });
      $('<img>', { alt: a.name, loading: 'lazy', src: apiPath(a.thumbnail_url) || url }).appendTo($a);
      $box.append($a);
    } else {
      var $f = $('<a>', { class: 'attachment file', href: url, download: a.name, rel: 'noopener noreferrer' });
      $('<span>', { class: 'file-icon', 'aria-hidden': 'true' }).text(extension(a.name)).appendTo($f);
      $('<span>', { class: 'file-name' }).text(a.name).appendTo($f);
      $('<span>', { class: 'file-size' }).text(formatSize(a.size)).appendTo($f);
      $box.append($f);
    }
  });
  return $box;
}

// http(s) links in text; what follows the last letter or digit of a link (punctuation) is text.
const LINK = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Fills `$el` with `text`, http and https links made clickable; everything is text nodes. */
export function linkify($el, text) {
  var s = String(text || '');
  var last = 0;
  s.replace(LINK, function (match, offset) {
    var url = match.replace(/[),.;:!?\]}]+$/, '');
    $el.append(document.createTextNode(s.slice(last, offset)));
    var safe = null;
    try {
      var parsed = new URL(url);
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') safe = parsed.href;
    } catch (e) {
      safe = null;
    }
    if (safe) {
      $('<a>', { href: safe, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'msg-link' }).text(url).appendTo($el);
    } else {
      $el.append(document.createTextNode(url));
    }
    last = offset + url.length;
    return match;
  });
  $el.append(document.createTextNode(s.slice(last)));
  return $el;
}

// ---------------------------------------------------------------- avatars in lists

/** Shows user `u`'s avatar in `$span` (an `.avatar`), or its initials on its colour. */
export function paintUserAvatar($span, u) {
  var url = u && apiPath(u.avatar_url);
  $span.css('background', avatarColor(u ? u.id : 0));
  if (url) {
    $span.text('').addClass('has-picture').css('background-image', 'url("' + url + '")');
  } else {
    $span.text(initials(u ? u.name : '?'));
  }
  return $span;
}

// Bumped when a member's avatar may have changed: the page asks for group pictures again (the
// server answers 304 for those that did not change).
let pictureVersion = 0;

export function bustGroupPictures() {
  pictureVersion++;
}

/** Shows group `g`'s picture in `$span` (an `.avatar.group`); keeps its label when none. */
export function paintGroupPicture($span, g) {
  var url = g && !g.is_all && apiPath(g.picture_url);
  if (url) {
    if (pictureVersion) url += '?v=' + pictureVersion;
    $span.text('').addClass('has-picture').css('background-image', 'url("' + url + '")');
  }
  return $span;
}

// ---------------------------------------------------------------- the profile menu

/** Shows the signed-in user's avatar (or initials) in the top bar. */
export function renderMe() {
  if (!state || !state.me) return;
  paintUserAvatar($('#me-avatar').removeClass('has-picture').css('background-image', ''), state.me);
  $('#profile-remove').prop('hidden', !state.me.avatar_url);
}

function setMe(user) {
  if (!state || !user) return;
  state.me = user;
  var known = state.users.get(Number(user.id));
  if (known) known.avatar_url = user.avatar_url;
  renderMe();
  bustGroupPictures();
  renderUsers();
  renderConversations();
}

function uploadAvatar(file) {
  if (!file) return;
  $('#profile-status').text('Uploading…').prop('hidden', false);
  fetch('/api/me/avatar', {
    method: 'PUT',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  })
    .then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        if (!res.ok) throw new Error((json && json.error && json.error.message) || 'The server answered ' + res.status + '.');
        return json;
      });
    })
    .then(function (json) {
      setMe(json.user);
      $('#profile-status').text('Picture updated.');
    })
    .catch(function (e) {
      $('#profile-status').text('Not changed: ' + errorText(e));
    });
}

function removeAvatar() {
  api('DELETE', '/api/me/avatar')
    .then(function () {
      var me = Object.assign({}, state.me, { avatar_url: null });
      setMe(me);
      $('#profile-status').text('Picture removed.').prop('hidden', false);
    })
    .catch(function (e) {
      $('#profile-status').text('Not removed: ' + errorText(e)).prop('hidden', false);
    });
}

// ---------------------------------------------------------------- wiring

/** Called once the page is ready: the attach button, drag and drop, paste, the profile menu. */
export function initAttachments() {
  $('#attach-button').on('click', function () { $('#attach-input').trigger('click'); });
  $('#attach-input').on('change', function () {
    addFiles(this.files);
    this.value = '';
  });
  var depth = 0;
  $('#conversation')
    .on('dragenter', function (ev) {
      if (!hasDraggedFiles(ev)) return;
      ev.preventDefault();
      depth++;
      $(this).addClass('dragging');
    })
    .on('dragover', function (ev) {
      if (hasDraggedFiles(ev)) ev.preventDefault();
    })
    .on('dragleave', function () {
      depth = Math.max(0, depth - 1);
      if (!depth) $(this).removeClass('dragging');
    })
    .on('drop', function (ev) {
      depth = 0;
      $(this).removeClass('dragging');
      var dt = ev.originalEvent.dataTransfer;
      if (!dt || !dt.files || !dt.files.length) return;
      ev.preventDefault();
      addFiles(dt.files);
    });
  $('#message-input').on('paste', function (ev) {
    var items = ev.originalEvent.clipboardData && ev.originalEvent.clipboardData.files;
    if (items && items.length) {
      ev.preventDefault();
      addFiles(items);
    }
  });

  $('#profile-button').on('click', function (ev) {
    ev.stopPropagation();
    var open = $('#profile-menu').prop('hidden');
    $('#profile-menu').prop('hidden', !open);
    $('#profile-status').prop('hidden', true);
  });
  $('#profile-menu').on('click', function (ev) { ev.stopPropagation(); });
  $(document).on('click', function () { $('#profile-menu').prop('hidden', true); });
  $('#profile-upload').on('click', function () { $('#avatar-input').trigger('click'); });
  $('#avatar-input').on('change', function () {
    uploadAvatar(this.files && this.files[0]);
    this.value = '';
  });
  $('#profile-remove').on('click', removeAvatar);
}

function hasDraggedFiles(ev) {
  var dt = ev.originalEvent && ev.originalEvent.dataTransfer;
  return !!dt && Array.prototype.indexOf.call(dt.types || [], 'Files') !== -1;
}

