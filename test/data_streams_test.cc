// Tests of broker/data_streams.h: per-origin, per-topic sequence numbers of
// the data channel, losses in the middle and at the tail of a stream, epochs.
#include "broker/data_streams.h"

#include <gtest/gtest.h>

#include <set>

namespace meshbus {
namespace {

using Seqs = std::vector<std::pair<std::string, uint64_t>>;

Seqs Next(OutboundStreams& out, std::string_view topic) {
  Seqs s;
  out.Next(topic, &s);
  return s;
}

TEST(OutboundStreamsTest, NumbersEachSubscriptionAMessageMatches) {
  OutboundStreams out;
  EXPECT_TRUE(Next(out, "Porders.eu").empty()) << "nobody subscribes: not sent at all";
  out.Subscribed("Porders");
  out.Subscribed("Porders.eu");
  out.Subscribed(std::string("Binv\0g\0", 7));
  EXPECT_EQ(Next(out, "Porders.eu"), (Seqs{{"Porders", 1}, {"", 1}})) << "\"\" is the topic itself";
  EXPECT_EQ(Next(out, "Porders.us"), (Seqs{{"Porders", 2}}));
  EXPECT_EQ(Next(out, "Porders.eu.x"), (Seqs{{"Porders", 3}, {"Porders.eu", 2}}));
  EXPECT_EQ(Next(out, std::string("Binv\0g\0", 7)), (Seqs{{"", 1}}));
  EXPECT_TRUE(Next(out, "Pinvoices").empty());
}

TEST(OutboundStreamsTest, NumbersOutliveAnUnsubscription) {
  OutboundStreams out;
  out.Subscribed("Pa");
  Next(out, "Pa");
  Next(out, "Pa");
  out.Unsubscribed("Pa");
  EXPECT_FALSE(out.subscribed("Pa"));
  EXPECT_TRUE(Next(out, "Pa").empty());
  // A peer whose connection came back subscribes again: it sees 3 next, so
  // it can tell what it missed while away.
  out.Subscribed("Pa");
  EXPECT_EQ(Next(out, "Pa"), (Seqs{{"", 3}}));
}

TEST(OutboundStreamsTest, MarksAreRepeatedForSomeRoundsAfterTheLastUse) {
  OutboundStreams out;
  out.Subscribed("Pa");
  out.Subscribed("Pb");
  Next(out, "Pa");
  Next(out, "Pb");
  Next(out, "Pa");
  for (int round = 0; round < OutboundStreams::kMarkRounds; ++round) {
    Seqs marks = out.TakeMarks(100);
    std::sort(marks.begin(), marks.end());
    EXPECT_EQ(marks, (Seqs{{"Pa", 2}, {"Pb", 1}})) << "round " << round;
  }
  EXPECT_TRUE(out.TakeMarks(100).empty());
  Next(out, "Pb");
  EXPECT_EQ(out.TakeMarks(100), (Seqs{{"Pb", 2}}));
}

TEST(OutboundStreamsTest, MarksAreBoundedPerRoundAndTheRestComeLater) {
  OutboundStreams out;
  for (int i = 0; i < 10; ++i) {
    out.Subscribed("P" + std::to_string(i));
    Next(out, "P" + std::to_string(i));
  }
  std::set<std::string> seen;
  for (int round = 0; round < 3; ++round) {
    Seqs marks = out.TakeMarks(4);
    EXPECT_LE(marks.size(), 4u);
    for (auto& [p, seq] : marks) seen.insert(p);
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST(OutboundStreamsTest, ForgetsUnsubscribedStreamsFirstThenMovesTheEpoch) {
  OutboundStreams out(2);
  out.Subscribed("Pa");
  out.Subscribed("Pb");
  out.Unsubscribed("Pb");
  out.Subscribed("Pc");  // room made by forgetting Pb
  EXPECT_EQ(out.epoch(), 1u);
  EXPECT_EQ(out.stream_count(), 2u);
  out.Subscribed("Pd");  // both held: everything goes
  EXPECT_EQ(out.epoch(), 2u);
  EXPECT_EQ(Next(out, "Pd"), (Seqs{{"", 1}}));
  EXPECT_TRUE(Next(out, "Pa").empty());
}

// A table of (data or mark, seq) fed to one stream, with the verdicts.
TEST(InboundStreamsTest, VerdictsTable) {
  // Data: a batch of `count` from `seq`, of which the first `seen` came
  // before. A mark: `seq` was the last sent.
  struct Step {
    bool mark;
    uint64_t seq;
    uint64_t count;
    uint64_t seen;
    uint64_t lost;
  };
  const struct {
    const char* label;
    std::vector<Step> steps;
  } kCases[] = {
      {"in order", {{false, 1, 1, 0, 0}, {false, 2, 1, 0, 0}, {false, 3, 1, 0, 0}}},
      {"joins mid-stream", {{false, 40, 1, 0, 0}, {false, 41, 1, 0, 0}}},
      {"a hole", {{false, 1, 1, 0, 0}, {false, 4, 1, 0, 2}, {false, 5, 1, 0, 0}}},
      {"a duplicate", {{false, 1, 1, 0, 0}, {false, 1, 1, 1, 0}, {false, 2, 1, 0, 0}}},
      {"tail lost, found by a mark", {{false, 1, 1, 0, 0}, {true, 3, 0, 0, 2}, {true, 3, 0, 0, 0}}},
      {"mark of what we have", {{false, 7, 1, 0, 0}, {true, 7, 0, 0, 0}, {false, 8, 1, 0, 0}}},
      {"mark first", {{true, 9, 0, 0, 0}, {false, 10, 1, 0, 0}, {false, 12, 1, 0, 1}}},
      {"batches in order", {{false, 1, 3, 0, 0}, {false, 4, 5, 0, 0}, {false, 9, 1, 0, 0}}},
      {"a batch joins mid-stream", {{false, 40, 3, 0, 0}, {false, 43, 2, 0, 0}}},
      {"a hole before a batch", {{false, 1, 2, 0, 0}, {false, 6, 4, 0, 3}, {false, 10, 1, 0, 0}}},
      {"a batch seen in part", {{false, 1, 3, 0, 0}, {false, 2, 4, 2, 0}, {false, 6, 1, 0, 0}}},
      {"a batch seen whole", {{false, 1, 5, 0, 0}, {false, 2, 3, 3, 0}, {false, 6, 1, 0, 0}}},
      {"a mark inside a batch we have", {{false, 1, 8, 0, 0}, {true, 8, 0, 0, 0}}},
      {"tail of batches lost", {{false, 1, 4, 0, 0}, {true, 10, 0, 0, 6}}},
  };
  for (const auto& c : kCases) {
    InboundStreams in;
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const Step& s = c.steps[i];
      if (s.mark) {
        EXPECT_EQ(in.OnMark("n1", 1, "Pt", s.seq), s.lost) << c.label << " step " << i;
      } else {
        InboundStreams::Verdict v = in.OnData("n1", 1, "Pt", s.seq, s.count);
        EXPECT_EQ(v.seen, s.seen) << c.label << " step " << i;
        EXPECT_EQ(v.lost, s.lost) << c.label << " step " << i;
      }
    }
  }
}

TEST(InboundStreamsTest, StreamsAreApartPerOriginAndTopic) {
  InboundStreams in;
  EXPECT_EQ(in.OnData("n1", 1, "Pa", 5).lost, 0u);
  EXPECT_EQ(in.OnData("n1", 1, "Pb", 9).lost, 0u);
  EXPECT_EQ(in.OnData("n2", 1, "Pa", 1).lost, 0u);
  EXPECT_EQ(in.OnData("n1", 1, "Pa", 6).lost, 0u);
  EXPECT_EQ(in.OnData("n1", 1, "Pb", 11).lost, 1u);
  EXPECT_EQ(in.stream_count(), 3u);
}

TEST(InboundStreamsTest, ANewEpochOrAForgottenStreamIsNoLoss) {
  InboundStreams in;
  in.OnData("n1", 1, "Pa", 50);
  EXPECT_EQ(in.OnData("n1", 2, "Pa", 1).lost, 0u) << "the origin restarted its counters";
  in.OnData("n1", 2, "Pb", 10);
  in.ForgetUnless([](const std::string& t) { return t != "Pb"; });
  EXPECT_EQ(in.OnData("n1", 2, "Pb", 30).lost, 0u) << "resubscribed: numbers moved on meanwhile";
  in.ForgetOrigin("n1");
  EXPECT_EQ(in.stream_count(), 0u);
}

TEST(InboundStreamsTest, StreamsPerOriginAreBounded) {
  InboundStreams in(2);
  in.OnData("n1", 1, "Pa", 1);
  in.OnData("n1", 1, "Pb", 1);
  in.OnData("n1", 1, "Pc", 1);
  EXPECT_LE(in.stream_count(), 2u);
}

}  // namespace
}  // namespace meshbus
