// Tests of broker/failure_detector.h on a fake clock: time points are plain
// steady_clock values moved by hand, so no test waits.
//
// Options throughout: suspicion 500 ms, probe 400 ms, disconnect 300 ms, dead
// after 2 refused reconnect retries.

#include "broker/failure_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace meshbus {
namespace {

using namespace std::chrono_literals;
using TimePoint = FailureDetector::TimePoint;
using Names = std::vector<std::string>;

const TimePoint kT0 = TimePoint{} + 1h;
TimePoint At(int ms) {
  return kT0 + std::chrono::milliseconds(ms);
}

FailureDetector::Options TestOptions() {
  FailureDetector::Options o;
  o.suspicion_timeout = 500ms;
  o.probe_timeout = 400ms;
  o.disconnect_timeout = 300ms;
  o.refused_retries_for_dead = 2;
  return o;
}

Names Sorted(Names v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- one peer, scenario table ----------------------------------------------

enum class Act { kTick, kHeard, kProbeAnswered, kDisconnected, kConnected, kRetried };

struct Step {
  int at_ms;
  Act act;
  // For kTick: whether "p" is in the probe list and in the dead list, and
  // whether it is suspect afterwards (-1: not checked).
  bool probe = false;
  bool dead = false;
  int suspect = -1;
};

Step Tick(int ms, bool probe, bool dead, int suspect = -1) {
  return {ms, Act::kTick, probe, dead, suspect};
}
Step Do(int ms, Act act) {
  return {ms, act};
}

struct Scenario {
  const char* name;
  std::vector<Step> steps;
};

// The peer "p" is tracked at 0 ms.
const Scenario kScenarios[] = {
    {"silence: suspect and probe at 500, dead at 900, once",
     {Tick(0, false, false, 0), Tick(499, false, false, 0), Tick(500, true, false, 1),
      Tick(700, false, false, 1), Tick(899, false, false, 1), Tick(900, false, true),
      Tick(901, false, false), Tick(5000, false, false)}},
    {"heard while suspect clears it; silence starts over",
     {Tick(500, true, false, 1), Do(600, Act::kHeard), Tick(600, false, false, 0),
      Tick(900, false, false, 0), Tick(1099, false, false, 0), Tick(1100, true, false, 1),
      Tick(1499, false, false, 1), Tick(1500, false, true)}},
    {"heard just before the deadline",
     {Tick(500, true, false, 1), Do(899, Act::kHeard), Tick(900, false, false, 0),
      Tick(1398, false, false, 0), Tick(1399, true, false, 1), Tick(1798, false, false, 1),
      Tick(1799, false, true)}},
    {"a probe answer clears suspicion",
     {Tick(500, true, false, 1), Do(550, Act::kProbeAnswered), Tick(900, false, false, 0),
      Tick(1050, true, false, 1), Tick(1450, false, true)}},
    {"any message delays suspicion",
     {Do(300, Act::kHeard), Tick(500, false, false, 0), Tick(799, false, false, 0),
      Tick(800, true, false, 1), Tick(1200, false, true)}},
    {"suspicion is noticed at the tick that sees it (late tick)",
     {Tick(700, true, false, 1), Tick(1099, false, false, 1), Tick(1100, false, true)}},
    {"disconnect: probe now, two refused retries make it dead at the next tick",
     {Tick(100, false, false, 0), Do(150, Act::kDisconnected), Tick(160, true, false, 1),
      Do(170, Act::kRetried), Tick(180, false, false, 1), Do(190, Act::kRetried),
      Tick(200, false, true), Tick(210, false, false)}},
    {"disconnect: one retry is not enough, disconnect_timeout decides",
     {Do(100, Act::kDisconnected), Do(110, Act::kRetried), Tick(120, true, false, 1),
      Tick(399, false, false, 1), Tick(400, false, true), Tick(401, false, false)}},
    {"disconnect and nothing else: dead at disconnect + 300",
     {Do(100, Act::kDisconnected), Tick(101, true, false, 1), Tick(399, false, false, 1),
      Tick(400, false, true)}},
    {"disconnect, reconnect, heard: alive",
     {Do(100, Act::kDisconnected), Tick(110, true, false, 1), Do(150, Act::kConnected),
      Do(160, Act::kHeard), Tick(400, false, false, 0), Tick(600, false, false, 0),
      Tick(659, false, false, 0), Tick(660, true, false, 1), Tick(1060, false, true)}},
    {"disconnect, reconnect, silent: dead after the probe time",
     {Do(100, Act::kDisconnected), Do(350, Act::kConnected), Tick(400, true, false, 1),
      Tick(749, false, false, 1), Tick(750, false, true)}},
    {"messages heard after a disconnect do not clear it",
     {Do(100, Act::kDisconnected), Do(150, Act::kHeard), Tick(200, true, false, 1),
      Do(390, Act::kHeard), Tick(390, false, false, 1), Tick(400, false, true)}},
    {"messages heard after a disconnect do not stop refused retries",
     {Do(100, Act::kDisconnected), Do(110, Act::kHeard), Do(120, Act::kRetried),
      Do(130, Act::kHeard), Do(140, Act::kRetried), Tick(150, false, true)}},
    {"retries after a reconnect are ignored",
     {Do(100, Act::kDisconnected), Tick(110, true, false, 1), Do(120, Act::kConnected),
      Do(130, Act::kHeard), Do(140, Act::kRetried), Do(150, Act::kRetried),
      Tick(160, false, false, 0), Tick(629, false, false, 0), Tick(630, true, false, 1)}},
    {"retries without a disconnect are ignored",
     {Do(100, Act::kRetried), Do(110, Act::kRetried), Do(120, Act::kRetried),
      Tick(130, false, false, 0), Tick(500, true, false, 1)}},
    {"retries count anew after each disconnect",
     {Do(100, Act::kDisconnected), Do(110, Act::kRetried), Do(120, Act::kConnected),
      Do(125, Act::kHeard), Do(130, Act::kDisconnected), Do(140, Act::kRetried),
      Tick(150, true, false, 1), Do(160, Act::kRetried), Tick(170, false, true)}},
    {"a probe answer after a disconnect: alive, later retries ignored",
     {Do(100, Act::kDisconnected), Tick(110, true, false, 1), Do(200, Act::kProbeAnswered),
      Do(210, Act::kRetried), Do(220, Act::kRetried), Tick(400, false, false, 0),
      Tick(699, false, false, 0), Tick(700, true, false, 1)}},
    {"disconnect while suspect keeps the earlier deadline",
     {Tick(500, true, false, 1), Do(800, Act::kDisconnected), Tick(810, true, false, 1),
      Tick(899, false, false, 1), Tick(900, false, true)}},
    {"disconnect while suspect brings the deadline forward",
     {Tick(500, true, false, 1), Do(510, Act::kDisconnected), Tick(520, true, false, 1),
      Tick(809, false, false, 1), Tick(810, false, true)}},
    {"silence past the deadline with no tick in between: dead at the first tick after",
     {Tick(500, true, false, 1), Tick(10'000, false, true), Tick(20'000, false, false)}},
};

const char* ActName(Act a) {
  switch (a) {
    case Act::kTick:
      return "tick";
    case Act::kHeard:
      return "heard";
    case Act::kProbeAnswered:
      return "probe answered";
    case Act::kDisconnected:
      return "disconnected";
    case Act::kConnected:
      return "connected";
    case Act::kRetried:
      return "retried";
  }
  return "?";
}

TEST(FailureDetectorTest, Scenarios) {
  for (const Scenario& s : kScenarios) {
    SCOPED_TRACE(s.name);
    FailureDetector fd(TestOptions());
    fd.Track("p", At(0));
    EXPECT_TRUE(fd.Tracks("p"));
    EXPECT_FALSE(fd.IsSuspect("p"));
    EXPECT_EQ(fd.LastHeard("p"), At(0));
    for (const Step& step : s.steps) {
      const TimePoint now = At(step.at_ms);
      const std::string where =
          std::string(ActName(step.act)) + " at " + std::to_string(step.at_ms);
      switch (step.act) {
        case Act::kTick: {
          FailureDetector::Verdicts v = fd.Tick(now);
          EXPECT_EQ(v.probe, step.probe ? Names{"p"} : Names{}) << where;
          EXPECT_EQ(v.dead, step.dead ? Names{"p"} : Names{}) << where;
          if (step.suspect >= 0) {
            EXPECT_EQ(fd.IsSuspect("p"), step.suspect == 1) << where;
          }
          break;
        }
        case Act::kHeard:
          fd.Heard("p", now);
          break;
        case Act::kProbeAnswered:
          fd.ProbeAnswered("p", now);
          break;
        case Act::kDisconnected:
          fd.Disconnected("p", now);
          break;
        case Act::kConnected:
          fd.Connected("p", now);
          break;
        case Act::kRetried:
          fd.ConnectRetried("p", now);
          break;
      }
    }
  }
}

// ---- properties outside the table ------------------------------------------

TEST(FailureDetectorTest, HeardUpdatesLastHeard) {
  FailureDetector fd(TestOptions());
  fd.Track("p", At(0));
  fd.Heard("p", At(123));
  EXPECT_EQ(fd.LastHeard("p"), At(123));
  fd.Disconnected("p", At(200));
  fd.Heard("p", At(250));  // recorded, though it does not clear the suspicion
  EXPECT_EQ(fd.LastHeard("p"), At(250));
  EXPECT_TRUE(fd.IsSuspect("p"));
  fd.ProbeAnswered("p", At(260));
  EXPECT_EQ(fd.LastHeard("p"), At(260));
  EXPECT_FALSE(fd.IsSuspect("p"));
}

TEST(FailureDetectorTest, ForgetRemoves) {
  FailureDetector fd(TestOptions());
  fd.Track("p", At(0));
  fd.Track("q", At(0));
  fd.Disconnected("p", At(10));
  fd.ConnectRetried("p", At(20));
  fd.ConnectRetried("p", At(30));
  fd.Forget("p");
  EXPECT_FALSE(fd.Tracks("p"));
  EXPECT_TRUE(fd.Tracks("q"));
  EXPECT_FALSE(fd.IsSuspect("p"));
  EXPECT_EQ(fd.LastHeard("p"), TimePoint{});

  // Events about a forgotten peer do not bring it back.
  fd.Heard("p", At(40));
  fd.Disconnected("p", At(40));
  fd.Connected("p", At(40));
  fd.ConnectRetried("p", At(40));
  fd.ProbeAnswered("p", At(40));
  EXPECT_FALSE(fd.Tracks("p"));

  FailureDetector::Verdicts v = fd.Tick(At(50));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{});
  v = fd.Tick(At(10'000));  // q was silent all along
  EXPECT_EQ(v.probe, Names{"q"});
  EXPECT_EQ(v.dead, Names{});
  fd.Forget("q");
  fd.Forget("never-tracked");
  v = fd.Tick(At(20'000));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{});
}

TEST(FailureDetectorTest, UntrackedPeersAreNeverReported) {
  FailureDetector fd(TestOptions());
  EXPECT_FALSE(fd.Tracks("p"));
  fd.Heard("p", At(0));
  fd.Disconnected("p", At(0));
  fd.ConnectRetried("p", At(1));
  fd.ConnectRetried("p", At(2));
  FailureDetector::Verdicts v = fd.Tick(At(10'000));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{});
  EXPECT_FALSE(fd.Tracks("p"));
}

// A dead verdict is given once; tracking the peer again (a new incarnation met)
// starts it afresh, and it can be declared dead again.
TEST(FailureDetectorTest, VerdictOncePerTrack) {
  FailureDetector fd(TestOptions());
  fd.Track("p", At(0));
  EXPECT_EQ(fd.Tick(At(500)).probe, Names{"p"});
  EXPECT_EQ(fd.Tick(At(900)).dead, Names{"p"});
  for (int ms : {901, 1000, 5000, 60'000}) {
    FailureDetector::Verdicts v = fd.Tick(At(ms));
    EXPECT_EQ(v.dead, Names{}) << ms;
    EXPECT_EQ(v.probe, Names{}) << ms;
  }
  // Heard after the verdict: still not reported again, nor revived.
  fd.Heard("p", At(60'100));
  EXPECT_EQ(fd.Tick(At(60'200)).dead, Names{});
  EXPECT_EQ(fd.Tick(At(70'000)).dead, Names{});

  fd.Track("p", At(100'000));
  EXPECT_FALSE(fd.IsSuspect("p"));
  EXPECT_EQ(fd.LastHeard("p"), At(100'000));
  EXPECT_EQ(fd.Tick(At(100'499)).probe, Names{});
  EXPECT_EQ(fd.Tick(At(100'500)).probe, Names{"p"});
  EXPECT_EQ(fd.Tick(At(100'899)).dead, Names{});
  EXPECT_EQ(fd.Tick(At(100'900)).dead, Names{"p"});
  EXPECT_EQ(fd.Tick(At(100'901)).dead, Names{});
}

TEST(FailureDetectorTest, RefusedRetriesVerdictOnce) {
  FailureDetector fd(TestOptions());
  fd.Track("p", At(0));
  fd.Disconnected("p", At(10));
  fd.ConnectRetried("p", At(20));
  fd.ConnectRetried("p", At(30));
  fd.ConnectRetried("p", At(40));
  FailureDetector::Verdicts v = fd.Tick(At(50));
  EXPECT_EQ(v.dead, Names{"p"});
  EXPECT_EQ(v.probe, Names{}) << "a dead peer is not probed";
  fd.ConnectRetried("p", At(60));
  EXPECT_EQ(fd.Tick(At(70)).dead, Names{});
  EXPECT_EQ(fd.Tick(At(400)).dead, Names{}) << "nor again at the disconnect deadline";
}

TEST(FailureDetectorTest, TrackAgainResetsState) {
  FailureDetector fd(TestOptions());
  fd.Track("p", At(0));
  fd.Disconnected("p", At(10));
  fd.ConnectRetried("p", At(20));
  fd.Track("p", At(30));  // met again: a fresh start
  EXPECT_FALSE(fd.IsSuspect("p"));
  fd.ConnectRetried("p", At(40));  // not disconnected any more: ignored
  FailureDetector::Verdicts v = fd.Tick(At(50));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{});
  EXPECT_EQ(fd.Tick(At(529)).probe, Names{});
  EXPECT_EQ(fd.Tick(At(530)).probe, Names{"p"});
}

// Several peers on different paths; the lists of each Tick, exactly.
TEST(FailureDetectorTest, SeveralPeersPerTick) {
  FailureDetector fd(TestOptions());
  for (const char* p : {"silent", "chatty", "refused", "flapping", "late"}) fd.Track(p, At(0));
  fd.Track("late", At(300));

  auto heard_chatty = [&](int ms) { fd.Heard("chatty", At(ms)); };

  fd.Disconnected("refused", At(100));
  fd.Disconnected("flapping", At(100));
  heard_chatty(100);
  FailureDetector::Verdicts v = fd.Tick(At(110));
  EXPECT_EQ(Sorted(v.probe), (Names{"flapping", "refused"}));
  EXPECT_EQ(v.dead, Names{});

  fd.ConnectRetried("refused", At(150));
  fd.ConnectRetried("refused", At(160));
  fd.Connected("flapping", At(170));
  fd.Heard("flapping", At(180));
  heard_chatty(200);
  v = fd.Tick(At(200));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{"refused"});

  heard_chatty(400);
  v = fd.Tick(At(500));
  EXPECT_EQ(v.probe, Names{"silent"});
  EXPECT_EQ(v.dead, Names{});

  heard_chatty(600);
  v = fd.Tick(At(680));
  EXPECT_EQ(v.probe, Names{"flapping"});  // silent since 180
  EXPECT_EQ(v.dead, Names{});

  v = fd.Tick(At(800));
  EXPECT_EQ(v.probe, Names{"late"});  // tracked at 300
  EXPECT_EQ(v.dead, Names{});

  heard_chatty(850);
  v = fd.Tick(At(900));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{"silent"});

  fd.ProbeAnswered("late", At(1000));
  heard_chatty(1050);
  v = fd.Tick(At(1080));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{"flapping"});

  heard_chatty(1100);
  v = fd.Tick(At(1200));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{});  // late answered; the dead ones are not repeated

  for (const char* p : {"silent", "refused", "flapping"}) fd.Forget(p);
  v = fd.Tick(At(1500));
  EXPECT_EQ(v.probe, Names{"late"});
  EXPECT_EQ(v.dead, Names{});
  heard_chatty(1600);
  v = fd.Tick(At(1900));
  EXPECT_EQ(v.probe, Names{});
  EXPECT_EQ(v.dead, Names{"late"});
  EXPECT_FALSE(fd.IsSuspect("chatty"));
}

TEST(FailureDetectorTest, DefaultOptions) {
  FailureDetector::Options o;
  EXPECT_EQ(o.suspicion_timeout, 500ms);
  EXPECT_EQ(o.probe_timeout, 400ms);
  EXPECT_EQ(o.disconnect_timeout, 300ms);
  EXPECT_EQ(o.refused_retries_for_dead, 2);
}

}  // namespace
TEST(FailureDetectorShiftTest, AStallOfTheCallerIsNotSilenceOfThePeers) {
  FailureDetector::Options o;
  o.suspicion_timeout = std::chrono::milliseconds(500);
  o.probe_timeout = std::chrono::milliseconds(400);
  FailureDetector d(o);
  FailureDetector::TimePoint t0{};
  d.Track("p", t0);
  // Frozen for 2 s: shifted, the peer is neither suspect nor dead.
  d.Shift(std::chrono::milliseconds(2000));
  auto v = d.Tick(t0 + std::chrono::milliseconds(2000));
  EXPECT_TRUE(v.dead.empty());
  EXPECT_TRUE(v.probe.empty());
  EXPECT_FALSE(d.IsSuspect("p"));
  // Without news it is suspected 500 ms after the shifted time, as usual.
  v = d.Tick(t0 + std::chrono::milliseconds(2500));
  EXPECT_EQ(v.probe, std::vector<std::string>{"p"});
  // A suspect's deadline moves on too.
  d.Shift(std::chrono::milliseconds(1000));
  v = d.Tick(t0 + std::chrono::milliseconds(3300));
  EXPECT_TRUE(v.dead.empty());
  v = d.Tick(t0 + std::chrono::milliseconds(3900));
  EXPECT_EQ(v.dead, std::vector<std::string>{"p"});
}

}  // namespace meshbus
