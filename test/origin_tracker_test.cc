// Tests of broker/origin_tracker.h: following one origin's numbered deltas,
// detecting gaps, buffering during a resync and resuming after a snapshot.
// Time is a plain steady_clock::time_point moved by hand.

#include "broker/origin_tracker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace meshbus {
namespace {

using namespace std::chrono_literals;
using Verdict = OriginTracker::Verdict;

const OriginTracker::TimePoint kT0 = OriginTracker::TimePoint{} + 1h;

// A delta whose one op carries its own sequence number as the session, so a
// returned delta can be told from another with the same seq.
wire::PeerDelta Delta(uint64_t seq) {
  return wire::PeerDelta{{"n2", 7}, seq, {{wire::DeltaOpKind::kJoin, "s", "g", seq * 100}}};
}

std::vector<uint64_t> Seqs(const std::deque<wire::PeerDelta>& deltas) {
  std::vector<uint64_t> out;
  for (const wire::PeerDelta& d : deltas) {
    EXPECT_EQ(d.ops.size(), 1u);
    if (d.ops.size() == 1) {
      EXPECT_EQ(d.ops[0].session, d.seq * 100) << "delta " << d.seq << " was altered";
    }
    out.push_back(d.seq);
  }
  return out;
}

const char* Name(Verdict v) {
  switch (v) {
    case Verdict::kApply:
      return "apply";
    case Verdict::kIgnore:
      return "ignore";
    case Verdict::kBuffer:
      return "buffer";
    case Verdict::kResync:
      return "resync";
  }
  return "?";
}

TEST(OriginTrackerTest, InOrderDeltasApply) {
  OriginTracker t;
  EXPECT_EQ(t.applied(), 0u);
  EXPECT_FALSE(t.resyncing());
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    EXPECT_EQ(Name(t.OnDelta(Delta(seq), kT0)), Name(Verdict::kApply)) << seq;
    EXPECT_EQ(t.applied(), seq);
  }
  EXPECT_FALSE(t.resyncing());
}

TEST(OriginTrackerTest, FollowsFromTheSnapshotItStartsAt) {
  OriginTracker t(10);
  EXPECT_EQ(t.applied(), 10u);
  EXPECT_EQ(Name(t.OnDelta(Delta(11), kT0)), Name(Verdict::kApply));
  EXPECT_EQ(t.applied(), 11u);
}

// A table of delta sequences fed to a tracker that starts at 3, with the
// verdict expected for each.
TEST(OriginTrackerTest, VerdictsTable) {
  const struct {
    const char* label;
    std::vector<std::pair<uint64_t, Verdict>> steps;
    uint64_t applied_after;
    bool resyncing_after;
  } kCases[] = {
      {"in order", {{4, Verdict::kApply}, {5, Verdict::kApply}}, 5, false},
      {"duplicate", {{4, Verdict::kApply}, {4, Verdict::kIgnore}, {5, Verdict::kApply}}, 5, false},
      {"older than the snapshot",
       {{1, Verdict::kIgnore}, {3, Verdict::kIgnore}, {4, Verdict::kApply}},
       4,
       false},
      {"seq 0", {{0, Verdict::kIgnore}}, 3, false},
      {"gap", {{5, Verdict::kResync}}, 3, true},
      {"gap, then later deltas buffered",
       {{4, Verdict::kApply}, {6, Verdict::kResync}, {7, Verdict::kBuffer}, {9, Verdict::kBuffer}},
       4,
       true},
      {"old ones still ignored while resyncing",
       {{5, Verdict::kResync}, {3, Verdict::kIgnore}, {2, Verdict::kIgnore}, {6, Verdict::kBuffer}},
       3,
       true},
      {"the next one after a gap is buffered, not applied",
       {{6, Verdict::kResync}, {4, Verdict::kBuffer}},
       3,
       true},
      {"a huge jump", {{UINT64_MAX, Verdict::kResync}}, 3, true},
  };
  for (const auto& c : kCases) {
    OriginTracker t(3);
    for (const auto& [seq, want] : c.steps) {
      EXPECT_EQ(Name(t.OnDelta(Delta(seq), kT0)), Name(want)) << c.label << ", seq " << seq;
    }
    EXPECT_EQ(t.applied(), c.applied_after) << c.label;
    EXPECT_EQ(t.resyncing(), c.resyncing_after) << c.label;
  }
}

