// Tests of broker/group_table.h: membership with pg's counting, listings,
// snapshot replacement and purge, and the exact changes each one reports.

#include "broker/group_table.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace meshbus {
namespace {

using wire::EventKind;
using wire::GroupCount;
using wire::MembershipEntry;

MemberId M(const std::string& node, uint64_t incarnation, uint64_t session) {
  return MemberId{node, incarnation, session};
}

// "join s/g [n1.1.1 n1.1.1]": one line per change, comparable in one EXPECT.
std::vector<std::string> Lines(const GroupChanges& changes) {
  std::vector<std::string> out;
  for (const GroupChange& c : changes) {
    std::string s = std::string(wire::EventKindName(c.kind)) + " " + c.scope + "/" + c.group + " [";
    for (size_t i = 0; i < c.members.size(); ++i) s += (i ? " " : "") + c.members[i].ToString();
    out.push_back(s + "]");
  }
  return out;
}

using Listing = std::vector<std::tuple<std::string, std::string, uint64_t>>;
Listing L(const std::vector<GroupCount>& groups) {
  Listing out;
  for (const GroupCount& g : groups) out.emplace_back(g.scope, g.group, g.count);
  return out;
}

using Entries = std::vector<std::tuple<std::string, std::string, uint64_t, uint32_t>>;
Entries E(const std::vector<MembershipEntry>& entries) {
  Entries out;
  for (const MembershipEntry& e : entries) out.emplace_back(e.scope, e.group, e.session, e.count);
  return out;
}

using Ids = std::vector<MemberId>;

const MemberId kA = M("n1", 0xa, 1);
const MemberId kB = M("n1", 0xa, 2);
const MemberId kR = M("n2", 0xb, 1);  // on a remote node

TEST(GroupTableTest, JoinAndMembers) {
  GroupTable t;
  for (const MemberId& m : {kB, kR, kA}) {
    GroupChanges changes;
    t.Join(m, "s", "g", &changes);
    EXPECT_EQ(Lines(changes), (std::vector<std::string>{"join s/g [" + m.ToString() + "]"}));
  }
  EXPECT_EQ(t.Members("s", "g"), (Ids{kA, kB, kR}));  // sorted
  EXPECT_EQ(t.Members("s", "other"), Ids{});
  EXPECT_EQ(t.Members("other", "g"), Ids{});
  EXPECT_EQ(t.JoinCount(kA, "s", "g"), 1u);
  EXPECT_EQ(t.JoinCount(kA, "s", "other"), 0u);
  EXPECT_EQ(t.GroupCountTotal(), 1u);
}

TEST(GroupTableTest, NullChangesIsAllowed) {
  GroupTable t;
  t.Join(kA, "s", "g", nullptr);
  EXPECT_TRUE(t.Leave(kA, "s", "g", nullptr).ok());
  t.Replace("n2", 1, {{"s", "g", 1, 1}}, nullptr);
  t.Purge("n2", nullptr);
  EXPECT_EQ(t.GroupCountTotal(), 0u);
}

TEST(GroupTableTest, JoinTwiceCountsTwice) {
  GroupTable t;
  GroupChanges changes;
  t.Join(kA, "s", "g", &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"join s/g [n1.a.1]"}));
  changes.clear();
  t.Join(kA, "s", "g", &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"join s/g [n1.a.1]"}));
  t.Join(kB, "s", "g", nullptr);
  EXPECT_EQ(t.Members("s", "g"), (Ids{kA, kA, kB}));
  EXPECT_EQ(t.JoinCount(kA, "s", "g"), 2u);
  EXPECT_EQ(L(t.WhichGroups("s")), (Listing{{"s", "g", 3}}));
  EXPECT_EQ(E(t.EntriesOf("n1")), (Entries{{"s", "g", 1, 2}, {"s", "g", 2, 1}}));

  // One Leave undoes one join.
  changes.clear();
  EXPECT_TRUE(t.Leave(kA, "s", "g", &changes).ok());
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"leave s/g [n1.a.1]"}));
  EXPECT_EQ(t.Members("s", "g"), (Ids{kA, kB}));
  EXPECT_EQ(t.JoinCount(kA, "s", "g"), 1u);
  EXPECT_EQ(L(t.WhichGroups("s")), (Listing{{"s", "g", 2}}));

  changes.clear();
  EXPECT_TRUE(t.Leave(kA, "s", "g", &changes).ok());
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"leave s/g [n1.a.1]"}));
  EXPECT_EQ(t.Members("s", "g"), (Ids{kB}));
  EXPECT_EQ(t.JoinCount(kA, "s", "g"), 0u);

  changes.clear();
  Status third = t.Leave(kA, "s", "g", &changes);
  EXPECT_EQ(third.code(), Code::kNotJoined);
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(t.Members("s", "g"), (Ids{kB}));
}

