/* chatbox browser client, groups.js: Groups: creating, managing members, renaming, leaving and
 * deleting.
 *
 * Every piece of text that comes from a user goes into the page through jQuery's .text() or an
 * attribute setter, never through .html().
 */
import { convKey, parseKey, sameId, state } from './state.js';
import { api, errorText } from './api.js';
import { flash, userName } from './format.js';
import { addConversation, renderConversations, renderUsers } from './lists.js';
import { openConversation, renderConversationHeader } from './conversation.js';

// ---------------------------------------------------------------- groups

export function onAddedToGroup(g) {
  if (!state || !g) return;
  state.groups.set(Number(g.id), g);
  var key = convKey('group', g.id);
  var existed = state.convs.has(key);
  var conv = addConversation({ kind: 'group', id: g.id, name: g.name, is_all: !!g.is_all });
  if (!existed) conv.unread = conv.unread || 0;
  renderConversations();
  if (state.current === key) renderConversationHeader();
}

export function onRemovedFromGroup(groupId) {
  if (!state) return;
  var key = convKey('group', groupId);
  state.groups.delete(Number(groupId));
  state.convs.delete(key);
  state.stores.delete(key);
  if (state.current === key) {
    closeConversation();
    flash('You are no longer in that group.');
  }
  if ($('#modal').attr('data-group-id') === String(groupId)) closeModal();
  renderConversations();
}

export function onGroupUpdated(g) {
  if (!state || !g) return;
  var id = Number(g.id);
  if (g.member_ids && !g.member_ids.some(function (x) { return sameId(x, state.me.id); })) {
    onRemovedFromGroup(id);
    return;
  }
  state.groups.set(id, g);
  var conv = state.convs.get(convKey('group', id));
  if (conv) conv.name = g.name;
  else addConversation({ kind: 'group', id: id, name: g.name, is_all: !!g.is_all });
  renderConversations();
  if (state.current === convKey('group', id)) renderConversationHeader();
  if ($('#modal').attr('data-group-id') === String(id)) renderManageGroup(id);
}

export function closeConversation() {
  state.current = null;
  $('#conversation').prop('hidden', true).removeAttr('data-key');
  $('#empty-state').prop('hidden', false);
  $('#message-list').empty();
  renderConversations();
  renderUsers();
}

export function openModal(title, groupId) {
  $('#modal-title').text(title);
  $('#modal-body').empty();
  $('#modal').prop('hidden', false);
  if (groupId !== undefined) $('#modal').attr('data-group-id', groupId);
  else $('#modal').removeAttr('data-group-id');
  return $('#modal-body');
}

export function closeModal() {
  $('#modal').prop('hidden', true).removeAttr('data-group-id');
  $('#modal-body').empty();
}

export function memberPicker(excludeIds) {
  var $box = $('<div>', { class: 'member-picker' });
  var users = Array.from(state.users.values()).filter(function (u) {
    return !sameId(u.id, state.me.id) && !(excludeIds || []).some(function (x) { return sameId(x, u.id); });
  }).sort(function (a, b) { return a.name.localeCompare(b.name); });
  users.forEach(function (u) {
    var $label = $('<label>', { class: 'pick' });
    $('<input>', { type: 'checkbox', name: 'member', value: u.id }).appendTo($label);
    $('<span>', { class: 'dot' }).toggleClass('on', state.online.has(u.id)).appendTo($label);
    $('<span>').text(u.name).appendTo($label);
    $box.append($label);
  });
  if (!users.length) $('<p>', { class: 'muted' }).text('Nobody to add yet.').appendTo($box);
  return $box;
}

export function openNewGroup() {
  var $body = openModal('New group');
  var $form = $('<form>', { id: 'group-form', class: 'stack', autocomplete: 'off' }).appendTo($body);
  var $name = $('<label>').text('Name ').appendTo($form);
  $('<input>', { type: 'text', id: 'group-name', maxlength: 80, required: true }).appendTo($name);
  $('<div>', { class: 'field-label' }).text('Members').appendTo($form);
  memberPicker([]).appendTo($form);
  $('<p>', { class: 'form-error', id: 'group-error', role: 'alert', hidden: true }).appendTo($form);
  var $actions = $('<div>', { class: 'actions' }).appendTo($form);
  $('<button>', { type: 'button', class: 'ghost', id: 'group-cancel' }).text('Cancel').appendTo($actions);
  $('<button>', { type: 'submit', class: 'primary', id: 'group-create' }).text('Create group').appendTo($actions);
  $('#group-name').trigger('focus');

  $form.on('submit', function (ev) {
    ev.preventDefault();
    var name = $('#group-name').val().trim();
    var ids = $form.find('input[name=member]:checked').map(function () { return Number(this.value); }).get();
    if (!name) {
      $('#group-error').text('Give the group a name.').prop('hidden', false);
      return;
    }
    var $btn = $('#group-create').prop('disabled', true);
    api('POST', '/api/groups', { name: name, member_ids: ids })
      .then(function (res) {
        onAddedToGroup(res.group);
        closeModal();
        openConversation(convKey('group', res.group.id));
      })
      .catch(function (e) {
        $('#group-error').text(errorText(e)).prop('hidden', false);
        $btn.prop('disabled', false);
      });
  });
  $('#group-cancel').on('click', closeModal);
}

