// Tests of bin/compare_zmq.h on real sockets: every raw path carries what it
// is given end to end, so each of its figures is measured. (How fast is for
// `make compare` to say, not for a test.)

#include "bin/compare_zmq.h"

#include <gtest/gtest.h>

namespace meshbus::compare {
namespace {

TEST(CompareZmqTest, ChainsAnswerEveryCall) {
  for (IoThreads io : {IoThreads::kPerNode, IoThreads::kShared}) {
    for (int hops : {1, 3}) {
      SCOPED_TRACE(std::to_string(hops) + " hops, " +
                   (io == IoThreads::kPerNode ? "a context per node" : "one context"));
      ChainFigures f = MeasureChain(hops, io);
      EXPECT_GT(f.p50_us, 0);
      EXPECT_GE(f.p99_us, f.p50_us);
    }
  }
}

TEST(CompareZmqTest, AJoinsPathReachesTheWatcherOnAnotherNode) {
  JoinPathFigures f = MeasureJoinPath();
  EXPECT_GT(f.p50_us, 0);  // every one of the sequential calls was seen
  EXPECT_GT(f.per_s, 0);   // all 10,000 concurrent ones were seen
}

}  // namespace
}  // namespace meshbus::compare