TEST(GroupTableTest, LeaveOfANonMember) {
  GroupTable t;
  t.Join(kA, "s", "g", nullptr);
  t.Join(kR, "s2", "g", nullptr);
  const struct {
    const char* label;
    MemberId member;
    std::string scope, group;
  } kCases[] = {
      {"unknown group", kA, "s", "nope"},
      {"unknown scope", kA, "nope", "g"},
      {"same group name, other scope", kA, "s2", "g"},
      {"other member of the group's node", kB, "s", "g"},
      {"same session, other incarnation", M("n1", 0xb, 1), "s", "g"},
      {"same session, other node", M("n3", 0xa, 1), "s", "g"},
  };
  for (const auto& c : kCases) {
    GroupChanges changes;
    Status st = t.Leave(c.member, c.scope, c.group, &changes);
    EXPECT_EQ(st.code(), Code::kNotJoined) << c.label;
    EXPECT_NE(st.message().find(c.member.ToString()), std::string::npos) << st.message();
    EXPECT_TRUE(changes.empty()) << c.label;
  }
  EXPECT_EQ(t.Members("s", "g"), (Ids{kA}));
  EXPECT_EQ(t.Members("s2", "g"), (Ids{kR}));
  EXPECT_EQ(GroupTable().Leave(kA, "s", "g", nullptr).code(), Code::kNotJoined);
}

// A pick is uniform over the distinct members not skipped, a double join
// counting once; with every member skipped, or none, there is no pick.
TEST(GroupTableTest, PickMemberChoosesAmongTheMembersNotSkipped) {
  GroupTable t;
  const MemberId a = M("n1", 1, 1), b = M("n2", 1, 1), c = M("n3", 1, 1);
  for (const MemberId& m : {a, a, b, c}) t.Join(m, "s", "g", nullptr);
  std::mt19937_64 rng(7);
  struct Case {
    std::vector<MemberId> skip;
    std::set<MemberId> want;  // the members a pick may give; empty: none
  };
  const Case cases[] = {
      {{}, {a, b, c}}, {{a}, {b, c}},   {{b, M("n9", 1, 1)}, {a, c}},
      {{a, c}, {b}},   {{c, b, a}, {}}, {{a, a}, {b, c}},
  };
  for (const Case& k : cases) {
    std::map<MemberId, int> picks;
    for (int i = 0; i < 3000; ++i) {
      size_t total = 0;
      const MemberId* m = t.PickMember("s", "g", k.skip, rng, &total);
      EXPECT_EQ(total, 3u);
      if (!m) break;
      ++picks[*m];
    }
    std::set<MemberId> got;
    for (const auto& [m, n] : picks) got.insert(m);
    EXPECT_EQ(got, k.want) << k.skip.size() << " skipped";
    if (k.want.empty()) continue;
    for (const auto& [m, n] : picks) {
      // Uniform: each of the k.want.size() gets its share, within a wide margin.
      const int share = 3000 / int(k.want.size());
      EXPECT_GT(n, share * 8 / 10) << m.ToString();
      EXPECT_LT(n, share * 12 / 10) << m.ToString();
    }
  }
  size_t total = 9;
  EXPECT_EQ(t.PickMember("s", "nobody", {}, rng, &total), nullptr);
  EXPECT_EQ(total, 0u);
}

TEST(GroupTableTest, LocalMembers) {
  GroupTable t;
  t.Join(kA, "s", "g", nullptr);
  t.Join(kA, "s", "g", nullptr);
  t.Join(kR, "s", "g", nullptr);
  t.Join(kB, "s", "g", nullptr);
  t.Join(M("n2", 0xc, 9), "s", "g", nullptr);
  t.Join(kB, "s", "h", nullptr);
  EXPECT_EQ(t.LocalMembers("s", "g", "n1"), (Ids{kA, kA, kB}));
  EXPECT_EQ(t.LocalMembers("s", "g", "n2"), (Ids{kR, M("n2", 0xc, 9)}));
  EXPECT_EQ(t.LocalMembers("s", "g", "n3"), Ids{});
  EXPECT_EQ(t.LocalMembers("s", "h", "n1"), (Ids{kB}));
  EXPECT_EQ(t.LocalMembers("s", "h", "n2"), Ids{});
  EXPECT_EQ(t.LocalMembers("s", "nope", "n1"), Ids{});
  // A node name that is a prefix of another is a different node.
  EXPECT_EQ(t.LocalMembers("s", "g", "n"), Ids{});
}

