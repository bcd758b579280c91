// Simulator: a cluster of Raft cores (broker/raft.h) on a simulated network,
// driven by a seeded PRNG so that every run can be replayed exactly. Not
// thread-safe; no clocks, no sleeps: one step is one tick of every node's
// logical clock, plus the deliveries due at it.
//
// The network loses, duplicates, delays (so reorders) messages and has
// partitions that come and go (random splits, an isolated node, the leader
// cut off, one-way cuts). Nodes crash (the leader more often than others) and
// restart from what their simulated storage holds; each Ready is persisted
// before its messages enter the network, as the broker does. Nodes also
// pause (a frozen process: no ticks, messages wait) and wake up believing
// what they believed. Random proposals, linearizable reads and compactions
// run throughout.
//
// After every input the simulator checks, over the whole history:
//  - election safety: at most one leader per term;
//  - log matching: two logs holding (index, term) agree on every entry up to it;
//  - leader completeness: a leader of term T holds every entry committed in an
//    earlier term; no committed entry is ever overwritten;
//  - state machine safety: every node applies a prefix of one sequence;
//  - durable votes: a node never votes twice in a term, nor goes back a term;
//  - linearizable reads: a successful read covers every write committed
//    before it was requested;
//  - no message between correct nodes is ever rejected as malformed.
// The first violation ends the run with the seed and the step.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "broker/raft.h"
#include "topics/status.h"

namespace meshbus::raft::sim {

struct Options {
  uint64_t seed = 1;
  int voters = 3;
  int learners = 1;
  // Per message.
  double loss = 0.05;
  double duplicate = 0.02;
  int max_delay = 3;         // ticks; delivered 1..max_delay ticks after it is sent
  double long_delay = 0.01;  // ... or, this often, 1..long_delay_max ticks
  int long_delay_max = 40;
  // Per step.
  double partition_change = 0.01;
  double crash = 0.001;           // per running node
  double crash_leader = 0.002;    // a current leader, chosen at random
  double crash_new_leader = 0.1;  // a node just elected, within a few steps
  int max_down_steps = 60;
  double pause = 0.001;  // per running node
  int max_pause_steps = 40;
  double skip_tick = 0.05;  // per node: its clock runs slow
  double propose = 0.3;
  double read = 0.1;
  double compact = 0.02;
  // Timeouts and limits; self, voters and seed are set per node.
  Config raft = SmallAppends();

  // Config's timeouts, with appends small enough that batching, the
  // in-flight window and probing are exercised all the time.
  static Config SmallAppends() {
    Config c;
    c.max_entries_per_append = 8;
    c.max_inflight_appends = 4;
    return c;
  }
};

struct Stats {
  uint64_t steps = 0;
  uint64_t leaders = 0;    // terms that had a leader
  uint64_t committed = 0;  // entries committed (no-ops included)
  uint64_t proposals = 0;  // accepted by a leader
  uint64_t reads_ok = 0;
  uint64_t reads_failed = 0;
  uint64_t crashes = 0;
  uint64_t pauses = 0;
  uint64_t partitions = 0;
  uint64_t compactions = 0;
  uint64_t snapshots_installed = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
};

class Simulator {
 public:
  explicit Simulator(Options options);

  // `steps` random steps, checking every invariant; stops at the first
  // violation, whose status names the seed and the step.
  Status Run(int steps);
  Status Step();

  // Turns every random fault and all random load off (the network keeps its
  // short delays), e.g. before a directed scenario.
  void StopFaults();
  void HealNetwork();
  // Cuts every link between `group` and the other nodes, both ways.
  void Isolate(const std::vector<std::string>& group);
  // Heals, restarts every crashed node and stops faults, then requires within
  // `max_ticks` a leader, a fresh entry applied on every node, and a
  // successful read. Sets *ticks to the ticks it took.
  Status CheckLiveness(int max_ticks, int* ticks);