// Buffered deltas (after a gap at `first`), then a snapshot at `snapshot`.
TEST(OriginTrackerTest, OnSnapshotTable) {
  const struct {
    const char* label;
    std::vector<uint64_t> buffered;  // the first one opens the gap
    uint64_t snapshot;
    std::vector<uint64_t> want_follow;
    uint64_t want_applied;
    bool want_resync_again;
  } kCases[] = {
      {"all follow the snapshot", {3, 4, 5}, 2, {3, 4, 5}, 5, false},
      {"covered ones are dropped", {3, 4, 5}, 4, {5}, 5, false},
      {"snapshot at the last buffered", {3, 4, 5}, 5, {}, 5, false},
      {"snapshot beyond everything buffered", {3, 4, 5}, 9, {}, 9, false},
      {"a gap inside the buffer", {3, 4, 6, 7}, 2, {3, 4}, 4, true},
      {"a gap inside the buffer, after covered ones", {3, 4, 6, 7}, 3, {4}, 4, true},
      {"the gap is before the first buffered", {5, 6}, 3, {}, 3, true},
      {"snapshot jumps the gap", {3, 4, 6, 7}, 5, {6, 7}, 7, false},
      {"duplicates kept once", {3, 3, 4, 4, 4}, 2, {3, 4}, 4, false},
  };
  for (const auto& c : kCases) {
    OriginTracker t(1);
    ASSERT_EQ(Name(t.OnDelta(Delta(c.buffered.front()), kT0)), Name(Verdict::kResync)) << c.label;
    for (size_t i = 1; i < c.buffered.size(); ++i) {
      EXPECT_EQ(Name(t.OnDelta(Delta(c.buffered[i]), kT0)), Name(Verdict::kBuffer)) << c.label;
    }
    ASSERT_FALSE(t.IsStale(c.snapshot)) << c.label;
    bool resync_again = !c.want_resync_again;
    std::deque<wire::PeerDelta> follow = t.OnSnapshot(c.snapshot, kT0 + 10ms, &resync_again);
    EXPECT_EQ(Seqs(follow), c.want_follow) << c.label;
    EXPECT_EQ(t.applied(), c.want_applied) << c.label;
    EXPECT_EQ(resync_again, c.want_resync_again) << c.label;
    EXPECT_EQ(t.resyncing(), c.want_resync_again) << c.label;
    if (!c.want_resync_again) {
      // Back to normal: the next delta applies.
      EXPECT_EQ(Name(t.OnDelta(Delta(c.want_applied + 1), kT0)), Name(Verdict::kApply)) << c.label;
    }
  }
}

TEST(OriginTrackerTest, SecondSnapshotAfterAGapInTheBuffer) {
  OriginTracker t(1);
  ASSERT_EQ(t.OnDelta(Delta(3), kT0), Verdict::kResync);
  for (uint64_t seq : {4, 6, 7}) ASSERT_EQ(t.OnDelta(Delta(seq), kT0), Verdict::kBuffer);

  bool again = false;
  EXPECT_EQ(Seqs(t.OnSnapshot(2, kT0 + 10ms, &again)), (std::vector<uint64_t>{3, 4}));
  ASSERT_TRUE(again);
  EXPECT_TRUE(t.resyncing());
  // The resync starts anew at the time of that snapshot.
  EXPECT_FALSE(t.ResyncOverdue(kT0 + 10ms + 99ms, 100ms));
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 10ms + 100ms, 100ms));
  // Later deltas keep being buffered behind what remained.
  EXPECT_EQ(t.OnDelta(Delta(8), kT0), Verdict::kBuffer);
  EXPECT_EQ(t.OnDelta(Delta(4), kT0), Verdict::kIgnore);
  EXPECT_TRUE(t.IsStale(3));
  EXPECT_FALSE(t.IsStale(4));

  EXPECT_EQ(Seqs(t.OnSnapshot(5, kT0 + 20ms, &again)), (std::vector<uint64_t>{6, 7, 8}));
  EXPECT_FALSE(again);
  EXPECT_FALSE(t.resyncing());
  EXPECT_EQ(t.applied(), 8u);
  // Nothing left buffered.
  EXPECT_TRUE(t.OnSnapshot(8, kT0 + 30ms, &again).empty());
  EXPECT_FALSE(again);
}