TEST(GroupTableTest, WhichGroups) {
  GroupTable t;
  t.Join(kA, "orders", "emitters", nullptr);
  t.Join(kA, "orders", "emitters", nullptr);
  t.Join(kR, "orders", "emitters", nullptr);
  t.Join(kR, "orders", "trackers", nullptr);
  t.Join(kB, "orders2", "emitters", nullptr);
  t.Join(kR, "a", "z", nullptr);
  t.Join(kB, "order", "x", nullptr);
  const struct {
    const char* label;
    std::string scope, node;
    Listing want;
  } kCases[] = {
      {"every scope, every node",
       "",
       "",
       {{"a", "z", 1},
        {"order", "x", 1},
        {"orders", "emitters", 3},
        {"orders", "trackers", 1},
        {"orders2", "emitters", 1}}},
      {"one scope", "orders", "", {{"orders", "emitters", 3}, {"orders", "trackers", 1}}},
      {"a scope that prefixes others", "order", "", {{"order", "x", 1}}},
      {"the scope after", "orders2", "", {{"orders2", "emitters", 1}}},
      {"unknown scope", "nope", "", {}},
      {"unknown scope sorting last", "zzz", "", {}},
      {"one node, every scope",
       "",
       "n1",
       {{"order", "x", 1}, {"orders", "emitters", 2}, {"orders2", "emitters", 1}}},
      {"remote node, every scope",
       "",
       "n2",
       {{"a", "z", 1}, {"orders", "emitters", 1}, {"orders", "trackers", 1}}},
      {"one node, one scope", "orders", "n1", {{"orders", "emitters", 2}}},
      {"remote node, one scope",
       "orders",
       "n2",
       {{"orders", "emitters", 1}, {"orders", "trackers", 1}}},
      {"node without groups in the scope", "orders2", "n2", {}},
      {"unknown node", "", "n9", {}},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(L(t.WhichGroups(c.scope, c.node)), c.want) << c.label;
  }
  EXPECT_EQ(t.GroupCountTotal(), 5u);
}

TEST(GroupTableTest, LeftGroupIsNotListed) {
  GroupTable t;
  t.Join(kA, "s", "g", nullptr);
  t.Join(kA, "s", "h", nullptr);
  ASSERT_TRUE(t.Leave(kA, "s", "g", nullptr).ok());
  EXPECT_EQ(L(t.WhichGroups("")), (Listing{{"s", "h", 1}}));
  EXPECT_EQ(L(t.WhichGroups("s")), (Listing{{"s", "h", 1}}));
  EXPECT_EQ(L(t.WhichGroups("s", "n1")), (Listing{{"s", "h", 1}}));
  EXPECT_EQ(t.GroupCountTotal(), 1u);
}

// OTP's pg kept listing a group in which_groups after the members a remote
// node had in it were purged. Here the group must disappear.
TEST(GroupTableTest, GroupEmptiedByPurgeIsNotListed) {
  GroupTable t;
  t.Join(kR, "s", "remote-only", nullptr);
  t.Join(M("n2", 0xb, 2), "s", "remote-only", nullptr);
  t.Join(kR, "s", "shared", nullptr);
  t.Join(kA, "s", "shared", nullptr);
  ASSERT_EQ(L(t.WhichGroups("")), (Listing{{"s", "remote-only", 2}, {"s", "shared", 2}}));

  GroupChanges changes;
  t.Purge("n2", &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"leave s/remote-only [n2.b.1 n2.b.2]",
                                                      "leave s/shared [n2.b.1]"}));
  EXPECT_EQ(L(t.WhichGroups("")), (Listing{{"s", "shared", 1}}));
  EXPECT_EQ(L(t.WhichGroups("s")), (Listing{{"s", "shared", 1}}));
  EXPECT_EQ(L(t.WhichGroups("s", "n2")), Listing{});
  EXPECT_EQ(L(t.WhichGroups("", "n2")), Listing{});
  EXPECT_EQ(t.Members("s", "remote-only"), Ids{});
  EXPECT_EQ(t.LocalMembers("s", "remote-only", "n2"), Ids{});
  EXPECT_EQ(t.GroupCountTotal(), 1u);
  EXPECT_TRUE(t.EntriesOf("n2").empty());
}

