// Randomized runs of the Raft core (broker/raft.h) under the simulator
// (test/raft_sim.h): many seeds of thousands of steps each, with loss,
// duplication, delays, partitions, crash-restarts, proposals, reads and
// compactions, every invariant checked after every input; then liveness once
// everything is healed. A failure names its seed and step; replay one seed:
//   RAFT_SIM_SEED=<seed> RAFT_SIM_VOTERS=<n> RAFT_SIM_STEPS=<steps>
//   build/bin/raft_test --gtest_filter='*Replay*'

#include "test/raft_sim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace meshbus::raft::sim {
namespace {

// Ticks allowed, after healing, to elect a leader, commit and apply an entry
// everywhere and serve a read. Elections take 10..20 ticks; the bound leaves
// room for a few split votes and for laggards to catch up by snapshot.
constexpr int kLivenessTicks = 400;

// Append limits by seed: (entries per append, appends in flight). One entry
// per append opens the window of Figure 8 (an old entry on a majority without
// the new leader's no-op); one append in flight exercises pausing. Both at
// once is live but too slow for a fixed liveness bound.
constexpr std::pair<size_t, size_t> kAppendLimits[] = {{1, 4}, {2, 2},  {8, 1},
                                                       {8, 4}, {1, 16}, {64, 16}};

void SetAppendLimits(Options* options) {
  const auto& [entries, inflight] = kAppendLimits[options->seed % std::size(kAppendLimits)];
  options->raft.max_entries_per_append = entries;
  options->raft.max_inflight_appends = inflight;
}

struct Sweep {
  const char* label;
  int voters;
  int learners;
  uint64_t first_seed;
  uint64_t seeds;
  int steps;
};

void Add(Stats* total, const Stats& s) {
  total->steps += s.steps;
  total->leaders += s.leaders;
  total->committed += s.committed;
  total->proposals += s.proposals;
  total->reads_ok += s.reads_ok;
  total->reads_failed += s.reads_failed;
  total->crashes += s.crashes;
  total->pauses += s.pauses;
  total->partitions += s.partitions;
  total->compactions += s.compactions;
  total->snapshots_installed += s.snapshots_installed;
  total->delivered += s.delivered;
  total->dropped += s.dropped;
}

std::string ReplayHint(const Sweep& sweep, uint64_t seed) {
  return "\nreplay: RAFT_SIM_SEED=" + std::to_string(seed) +
         " RAFT_SIM_VOTERS=" + std::to_string(sweep.voters) +
         " RAFT_SIM_STEPS=" + std::to_string(sweep.steps) +
         " build/bin/raft_test --gtest_filter='*Replay*'";
}

void RunSweep(const Sweep& sweep) {
  Stats total;
  int slowest_recovery = 0;
  for (uint64_t seed = sweep.first_seed; seed < sweep.first_seed + sweep.seeds; ++seed) {
    Options options;
    options.seed = seed;
    options.voters = sweep.voters;
    options.learners = sweep.learners;
    SetAppendLimits(&options);
    Simulator sim(options);
    Status s = sim.Run(sweep.steps);
    ASSERT_TRUE(s.ok()) << s.ToString() << ReplayHint(sweep, seed);
    int ticks = 0;
    s = sim.CheckLiveness(kLivenessTicks, &ticks);
    ASSERT_TRUE(s.ok()) << s.ToString() << ReplayHint(sweep, seed);
    slowest_recovery = std::max(slowest_recovery, ticks);
    Add(&total, sim.stats());
  }
  // Each run must have been eventful, or it proves little.
  EXPECT_GT(total.committed, sweep.seeds * 20) << sweep.label;
  EXPECT_GT(total.reads_ok, sweep.seeds * 5) << sweep.label;
  std::printf(
      "[ raft sim ] %s: seeds %llu..%llu x %d steps (%llu steps): %llu leaders, %llu entries "
      "committed, %llu reads ok and %llu failed, %llu crashes, %llu pauses, %llu partition "
      "changes, %llu "
      "compactions, %llu snapshots installed, %llu messages delivered and %llu lost; healed "
      "clusters recovered within %d ticks (bound %d)\n",
      sweep.label, static_cast<unsigned long long>(sweep.first_seed),
      static_cast<unsigned long long>(sweep.first_seed + sweep.seeds - 1), sweep.steps,
      static_cast<unsigned long long>(total.steps), static_cast<unsigned long long>(total.leaders),
      static_cast<unsigned long long>(total.committed),
      static_cast<unsigned long long>(total.reads_ok),
      static_cast<unsigned long long>(total.reads_failed),
      static_cast<unsigned long long>(total.crashes), static_cast<unsigned long long>(total.pauses),
      static_cast<unsigned long long>(total.partitions),
      static_cast<unsigned long long>(total.compactions),
      static_cast<unsigned long long>(total.snapshots_installed),
      static_cast<unsigned long long>(total.delivered),
      static_cast<unsigned long long>(total.dropped), slowest_recovery, kLivenessTicks);
}

TEST(RaftSimTest, ThreeVotersAndALearner) {
  RunSweep({"3 voters + 1 learner", 3, 1, 1, 400, 5000});
}

TEST(RaftSimTest, FiveVotersAndALearner) {
  RunSweep({"5 voters + 1 learner", 5, 1, 10001, 250, 5000});
}

TEST(RaftSimTest, OneVoterAndALearner) {
  RunSweep({"1 voter + 1 learner", 1, 1, 20001, 30, 3000});
}

// CheckQuorum: a leader cut off with a minority stops leading within two
// CheckQuorum periods, and the minority side then knows no leader; the
// majority elects another; what was proposed on the minority side is never
// committed.
TEST(RaftSimTest, MinorityLeaderStepsDown) {
  const Config raft = Options{}.raft;
  const int step_down_bound = 2 * raft.election_ticks_min + 1;
  const int no_leader_bound = step_down_bound + raft.election_ticks_max;
  const int election_bound = 200;
  int slowest_step_down = 0;
  int slowest_election = 0;
  int runs = 0;
  for (int voters : {3, 5}) {
    for (uint64_t seed = 1; seed <= 50; ++seed, ++runs) {
      Options options;
      options.seed = 30000 + seed;
      options.voters = voters;
      Simulator sim(options);
      sim.StopFaults();
      ASSERT_TRUE(sim.Run(100).ok());
      std::vector<std::string> leaders = sim.Leaders();
      ASSERT_EQ(leaders.size(), 1u) << "seed " << options.seed << sim.Describe();
      const std::string old = leaders[0];
      const uint64_t old_term = sim.node(old)->term();
      std::vector<std::string> minority = {old};
      for (const std::string& v : sim.voters()) {
        if (minority.size() < static_cast<size_t>(voters - 1) / 2 && v != old)
          minority.push_back(v);
      }
      sim.Isolate(minority);
      ASSERT_TRUE(sim.Propose(old, "minority-write").ok());

      int ticks = 0;
      while (sim.node(old)->role() == Role::kLeader && ticks <= step_down_bound) {
        ASSERT_TRUE(sim.Step().ok());
        ++ticks;
      }
      EXPECT_LE(ticks, step_down_bound) << "seed " << options.seed << sim.Describe();
      slowest_step_down = std::max(slowest_step_down, ticks);
      for (; ticks < no_leader_bound; ++ticks) ASSERT_TRUE(sim.Step().ok());
      for (const std::string& id : minority) {
        EXPECT_EQ(sim.node(id)->leader(), "") << "seed " << options.seed << sim.Describe();
        EXPECT_NE(sim.node(id)->role(), Role::kLeader) << "seed " << options.seed;
      }

      int election = 0;
      while (sim.Leaders().empty() && election < election_bound) {
        ASSERT_TRUE(sim.Step().ok());
        ++election;
      }
      slowest_election = std::max(slowest_election, election);
      leaders = sim.Leaders();
      ASSERT_EQ(leaders.size(), 1u) << "seed " << options.seed << sim.Describe();
      EXPECT_GT(sim.node(leaders[0])->term(), old_term);
      EXPECT_EQ(std::count(minority.begin(), minority.end(), leaders[0]), 0);

      int recovery = 0;
      Status s = sim.CheckLiveness(kLivenessTicks, &recovery);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_FALSE(sim.EverCommitted("minority-write")) << "seed " << options.seed;
    }
  }
  std::printf(
      "[ raft sim ] %d isolated leaders stepped down within %d ticks (bound %d); the majority "
      "had a new leader at most %d ticks after that (bound %d)\n",
      runs, slowest_step_down, step_down_bound, no_leader_bound + slowest_election - 1,
      no_leader_bound + election_bound);
}

// Replays one seed of a sweep, named by the environment (see the top).
TEST(RaftSimTest, Replay) {
  const char* seed = std::getenv("RAFT_SIM_SEED");
  if (seed == nullptr) GTEST_SKIP() << "set RAFT_SIM_SEED to replay a seed";
  const char* voters = std::getenv("RAFT_SIM_VOTERS");
  const char* steps = std::getenv("RAFT_SIM_STEPS");
  Options options;
  options.seed = std::strtoull(seed, nullptr, 10);
  options.voters = voters != nullptr ? std::atoi(voters) : 3;
  SetAppendLimits(&options);
  Simulator sim(options);
  Status s = sim.Run(steps != nullptr ? std::atoi(steps) : 5000);
  ASSERT_TRUE(s.ok()) << s.ToString();
  int ticks = 0;
  s = sim.CheckLiveness(kLivenessTicks, &ticks);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::printf("[ raft sim ] seed %s passed%s\n", seed, sim.Describe().c_str());
}

}  // namespace
}  // namespace meshbus::raft::sim
