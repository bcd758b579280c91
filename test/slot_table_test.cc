// Tests of broker/slot_table.h: ids that are never handed out twice, slots
// that are reused, values freed when erased, and pointers that inserts do
// not move.

#include "broker/slot_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace meshbus {
namespace {

TEST(SlotTableTest, FindsWhatWasInsertedUntilItIsErased) {
  SlotTable<std::string> t;
  auto [a, va] = t.Insert();
  *va = "a";
  auto [b, vb] = t.Insert();
  *vb = "b";
  ASSERT_NE(a, 0u);
  ASSERT_NE(a, b);
  EXPECT_EQ(t.size(), 2u);
  ASSERT_NE(t.Find(a), nullptr);
  EXPECT_EQ(*t.Find(a), "a");
  EXPECT_EQ(*t.Find(b), "b");
  EXPECT_TRUE(t.Erase(a));
  EXPECT_EQ(t.Find(a), nullptr);
  EXPECT_FALSE(t.Erase(a));
  EXPECT_EQ(*t.Find(b), "b");
  EXPECT_EQ(t.size(), 1u);
}

TEST(SlotTableTest, IdsThatNameNoEntryFindNothing) {
  SlotTable<int> t;
  auto [id, v] = t.Insert();
  *v = 7;
  auto [other, vo] = t.Insert();
  *vo = 8;
  const uint64_t slot_mask = SlotTable<int>::kMaxEntries - 1;
  struct Case {
    const char* what;
    uint64_t id;
  };
  const Case cases[] = {
      {"zero", 0},
      {"a slot past the end", other + 1},
      {"the right slot, another sequence", id + (uint64_t{1} << SlotTable<int>::kSlotBits)},
      {"this sequence with the other's slot", (id & ~slot_mask) | (other & slot_mask)},
      {"all bits set", ~uint64_t{0}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(t.Find(c.id), nullptr) << c.what;
    EXPECT_FALSE(t.Erase(c.id)) << c.what;
  }
  EXPECT_EQ(*t.Find(id), 7);
  EXPECT_EQ(*t.Find(other), 8);
}

// A late answer names an entry settled since: it must not find the newer
// entry that took its slot.
TEST(SlotTableTest, AReusedSlotGetsANewId) {
  SlotTable<int> t;
  auto [keep, vk] = t.Insert();  // keeps the table from emptying
  *vk = 1;
  auto [old_id, vo] = t.Insert();
  *vo = 2;
  ASSERT_TRUE(t.Erase(old_id));
  auto [new_id, vn] = t.Insert();
  *vn = 3;
  EXPECT_EQ(new_id & (SlotTable<int>::kMaxEntries - 1), old_id & (SlotTable<int>::kMaxEntries - 1))
      << "the freed slot is reused";
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(t.Find(old_id), nullptr);
  EXPECT_EQ(*t.Find(new_id), 3);
  EXPECT_EQ(t.size(), 2u);
}

TEST(SlotTableTest, IdsStayUniqueAcrossChurn) {
  SlotTable<int> t;
  std::set<uint64_t> seen;
  std::vector<uint64_t> live;
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 7; ++i) {
      auto [id, v] = t.Insert();
      *v = round;
      EXPECT_TRUE(seen.insert(id).second) << "id " << id << " handed out twice";
      live.push_back(id);
    }
    // Erase every other one, oldest first, so slots are reused out of order.
    for (size_t i = 0; i < live.size(); i += 2) EXPECT_TRUE(t.Erase(live[i]));
    std::vector<uint64_t> kept;
    for (size_t i = 1; i < live.size(); i += 2) kept.push_back(live[i]);
    live = kept;
    EXPECT_EQ(t.size(), live.size());
  }
  std::vector<uint64_t> ids = t.Ids();
  std::sort(ids.begin(), ids.end());
  std::sort(live.begin(), live.end());
  EXPECT_EQ(ids, live);
}

TEST(SlotTableTest, EraseIfErasesExactlyWhatMatches) {
  SlotTable<int> t;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 10; ++i) {
    auto [id, v] = t.Insert();
    *v = i;
    ids.push_back(id);
  }
  EXPECT_EQ(t.EraseIf([](uint64_t, const int& v) { return v % 3 == 0; }), 4u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(t.Find(ids[i]) == nullptr, i % 3 == 0) << i;
  }
  EXPECT_EQ(t.size(), 6u);
  EXPECT_EQ(t.EraseIf([](uint64_t, const int&) { return true; }), 6u);
  EXPECT_TRUE(t.empty());
  auto [id, v] = t.Insert();  // usable after emptying whole
  *v = 42;
  EXPECT_EQ(*t.Find(id), 42);
}

TEST(SlotTableTest, EraseFreesTheValueAtOnce) {
  SlotTable<std::shared_ptr<int>> t;
  auto [keep, vk] = t.Insert();
  auto [id, v] = t.Insert();
  auto held = std::make_shared<int>(5);
  *v = held;
  EXPECT_EQ(held.use_count(), 2);
  ASSERT_TRUE(t.Erase(id));
  EXPECT_EQ(held.use_count(), 1) << "the erased value still holds what it owned";
  auto [id2, v2] = t.Insert();
  EXPECT_EQ(*v2, nullptr) << "a reused slot starts default-constructed";
  (void)keep;
  (void)vk;
  (void)id2;
}

TEST(SlotTableTest, InsertsDoNotMoveEntries) {
  SlotTable<std::string> t;
  auto [first, p] = t.Insert();
  *p = "first";
  for (int i = 0; i < 100000; ++i) t.Insert();
  EXPECT_EQ(t.Find(first), p);
  EXPECT_EQ(*p, "first");
}

TEST(SlotTableTest, AnEmptiedTableStartsOverWithNewIds) {
  SlotTable<int> t;
  std::vector<uint64_t> before;
  for (int i = 0; i < 10; ++i) before.push_back(t.Insert().first);
  for (uint64_t id : before) ASSERT_TRUE(t.Erase(id));
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(t.Ids().empty());
  for (int i = 0; i < 10; ++i) {
    uint64_t id = t.Insert().first;
    EXPECT_EQ(std::count(before.begin(), before.end(), id), 0) << "id reused after emptying";
  }
  for (uint64_t id : before) EXPECT_EQ(t.Find(id), nullptr);
}

}  // namespace
}  // namespace meshbus
