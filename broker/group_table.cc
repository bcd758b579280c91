#include "broker/group_table.h"

#include <algorithm>

namespace meshbus {
namespace {

void Emit(GroupChanges* out, wire::EventKind kind, const std::string& scope,
          const std::string& group, const MemberId& m, uint32_t n) {
  if (out == nullptr || n == 0) return;
  // Coalesce with the previous change of the same kind and group, so that a
  // snapshot replacement reports one event per group, not one per member.
  if (!out->empty()) {
    GroupChange& last = out->back();
    if (last.kind == kind && last.scope == scope && last.group == group) {
      last.members.insert(last.members.end(), n, m);
      return;
    }
  }
  out->push_back(GroupChange{kind, scope, group, std::vector<MemberId>(n, m)});
}

}  // namespace

void GroupTable::Add(const MemberId& m, const GroupKey& key, uint32_t n, GroupChanges* out) {
  if (n == 0) return;
  groups_[key][m] += n;
  by_node_[m.node][key][m] += n;
  Emit(out, wire::EventKind::kJoin, key.first, key.second, m, n);
}

void GroupTable::Remove(const MemberId& m, const GroupKey& key, uint32_t n, GroupChanges* out) {
  auto g = groups_.find(key);
  if (g == groups_.end()) return;
  auto it = g->second.find(m);
  if (it == g->second.end()) return;
  n = std::min(n, it->second);
  it->second -= n;
  if (it->second == 0) g->second.erase(it);
  // An empty group is gone, so which_groups never lists it (OTP's bug was to keep it).
  if (g->second.empty()) groups_.erase(g);

  auto node = by_node_.find(m.node);
  if (node != by_node_.end()) {
    auto k = node->second.find(key);
    if (k != node->second.end()) {
      auto mm = k->second.find(m);
      if (mm != k->second.end()) {
        mm->second -= std::min(n, mm->second);
        if (mm->second == 0) k->second.erase(mm);
      }
      if (k->second.empty()) node->second.erase(k);
    }
    if (node->second.empty()) by_node_.erase(node);
  }
  Emit(out, wire::EventKind::kLeave, key.first, key.second, m, n);
}

void GroupTable::Join(const MemberId& member, const std::string& scope, const std::string& group,
                      GroupChanges* out) {
  Add(member, {scope, group}, 1, out);
}

Status GroupTable::Leave(const MemberId& member, const std::string& scope, const std::string& group,
                         GroupChanges* out) {
  if (JoinCount(member, scope, group) == 0) {
    return Status::NotJoined(member.ToString() + " is not a member of " + scope + "/" + group);
  }
  Remove(member, {scope, group}, 1, out);
  return Status::Ok();
}

void GroupTable::Replace(const std::string& node, uint64_t incarnation,
                         const std::vector<wire::MembershipEntry>& entries, GroupChanges* out) {
  // Wanted state, keyed like by_node_.
  std::map<GroupKey, MemberCounts, KeyLess> want;
  for (const wire::MembershipEntry& e : entries) {
    want[{e.scope, e.group}][MemberId{node, incarnation, e.session}] += e.count;
  }
  std::map<GroupKey, MemberCounts, KeyLess> have;
  if (auto it = by_node_.find(node); it != by_node_.end()) have = it->second;

  // Leaves first, then joins, each in key order.
  for (const auto& [key, members] : have) {
    auto w = want.find(key);
    for (const auto& [m, n] : members) {
      uint32_t keep = 0;
      if (w != want.end()) {
        auto wm = w->second.find(m);
        if (wm != w->second.end()) keep = wm->second;
      }
      if (n > keep) Remove(m, key, n - keep, out);
    }
  }
  for (const auto& [key, members] : want) {
    auto h = have.find(key);
    for (const auto& [m, n] : members) {
      uint32_t had = 0;
      if (h != have.end()) {
        auto hm = h->second.find(m);
        if (hm != h->second.end()) had = hm->second;
      }
      if (n > had) Add(m, key, n - had, out);
    }
  }
}

void GroupTable::Purge(const std::string& node, GroupChanges* out) {
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return;
  auto owned = it->second;  // Remove() edits by_node_
  for (const auto& [key, members] : owned) {
    for (const auto& [m, n] : members) Remove(m, key, n, out);
  }
}

std::vector<MemberId> GroupTable::Members(const std::string& scope,
                                          const std::string& group) const {
  std::vector<MemberId> out;
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return out;
  for (const auto& [m, n] : g->second) out.insert(out.end(), n, m);
  return out;
}

std::vector<MemberId> GroupTable::DistinctMembers(const std::string& scope,
                                                  const std::string& group) const {
  std::vector<MemberId> out;
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return out;
  out.reserve(g->second.size());
  for (const auto& [m, n] : g->second) out.push_back(m);
  return out;
}

const MemberId* GroupTable::PickMember(const std::string& scope, const std::string& group,
                                       std::span<const MemberId> skip, std::mt19937_64& rng,
                                       size_t* total) const {
  *total = 0;
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return nullptr;
  const MemberCounts& members = g->second;
  *total = members.size();
  if (skip.empty()) {  // a first try, as most are: one walk, to the member picked
    auto k = std::uniform_int_distribution<size_t>(0, members.size() - 1)(rng);
    return &std::next(members.begin(), static_cast<std::ptrdiff_t>(k))->first;
  }
  auto skipped_member = [&](const MemberId& m) {
    return std::find(skip.begin(), skip.end(), m) != skip.end();
  };
  size_t skipped = 0;  // (a walk, not a count per skip: skip may repeat a member)
  for (const auto& [m, n] : members) skipped += skipped_member(m);
  if (skipped == members.size()) return nullptr;
  size_t k = std::uniform_int_distribution<size_t>(0, members.size() - skipped - 1)(rng);
  for (const auto& [m, n] : members) {
    if (skipped_member(m)) continue;
    if (k-- == 0) return &m;
  }
  return nullptr;  // not reached: k < the members not skipped
}

std::vector<MemberId> GroupTable::LocalMembers(const std::string& scope, const std::string& group,
                                               const std::string& node) const {
  std::vector<MemberId> out;
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return out;
  for (const auto& [m, n] : g->second) {
    if (m.node == node) out.insert(out.end(), n, m);
  }
  return out;
}

void GroupTable::AppendLocalSessions(const std::string& scope, const std::string& group,
                                     const std::string& node, uint64_t incarnation,
                                     std::vector<uint64_t>* sessions) const {
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return;
  for (const auto& [m, n] : g->second) {
    if (m.incarnation == incarnation && m.node == node) sessions->push_back(m.session);
  }
}

std::vector<wire::GroupCount> GroupTable::WhichGroups(const std::string& scope,
                                                      const std::string& node) const {
  std::vector<wire::GroupCount> out;
  auto add = [&](const GroupKey& key, const std::map<MemberId, uint32_t>& members) {
    if (!scope.empty() && key.first != scope) return;
    uint64_t count = 0;
    for (const auto& [m, n] : members) count += n;
    if (count > 0) out.push_back({key.first, key.second, count});
  };
  if (node.empty()) {
    auto it = scope.empty() ? groups_.begin() : groups_.lower_bound({scope, ""});
    for (; it != groups_.end(); ++it) {
      if (!scope.empty() && it->first.first != scope) break;
      add(it->first, it->second);
    }
  } else if (auto n = by_node_.find(node); n != by_node_.end()) {
    for (const auto& [key, members] : n->second) add(key, members);
  }
  return out;
}

std::vector<wire::MembershipEntry> GroupTable::EntriesOf(const std::string& node) const {
  std::vector<wire::MembershipEntry> out;
  auto it = by_node_.find(node);
  if (it == by_node_.end()) return out;
  for (const auto& [key, members] : it->second) {
    for (const auto& [m, n] : members) out.push_back({key.first, key.second, m.session, n});
  }
  return out;
}

uint32_t GroupTable::JoinCount(const MemberId& member, const std::string& scope,
                               const std::string& group) const {
  auto g = groups_.find(Key(scope, group));
  if (g == groups_.end()) return 0;
  auto m = g->second.find(member);
  return m == g->second.end() ? 0 : m->second;
}

size_t GroupTable::GroupCountTotal() const {
  return groups_.size();
}

}  // namespace meshbus
