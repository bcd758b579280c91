// GroupTable: the process-group state one broker knows, for every origin node
// (itself included): which members are in which (scope, group), and how many
// times each joined (pg counts a double join twice). Pure; not thread-safe:
// the broker's loop thread owns it.
//
// Every mutation reports what it changed as a list of Changes, in the order
// they happened, so the broker can tell monitors exactly what a snapshot
// replacement or a purge did, as pg does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "topics/names.h"
#include "topics/status.h"
#include "topics/wire.h"

namespace meshbus {

struct GroupChange {
  wire::EventKind kind;
  std::string scope, group;
  std::vector<MemberId> members;  // a member twice when it joined twice
};
using GroupChanges = std::vector<GroupChange>;

class GroupTable {
 public:
  void Join(const MemberId& member, const std::string& scope, const std::string& group,
            GroupChanges* out);
  // kNotJoined when the member is not in the group.
  Status Leave(const MemberId& member, const std::string& scope, const std::string& group,
               GroupChanges* out);
  // Makes what we know of `node` exactly `entries` (all of incarnation
  // `incarnation`), reporting the difference.
  void Replace(const std::string& node, uint64_t incarnation,
               const std::vector<wire::MembershipEntry>& entries, GroupChanges* out);
  // Removes everything `node` owned (any incarnation).
  void Purge(const std::string& node, GroupChanges* out);

  // Members of a group, sorted; a member appears once per join.
  std::vector<MemberId> Members(const std::string& scope, const std::string& group) const;
  std::vector<MemberId> LocalMembers(const std::string& scope, const std::string& group,
                                     const std::string& node) const;
  // Appends the session of each member of the group that `node`'s
  // incarnation `incarnation` has, once however often it joined. Copies no
  // member: a publish-like path calls it for every message.
  void AppendLocalSessions(const std::string& scope, const std::string& group,
                           const std::string& node, uint64_t incarnation,
                           std::vector<uint64_t>* sessions) const;
  // Groups with at least one member (of `node` only when node is non-empty);
  // every scope when scope is empty. count = joins in the group.
  std::vector<wire::GroupCount> WhichGroups(const std::string& scope,
                                            const std::string& node = "") const;
  // The membership entries owned by `node`: what a snapshot of it holds.
  std::vector<wire::MembershipEntry> EntriesOf(const std::string& node) const;
  // Members of a group, each once however often it joined, sorted.
  std::vector<MemberId> DistinctMembers(const std::string& scope, const std::string& group) const;
  // One of the group's distinct members not in `skip`, each equally likely;
  // null when there is none. `*total` is told how many the group has.
  // Copies nothing (a dispatch calls it each time): the member it points to
  // is the table's, valid until the table next changes.
  const MemberId* PickMember(const std::string& scope, const std::string& group,
                             std::span<const MemberId> skip, std::mt19937_64& rng,
                             size_t* total) const;
  // How many times `member` joined (scope, group).
  uint32_t JoinCount(const MemberId& member, const std::string& scope,
                     const std::string& group) const;
  size_t GroupCountTotal() const;

 private:
  using GroupKey = std::pair<std::string, std::string>;  // scope, group
  // Compares the scope once, then the group (std::pair's < compares the
  // scope twice when it is equal, which it mostly is).
  // Transparent, so that a lookup by (scope, group) copies neither.
  struct KeyLess {
    using is_transparent = void;
    using KeyView = std::pair<std::string_view, std::string_view>;
    static KeyView View(const GroupKey& k) { return {k.first, k.second}; }
    static KeyView View(const KeyView& k) { return k; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      KeyView x = View(a), y = View(b);
      int c = x.first.compare(y.first);
      return c != 0 ? c < 0 : x.second < y.second;
    }
  };
  static KeyLess::KeyView Key(const std::string& scope, const std::string& group) {
    return {scope, group};
  }
  using MemberCounts = std::map<MemberId, uint32_t>;
  // (scope, group) -> member -> join count. Ordered so listings are stable.
  std::map<GroupKey, MemberCounts, KeyLess> groups_;
  // node -> the group keys it has members in, for purge and snapshots.
  std::unordered_map<std::string, std::map<GroupKey, MemberCounts, KeyLess>> by_node_;

  void Add(const MemberId& m, const GroupKey& key, uint32_t n, GroupChanges* out);
  void Remove(const MemberId& m, const GroupKey& key, uint32_t n, GroupChanges* out);
};

}  // namespace meshbus