TEST(OriginTrackerTest, HeartbeatWithAHigherSeqStartsAResync) {
  OriginTracker t(5);
  EXPECT_FALSE(t.OnHeartbeat(5, kT0)) << "equal";
  EXPECT_FALSE(t.OnHeartbeat(4, kT0)) << "lower";
  EXPECT_FALSE(t.OnHeartbeat(0, kT0)) << "zero";
  EXPECT_FALSE(t.resyncing());

  EXPECT_TRUE(t.OnHeartbeat(6, kT0 + 5ms));
  EXPECT_TRUE(t.resyncing());
  EXPECT_EQ(t.applied(), 5u);
  // Already resyncing: no second request, and the request time is not moved.
  EXPECT_FALSE(t.OnHeartbeat(7, kT0 + 50ms));
  EXPECT_FALSE(t.OnHeartbeat(6, kT0 + 50ms));
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 105ms, 100ms));

  // Deltas now wait for the snapshot.
  EXPECT_EQ(t.OnDelta(Delta(6), kT0), Verdict::kBuffer);
  EXPECT_EQ(t.OnDelta(Delta(7), kT0), Verdict::kBuffer);
  bool again = true;
  EXPECT_EQ(Seqs(t.OnSnapshot(6, kT0 + 110ms, &again)), (std::vector<uint64_t>{7}));
  EXPECT_FALSE(again);
  EXPECT_FALSE(t.OnHeartbeat(7, kT0 + 120ms));
  EXPECT_TRUE(t.OnHeartbeat(8, kT0 + 120ms));
}

TEST(OriginTrackerTest, HeartbeatAfterAppliedDeltasIsQuiet) {
  OriginTracker t;
  ASSERT_EQ(t.OnDelta(Delta(1), kT0), Verdict::kApply);
  ASSERT_EQ(t.OnDelta(Delta(2), kT0), Verdict::kApply);
  EXPECT_FALSE(t.OnHeartbeat(2, kT0));
  EXPECT_FALSE(t.resyncing());
}

TEST(OriginTrackerTest, IsStale) {
  OriginTracker t(10);
  EXPECT_TRUE(t.IsStale(0));
  EXPECT_TRUE(t.IsStale(9));
  EXPECT_FALSE(t.IsStale(10));
  EXPECT_FALSE(t.IsStale(11));
  ASSERT_EQ(t.OnDelta(Delta(11), kT0), Verdict::kApply);
  ASSERT_EQ(t.OnDelta(Delta(12), kT0), Verdict::kApply);
  EXPECT_TRUE(t.IsStale(10));
  EXPECT_TRUE(t.IsStale(11));
  EXPECT_FALSE(t.IsStale(12));
  // Buffered deltas are not applied: a snapshot that covers them is not stale.
  ASSERT_EQ(t.OnDelta(Delta(14), kT0), Verdict::kResync);
  ASSERT_EQ(t.OnDelta(Delta(15), kT0), Verdict::kBuffer);
  EXPECT_FALSE(t.IsStale(13));
}