  Result<uint64_t> Propose(const std::string& id, std::string data);
  bool EverCommitted(const std::string& data) const;
  std::vector<std::string> Leaders() const;
  const Raft* node(const std::string& id) const;  // nullptr while crashed
  const std::vector<std::string>& voters() const { return voters_; }
  const Stats& stats() const { return stats_; }
  uint64_t now() const { return now_; }
  // One line per node: role, term, commit, applied, leader.
  std::string Describe() const;

 private:
  struct Node {
    std::string id;
    std::optional<Raft> raft;  // empty while crashed
    int down_steps = 0;
    int paused_steps = 0;  // frozen: no ticks, deliveries wait
    int doomed_steps = 0;  // crashes when it reaches 0 (if > 0)
    // What the node's storage holds, and the log's prefix hash at each entry.
    DurableState disk;
    uint64_t disk_base_prefix = 0;
    std::vector<uint64_t> disk_prefix;
    // The state machine (volatile): how far it applied and a hash of it.
    uint64_t applied = 0;
    uint64_t state = 0;
  };
  struct InFlight {
    uint64_t deliver_at = 0;
    size_t from = 0;
    size_t to = 0;
    Message message;
  };
  struct CommittedEntry {
    uint64_t term = 0;
    uint64_t data = 0;    // hash of the entry's data
    uint64_t prefix = 0;  // hash of the log up to it
    uint64_t state = 0;   // hash of the state machine after it
  };
  struct ReadCheck {
    size_t node = 0;
    uint64_t required = 0;  // the highest commit index known when requested
  };

  uint64_t Random();
  uint64_t Uniform(uint64_t n) { return Random() % n; }
  bool Chance(double p);

  Config NodeConfig(size_t i) const;
  void Start(size_t i);
  void Crash(size_t i);
  void RandomCrashes();
  void Isolate(size_t i);
  void RandomEvents();
  void ChangePartition();
  void RandomProposal();
  void RandomRead();
  void RandomCompaction();
  size_t PickTarget();
  void TickAll();
  void Deliver();
  void Send(size_t from, Message m);
  size_t IndexOf(const std::string& id) const;
  bool Cut(size_t from, size_t to) const { return cut_[from * nodes_.size() + to]; }

  // A Ready, handled as the broker will: persist, send, apply, answer reads.
  void ProcessReady(size_t i);
  void Persist(Node& n, const Ready& rd);
  void PersistSnapshot(Node& n, const Snapshot& s);
  void PersistEntries(Node& n, const std::vector<Entry>& entries);
  void PersistHardState(Node& n, const HardState& hs);
  void ApplySnapshot(Node& n, const Snapshot& s);
  void Apply(Node& n, const Entry& e);
  void ReleaseRead(size_t i, const ReadState& r);
  void CheckLeader(size_t i);
  uint64_t DiskPrefixAt(const Node& n, uint64_t index) const;
  void CompactDisk(Node& n, const Snapshot& s);

  void Fail(const std::string& what);
  bool failed() const { return !failure_.ok(); }

  Options options_;
  uint64_t rng_state_;
  uint64_t now_ = 0;
  std::vector<std::string> voters_;
  std::vector<std::string> learners_;
  std::vector<Node> nodes_;
  std::vector<bool> cut_;  // [from * n + to]: messages on that link are lost
  std::vector<InFlight> network_;
  Status failure_;
  Stats stats_;

  // The history the invariants are checked against.
  std::map<uint64_t, std::string> leader_of_term_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> prefix_of_;  // (index, term) -> prefix hash
  std::vector<CommittedEntry> committed_;                        // [index - 1]
  std::vector<uint64_t> commit_term_;  // [index - 1]: the term of the leader that committed it
  std::set<uint64_t> committed_data_;
  uint64_t max_commit_ = 0;
  uint64_t next_data_ = 1;
  uint64_t next_read_ = 1;
  std::map<uint64_t, ReadCheck> reads_;
  std::set<uint64_t> reads_ok_;
};

}  // namespace meshbus::raft::sim