TEST(GroupTableTest, GroupEmptiedByReplaceIsNotListed) {
  GroupTable t;
  t.Replace("n2", 0xb, {{"s", "g", 1, 2}}, nullptr);
  ASSERT_EQ(L(t.WhichGroups("")), (Listing{{"s", "g", 2}}));
  t.Replace("n2", 0xb, {}, nullptr);
  EXPECT_EQ(L(t.WhichGroups("")), Listing{});
  EXPECT_EQ(t.GroupCountTotal(), 0u);
}

TEST(GroupTableTest, ReplaceReportsTheExactDiff) {
  GroupTable t;
  // Another node's members in the same groups must not be touched.
  t.Join(kA, "s", "b", nullptr);
  t.Join(kA, "s", "e", nullptr);
  t.Replace("n2", 5,
            {{"s", "a", 1, 2},
             {"s", "b", 1, 1},
             {"s", "b", 2, 1},
             {"s", "c", 3, 1},
             {"s", "e", 6, 1},
             {"s", "e", 7, 3}},
            nullptr);
  GroupChanges changes;
  t.Replace("n2", 5,
            {{"s", "d", 4, 2},  // entries need not be sorted
             {"s", "b", 5, 1},
             {"s", "a", 1, 1},
             {"s", "b", 1, 1},
             {"s", "b", 2, 3}},
            &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{
                                // Leaves first, in group order, with multiplicities.
                                "leave s/a [n2.5.1]",
                                "leave s/c [n2.5.3]",
                                "leave s/e [n2.5.6 n2.5.7 n2.5.7 n2.5.7]",
                                // Then joins.
                                "join s/b [n2.5.2 n2.5.2 n2.5.5]",
                                "join s/d [n2.5.4 n2.5.4]",
                            }));
  EXPECT_EQ(t.Members("s", "a"), (Ids{M("n2", 5, 1)}));
  EXPECT_EQ(t.Members("s", "b"),
            (Ids{kA, M("n2", 5, 1), M("n2", 5, 2), M("n2", 5, 2), M("n2", 5, 2), M("n2", 5, 5)}));
  EXPECT_EQ(t.Members("s", "c"), Ids{});
  EXPECT_EQ(t.Members("s", "d"), (Ids{M("n2", 5, 4), M("n2", 5, 4)}));
  EXPECT_EQ(t.Members("s", "e"), (Ids{kA}));
  EXPECT_EQ(L(t.WhichGroups("s")),
            (Listing{{"s", "a", 1}, {"s", "b", 6}, {"s", "d", 2}, {"s", "e", 1}}));
}

TEST(GroupTableTest, ReplaceWithTheSameEntriesChangesNothing) {
  GroupTable t;
  const std::vector<MembershipEntry> entries = {{"s", "a", 1, 2}, {"t", "b", 3, 1}};
  GroupChanges changes;
  t.Replace("n2", 5, entries, &changes);
  EXPECT_EQ(Lines(changes),
            (std::vector<std::string>{"join s/a [n2.5.1 n2.5.1]", "join t/b [n2.5.3]"}));
  changes.clear();
  t.Replace("n2", 5, entries, &changes);
  EXPECT_TRUE(changes.empty()) << Lines(changes).front();
}

TEST(GroupTableTest, ReplaceWithANewIncarnationRemovesTheOldOne) {
  GroupTable t;
  t.Replace("n2", 5, {{"s", "a", 1, 1}, {"s", "b", 2, 2}}, nullptr);
  // The restarted node happens to reuse session numbers: they are other members.
  GroupChanges changes;
  t.Replace("n2", 6, {{"s", "a", 1, 1}, {"s", "c", 3, 1}}, &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{
                                "leave s/a [n2.5.1]",
                                "leave s/b [n2.5.2 n2.5.2]",
                                "join s/a [n2.6.1]",
                                "join s/c [n2.6.3]",
                            }));
  EXPECT_EQ(t.Members("s", "a"), (Ids{M("n2", 6, 1)}));
  EXPECT_EQ(t.Members("s", "b"), Ids{});
  EXPECT_EQ(t.Members("s", "c"), (Ids{M("n2", 6, 3)}));
  EXPECT_EQ(E(t.EntriesOf("n2")), (Entries{{"s", "a", 1, 1}, {"s", "c", 3, 1}}));

  // Members joined directly under the old incarnation go too.
  t.Join(M("n2", 6, 8), "s", "d", nullptr);
  changes.clear();
  t.Replace("n2", 7, {}, &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{"leave s/a [n2.6.1]", "leave s/c [n2.6.3]",
                                                      "leave s/d [n2.6.8]"}));
  EXPECT_EQ(t.GroupCountTotal(), 0u);
}