TEST(OriginTrackerTest, ResyncOverdue) {
  OriginTracker t(1);
  EXPECT_FALSE(t.ResyncOverdue(kT0 + 1h, 100ms)) << "not resyncing";

  ASSERT_EQ(t.OnDelta(Delta(3), kT0), Verdict::kResync);  // requested at kT0
  EXPECT_FALSE(t.ResyncOverdue(kT0, 100ms));
  EXPECT_FALSE(t.ResyncOverdue(kT0 + 99ms, 100ms));
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 100ms, 100ms));
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 1h, 100ms));

  // Asked again: the clock restarts from the new request.
  t.MarkResyncRequested(kT0 + 100ms);
  EXPECT_FALSE(t.ResyncOverdue(kT0 + 199ms, 100ms));
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 200ms, 100ms));
  // Buffered deltas do not move it.
  ASSERT_EQ(t.OnDelta(Delta(4), kT0 + 150ms), Verdict::kBuffer);
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 200ms, 100ms));

  bool again = true;
  t.OnSnapshot(4, kT0 + 210ms, &again);
  EXPECT_FALSE(again);
  EXPECT_FALSE(t.ResyncOverdue(kT0 + 1h, 100ms)) << "answered";
}

TEST(OriginTrackerTest, StartResyncOnRequest) {
  OriginTracker t(4);
  t.StartResync(kT0);
  EXPECT_TRUE(t.resyncing());
  EXPECT_TRUE(t.ResyncOverdue(kT0 + 1s, 1s));
  EXPECT_EQ(t.OnDelta(Delta(5), kT0), Verdict::kBuffer);
  bool again = true;
  EXPECT_EQ(Seqs(t.OnSnapshot(4, kT0, &again)), (std::vector<uint64_t>{5}));
  EXPECT_FALSE(again);
  EXPECT_EQ(t.applied(), 5u);
}

TEST(OriginTrackerTest, BufferIsBoundedAndDropsTheOldest) {
  constexpr size_t kMax = OriginTracker::kMaxBuffered;
  constexpr uint64_t kExtra = 10;
  OriginTracker t(0);
  // Seqs 2 .. kMax + kExtra + 1 are kept: kMax + kExtra deltas.
  ASSERT_EQ(t.OnDelta(Delta(2), kT0), Verdict::kResync);
  const uint64_t last = kMax + kExtra + 1;
  for (uint64_t seq = 3; seq <= last; ++seq) {
    ASSERT_EQ(t.OnDelta(Delta(seq), kT0), Verdict::kBuffer) << seq;
  }
  EXPECT_EQ(t.dropped_from_buffer(), kExtra);

  // Seqs 2 .. kExtra + 1 were dropped: a snapshot at 1 leaves a gap.
  bool again = false;
  EXPECT_TRUE(t.OnSnapshot(1, kT0, &again).empty());
  EXPECT_TRUE(again);
  EXPECT_EQ(t.applied(), 1u);

  // A snapshot that covers the dropped ones gets every kept delta back.
  std::deque<wire::PeerDelta> follow = t.OnSnapshot(kExtra + 1, kT0, &again);
  EXPECT_FALSE(again);
  ASSERT_EQ(follow.size(), kMax);
  EXPECT_EQ(follow.front().seq, kExtra + 2);
  EXPECT_EQ(follow.back().seq, last);
  for (size_t i = 1; i < follow.size(); ++i) ASSERT_EQ(follow[i].seq, follow[i - 1].seq + 1);
  EXPECT_EQ(t.applied(), last);
  EXPECT_EQ(t.dropped_from_buffer(), kExtra);
}

TEST(OriginTrackerTest, BufferAtExactlyTheBoundDropsNothing) {
  constexpr size_t kMax = OriginTracker::kMaxBuffered;
  OriginTracker t(0);
  for (uint64_t seq = 2; seq <= kMax + 1; ++seq) t.OnDelta(Delta(seq), kT0);
  EXPECT_EQ(t.dropped_from_buffer(), 0u);
  t.OnDelta(Delta(kMax + 2), kT0);
  EXPECT_EQ(t.dropped_from_buffer(), 1u);
}

}  // namespace
}  // namespace meshbus
