// Tests of broker/topic_index.h: ZeroMQ prefix semantics for the local
// sessions' subscriptions, and when the data socket must (un)subscribe.
#include "broker/topic_index.h"

#include <gtest/gtest.h>

namespace meshbus {
namespace {

using Sessions = std::vector<uint64_t>;

Sessions Match(const TopicIndex& index, std::string_view topic) {
  Sessions out;
  index.Match(topic, &out);
  return out;
}

TEST(TopicIndexTest, MatchesByPrefixOncePerSession) {
  TopicIndex index;
  index.Add("ord", 1);
  index.Add("orders.eu", 2);
  index.Add("orders", 3);
  index.Add("orders.eu", 3);  // overlapping: still one delivery
  index.Add("", 4);           // everything
  const struct {
    const char* topic;
    Sessions want;
  } kCases[] = {
      {"orders.eu", {1, 2, 3, 4}},
      {"orders.eu.x", {1, 2, 3, 4}},
      {"orders.us", {1, 3, 4}},
      {"ordinal", {1, 4}},
      {"or", {4}},
      {"invoices", {4}},
  };
  for (const auto& c : kCases) EXPECT_EQ(Match(index, c.topic), c.want) << c.topic;
}

TEST(TopicIndexTest, FirstAndLastSubscriberOfAPrefixAreReported) {
  TopicIndex index;
  EXPECT_TRUE(index.Add("a", 1)) << "first subscriber: subscribe the data socket";
  EXPECT_FALSE(index.Add("a", 2));
  EXPECT_FALSE(index.Add("a", 2)) << "twice is once";
  EXPECT_TRUE(index.Has("a", 2));
  EXPECT_FALSE(index.Remove("a", 1));
  EXPECT_FALSE(index.Remove("a", 1)) << "not held: nothing changes";
  EXPECT_FALSE(index.Remove("b", 1));
  EXPECT_TRUE(index.Remove("a", 2)) << "last subscriber: unsubscribe the data socket";
  EXPECT_EQ(index.prefix_count(), 0u);
  EXPECT_TRUE(Match(index, "a").empty());
}

TEST(TopicIndexTest, RemoveSessionReturnsThePrefixesLeftEmpty) {
  TopicIndex index;
  index.Add("a", 1);
  index.Add("b", 1);
  index.Add("b", 2);
  index.Add("", 1);
  std::vector<std::string> emptied = index.RemoveSession(1);
  std::sort(emptied.begin(), emptied.end());
  EXPECT_EQ(emptied, (std::vector<std::string>{"", "a"}));
  EXPECT_EQ(Match(index, "b"), Sessions{2});
  EXPECT_TRUE(index.RemoveSession(1).empty());
  EXPECT_TRUE(index.Covers("bx"));
  EXPECT_FALSE(index.Covers("a"));
}

}  // namespace
}  // namespace meshbus