export function openManageGroup() {
  var k = parseKey(state.current);
  if (k.kind !== 'group') return;
  openModal('Group', k.id);
  renderManageGroup(k.id);
  api('GET', '/api/groups/' + k.id).then(function (res) {
    if (!state || !res || !res.group) return;
    state.groups.set(Number(res.group.id), res.group);
    if ($('#modal').attr('data-group-id') === String(k.id)) renderManageGroup(k.id);
    renderConversationHeader();
  }).catch(function (e) {
    if (e.status === 403 || e.status === 404) onRemovedFromGroup(k.id);
  });
}

export function renderManageGroup(groupId) {
  var g = state.groups.get(Number(groupId));
  var $body = $('#modal-body').empty();
  if (!g) {
    $('<p>', { class: 'muted' }).text('Loading…').appendTo($body);
    return;
  }
  $('#modal-title').text(g.name);
  var owner = sameId(g.owner_id, state.me.id);
  var isAll = !!g.is_all;

  if (owner && !isAll) {
    var $rename = $('<form>', { id: 'rename-form', class: 'row' }).appendTo($body);
    $('<input>', { type: 'text', id: 'rename-input', maxlength: 80, 'aria-label': 'Group name' }).val(g.name).appendTo($rename);
    $('<button>', { type: 'submit', class: 'small', id: 'rename-button' }).text('Rename').appendTo($rename);
    $rename.on('submit', function (ev) {
      ev.preventDefault();
      var name = $('#rename-input').val().trim();
      if (!name) return;
      groupAction('PATCH', '/api/groups/' + g.id, { name: name }).then(function (res) {
        if (res && res.group) onGroupUpdated(res.group);
      });
    });
  }

  if (owner && !isAll) {
    // Anonymous questions: members may then ask without their name (the group sees a pseudonym).
    var $q = $('<label>', { class: 'pick', id: 'questions-label' }).appendTo($body);
    $('<input>', { type: 'checkbox', id: 'questions-toggle' }).prop('checked', !!g.questions).appendTo($q);
    $('<span>').text(' Anonymous questions').appendTo($q);
    $('#questions-toggle').on('change', function () {
      var on = $(this).prop('checked');
      groupAction('PATCH', '/api/groups/' + g.id, { questions: on }).then(function (res) {
        if (res && res.group) onGroupUpdated(res.group);
        else $('#questions-toggle').prop('checked', !on);
      });
    });
    if (g.questions) {
      api('GET', '/api/groups/' + g.id + '/muted').then(function (res) {
        var muted = (res && res.muted) || [];
        if (!muted.length || $('#modal').attr('data-group-id') !== String(g.id)) return;
        var $m = $('<ul>', { class: 'member-list', id: 'muted-list' }).insertAfter('#questions-label');
        muted.forEach(function (p) {
          var $li = $('<li>').appendTo($m);
          $('<span>', { class: 'member-name' }).text('Muted: ' + p).appendTo($li);
          $('<button>', { type: 'button', class: 'link unmute', 'data-pseudonym': p }).text('Unmute').appendTo($li);
        });
        $m.on('click', '.unmute', function () {
          var p = $(this).attr('data-pseudonym');
          groupAction('DELETE', '/api/groups/' + g.id + '/muted/' + encodeURIComponent(p)).then(function (r) {
            if (r !== undefined) renderManageGroup(g.id);
          });
        });
      }).catch(function () { /* the list is a convenience */ });
    }
  }

  $('<div>', { class: 'field-label' }).text('Members (' + (g.member_ids || []).length + ')').appendTo($body);
  var $members = $('<ul>', { class: 'member-list', id: 'member-list' }).appendTo($body);
  (g.member_ids || []).slice().sort(function (a, b) { return userName(a).localeCompare(userName(b)); }).forEach(function (id) {
    var $li = $('<li>', { 'data-user-id': id }).appendTo($members);
    $('<span>', { class: 'dot' }).toggleClass('on', state.online.has(Number(id))).appendTo($li);
    $('<span>', { class: 'member-name' }).text(userName(id) + (sameId(id, state.me.id) ? ' (you)' : '')).appendTo($li);
    if (sameId(id, g.owner_id)) $('<span>', { class: 'tag' }).text('owner').appendTo($li);
    if (owner && !isAll && !sameId(id, state.me.id)) {
      $('<button>', { type: 'button', class: 'link danger remove-member', 'data-user-id': id }).text('Remove').appendTo($li);
    }
  });

  if (owner && !isAll) {
    var candidates = Array.from(state.users.values()).filter(function (u) {
      return !(g.member_ids || []).some(function (x) { return sameId(x, u.id); });
    }).sort(function (a, b) { return a.name.localeCompare(b.name); });
    if (candidates.length) {
      var $add = $('<form>', { id: 'add-member-form', class: 'row' }).appendTo($body);
      var $select = $('<select>', { id: 'add-member-select', 'aria-label': 'Person to add' }).appendTo($add);
      candidates.forEach(function (u) {
        $('<option>', { value: u.id }).text(u.name).appendTo($select);
      });
      $('<button>', { type: 'submit', class: 'small', id: 'add-member-button' }).text('Add').appendTo($add);
      $add.on('submit', function (ev) {
        ev.preventDefault();
        var uid = Number($select.val());
        if (!uid) return;
        groupAction('POST', '/api/groups/' + g.id + '/members', { user_id: uid }).then(function (res) {
          if (res && res.group) onGroupUpdated(res.group);
        });
      });
    }
  }

  $('<p>', { class: 'form-error', id: 'manage-error', role: 'alert', hidden: true }).appendTo($body);

  if (!isAll) {
    var $actions = $('<div>', { class: 'actions' }).appendTo($body);
    if (owner) {
      $('<button>', { type: 'button', class: 'danger', id: 'delete-group' }).text('Delete group').appendTo($actions);
    } else {
      $('<button>', { type: 'button', class: 'danger', id: 'leave-group' }).text('Leave group').appendTo($actions);
    }
  }

  $members.on('click', '.remove-member', function () {
    var uid = Number($(this).attr('data-user-id'));
    groupAction('DELETE', '/api/groups/' + g.id + '/members/' + uid).then(function (res) {
      if (res === undefined) return;
      var cur = state.groups.get(Number(g.id));
      if (cur) {
        cur.member_ids = (cur.member_ids || []).filter(function (x) { return !sameId(x, uid); });
        onGroupUpdated(cur);
      }
    });
  });
  confirmButton($('#delete-group'), 'Click again to delete it for everyone', function () {
    return groupAction('DELETE', '/api/groups/' + g.id).then(function (res) {
      if (res !== undefined) onRemovedFromGroup(g.id);
    });
  });
  confirmButton($('#leave-group'), 'Click again to leave', function () {
    return groupAction('DELETE', '/api/groups/' + g.id + '/members/' + state.me.id).then(function (res) {
      if (res !== undefined) onRemovedFromGroup(g.id);
    });
  });
}

// A destructive button that asks for a second click (no browser dialog).
export function confirmButton($btn, confirmText, action) {
  var label = $btn.text();
  var armed = null;
  $btn.on('click', function () {
    if (!armed) {
      $btn.text(confirmText).addClass('armed');
      armed = setTimeout(function () {
        armed = null;
        $btn.text(label).removeClass('armed');
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    $btn.prop('disabled', true);
    action().then(function () {
      $btn.prop('disabled', false).text(label).removeClass('armed');
    });
  });
}

// Resolves with the answer (null for 204), or undefined after showing the error.
export function groupAction(method, path, body) {
  $('#manage-error').prop('hidden', true);
  return api(method, path, body).catch(function (e) {
    $('#manage-error').text(errorText(e)).prop('hidden', false);
    return undefined;
  });
}

// The owner mutes an anonymous asker by its pseudonym: its anonymous questions are refused from
// now on. Nobody learns who it is.
export function muteAsker(groupId, pseudonym) {
  api('POST', '/api/groups/' + groupId + '/muted', { pseudonym: pseudonym }).then(function () {
    flash(pseudonym + ' is muted in this group.');
  }).catch(function (e) {
    flash('Not muted: ' + errorText(e));
  });
}