TEST(GroupTableTest, PurgeEmitsLeavesForEverythingTheNodeOwned) {
  GroupTable t;
  t.Join(kA, "s", "g", nullptr);
  t.Replace("n2", 0xb, {{"s", "g", 1, 2}, {"s", "g", 2, 1}, {"t", "h", 1, 1}, {"a", "z", 9, 3}},
            nullptr);
  t.Join(M("n2", 0xa, 4), "t", "h", nullptr);  // an older incarnation's member
  t.Join(M("n22", 1, 1), "s", "g", nullptr);   // a node whose name extends n2
  GroupChanges changes;
  t.Purge("n2", &changes);
  EXPECT_EQ(Lines(changes), (std::vector<std::string>{
                                "leave a/z [n2.b.9 n2.b.9 n2.b.9]",
                                "leave s/g [n2.b.1 n2.b.1 n2.b.2]",
                                "leave t/h [n2.a.4 n2.b.1]",
                            }));
  EXPECT_EQ(t.Members("s", "g"), (Ids{kA, M("n22", 1, 1)}));
  EXPECT_EQ(t.Members("t", "h"), Ids{});
  EXPECT_EQ(L(t.WhichGroups("")), (Listing{{"s", "g", 2}}));
  EXPECT_TRUE(t.EntriesOf("n2").empty());

  changes.clear();
  t.Purge("n2", &changes);
  EXPECT_TRUE(changes.empty());
  t.Purge("unknown", &changes);
  EXPECT_TRUE(changes.empty());
}

TEST(GroupTableTest, EntriesOfGivesBackWhatReplaceTook) {
  const std::vector<MembershipEntry> kSnapshots[] = {
      {},
      {{"s", "g", 1, 1}},
      {{"a", "x", 3, 7}, {"a", "y", 1, 1}, {"b", "x", 1, 2}, {"b", "x", 2, 1}},
      {{"orders", "$all", 17, UINT32_MAX}},
  };
  for (const auto& entries : kSnapshots) {
    GroupTable t;
    t.Join(kA, "a", "x", nullptr);  // another node's entries are not included
    t.Replace("n2", 5, entries, nullptr);
    EXPECT_EQ(E(t.EntriesOf("n2")), E(entries));
    // And it is a fixed point: replacing with it changes nothing.
    GroupChanges changes;
    t.Replace("n2", 5, t.EntriesOf("n2"), &changes);
    EXPECT_TRUE(changes.empty());
  }
}

TEST(GroupTableTest, EntriesOfSortsAndFollowsLocalJoins) {
  GroupTable t;
  t.Replace("n2", 5, {{"b", "x", 2, 1}, {"a", "y", 1, 1}, {"b", "x", 1, 2}}, nullptr);
  EXPECT_EQ(E(t.EntriesOf("n2")), (Entries{{"a", "y", 1, 1}, {"b", "x", 1, 2}, {"b", "x", 2, 1}}));

  t.Join(kA, "s", "g", nullptr);
  t.Join(kA, "s", "g", nullptr);
  t.Join(kB, "s", "g", nullptr);
  t.Join(kB, "r", "g", nullptr);
  EXPECT_EQ(E(t.EntriesOf("n1")), (Entries{{"r", "g", 2, 1}, {"s", "g", 1, 2}, {"s", "g", 2, 1}}));
  ASSERT_TRUE(t.Leave(kA, "s", "g", nullptr).ok());
  ASSERT_TRUE(t.Leave(kB, "r", "g", nullptr).ok());
  EXPECT_EQ(E(t.EntriesOf("n1")), (Entries{{"s", "g", 1, 1}, {"s", "g", 2, 1}}));
  EXPECT_TRUE(t.EntriesOf("n9").empty());
}

}  // namespace
}  // namespace meshbus
