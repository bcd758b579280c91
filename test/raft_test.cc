// Tests of broker/raft.h, the consensus core: elections, PreVote,
// CheckQuorum, log replication and repair, the commit rule of §5.4.2,
// ReadIndex, snapshots, learners, restarts and malformed input. Each test
// drives a few cores by hand: a message moves only when the test delivers it.
// Randomized schedules are in raft_sim_test.cc.

#include "broker/raft.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace meshbus::raft {
namespace {

// A cluster whose messages wait in one queue until delivered. Each node's
// Ready is handled as the broker does: persisted (to `disk`), then sent, then
// applied.
class Cluster {
 public:
  explicit Cluster(std::vector<std::string> voters, std::vector<std::string> learners = {},
                   std::function<void(Config*)> tweak = {})
      : voters_(std::move(voters)), learners_(std::move(learners)), tweak_(std::move(tweak)) {
    for (const std::string& id : voters_) nodes_[id];
    for (const std::string& id : learners_) nodes_[id];
    for (auto& [id, n] : nodes_) Restart(id);
  }

  Raft& node(const std::string& id) { return *nodes_.at(id).raft; }
  bool up(const std::string& id) const { return nodes_.at(id).raft.has_value(); }
  const DurableState& disk(const std::string& id) const { return nodes_.at(id).disk; }
  // The data of every entry the node applied since it last started, no-ops included.
  std::vector<std::string> applied(const std::string& id) const {
    std::vector<std::string> out;
    for (const Entry& e : nodes_.at(id).applied) out.push_back(e.data);
    return out;
  }
  const std::vector<Snapshot>& snapshots(const std::string& id) const {
    return nodes_.at(id).snapshots;
  }
  const std::vector<ReadState>& reads(const std::string& id) const { return nodes_.at(id).reads; }
  int rejections(const std::string& id) const { return nodes_.at(id).rejections; }
  size_t sent(const std::string& id) const { return nodes_.at(id).sent; }

  void Crash(const std::string& id) { nodes_.at(id).raft.reset(); }
  void Restart(const std::string& id, DurableState state) {
    nodes_.at(id).disk = std::move(state);
    Restart(id);
  }
  void Restart(const std::string& id) {
    TestNode& n = nodes_.at(id);
    Config config;
    config.self = id;
    config.voters = voters_;
    if (tweak_) tweak_(&config);
    Result<Raft> raft = Raft::Create(config, n.disk);
    ASSERT_TRUE(raft.ok()) << raft.status().ToString();
    n.raft.emplace(std::move(raft).value());
    for (const std::string& l : learners_) {
      if (l != id) {
        ASSERT_TRUE(n.raft->AddLearner(l).ok());
      }
    }
    n.applied.clear();
    n.snapshots.clear();
    Process(id);
  }

  void Tick(const std::string& id, int times = 1) {
    for (int i = 0; i < times; ++i) {
      node(id).Tick();
      Process(id);
    }
  }
  // Ticks `id` until its election timeout makes it campaign.
  void TimeOut(const std::string& id) {
    for (int i = 0; i < 100 && node(id).role() == Role::kFollower; ++i) Tick(id);
    ASSERT_NE(node(id).role(), Role::kFollower) << id << " never campaigned";
  }
  // Every running node ticks, then everything in flight is delivered.
  void Run(int ticks) {
    for (int t = 0; t < ticks; ++t) {
      for (auto& [id, n] : nodes_) {
        if (n.raft) Tick(id);
      }
      Deliver();
    }
  }
  void Elect(const std::string& id) {
    TimeOut(id);
    Deliver();
    ASSERT_EQ(node(id).role(), Role::kLeader) << id;
  }

  // Delivers (or loses, if cut or filtered) the oldest message in flight.
  bool DeliverOne() {
    if (pending_.empty()) return false;
    Message m = std::move(pending_.front());
    pending_.pop_front();
    if (!up(m.to) || cut_.count({m.from, m.to}) != 0 || (drop_ && drop_(m))) return true;
    Status s = node(m.to).Step(m);
    EXPECT_TRUE(s.ok()) << s.ToString();
    Process(m.to);
    return true;
  }
  void Deliver() {
    for (int i = 0; i < 100000 && DeliverOne(); ++i) {
    }
  }
  void DeliverUntil(const std::function<bool()>& done) {
    while (!done() && DeliverOne()) {
    }
  }
  void Isolate(const std::string& id) {
    for (const auto& [other, n] : nodes_) {
      cut_.insert({id, other});
      cut_.insert({other, id});
    }
  }
  void Heal() { cut_.clear(); }
  void DropIf(std::function<bool(const Message&)> drop) { drop_ = std::move(drop); }
  void Clear() { pending_.clear(); }

  Result<uint64_t> Propose(const std::string& id, const std::string& data) {
    Result<uint64_t> index = node(id).Propose(data);
    Process(id);
    return index;
  }
  Status ReadIndex(const std::string& id, uint64_t request) {
    Status s = node(id).ReadIndex(request);
    Process(id);
    return s;
  }
  // Hands a message to a node directly, as if it came off the wire.
  Status Inject(const std::string& id, const Message& m) {
    Status s = node(id).Step(m);
    Process(id);
    return s;
  }
  // Takes the messages `id` sent that are still in flight.
  std::vector<Message> TakeSentBy(const std::string& id) {
    std::vector<Message> out;
    std::deque<Message> rest;
    for (Message& m : pending_) {
      if (m.from == id) {
        out.push_back(std::move(m));
      } else {
        rest.push_back(std::move(m));
      }
    }
    pending_ = std::move(rest);
    return out;
  }

 private:
  struct TestNode {
    std::optional<Raft> raft;
    DurableState disk;
    std::vector<Entry> applied;
    std::vector<Snapshot> snapshots;
    std::vector<ReadState> reads;
    int rejections = 0;
    size_t sent = 0;
  };

  void Process(const std::string& id) {
    TestNode& n = nodes_.at(id);
    if (!n.raft->HasReady()) return;
    Ready rd = n.raft->TakeReady();
    if (rd.snapshot) {
      n.disk.snapshot = *rd.snapshot;
      n.disk.entries.clear();
    }
    if (!rd.entries.empty()) {
      n.disk.entries.resize(rd.entries.front().index - n.disk.snapshot.index - 1);
      n.disk.entries.insert(n.disk.entries.end(), rd.entries.begin(), rd.entries.end());
    }
    if (rd.hard_state) n.disk.hard_state = *rd.hard_state;
    for (Message& m : rd.messages) {
      ++n.sent;
      if (m.type == MessageType::kAppendReply && m.reject) ++n.rejections;
      pending_.push_back(std::move(m));
    }
    if (rd.snapshot) n.snapshots.push_back(*rd.snapshot);
    n.applied.insert(n.applied.end(), rd.committed_entries.begin(), rd.committed_entries.end());
    n.reads.insert(n.reads.end(), rd.reads.begin(), rd.reads.end());
  }

  std::vector<std::string> voters_;
  std::vector<std::string> learners_;
  std::function<void(Config*)> tweak_;
  std::map<std::string, TestNode> nodes_;
  std::deque<Message> pending_;
  std::set<std::pair<std::string, std::string>> cut_;
  std::function<bool(const Message&)> drop_;
};

const std::vector<std::string> kThree = {"n1", "n2", "n3"};

// A log whose entry i has term terms[i - 1] and data "e<i>t<term>".
std::vector<Entry> Log(const std::vector<uint64_t>& terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) {
    uint64_t index = i + 1;
    out.push_back(
        Entry{terms[i], index, "e" + std::to_string(index) + "t" + std::to_string(terms[i])});
  }
  return out;
}

std::vector<uint64_t> Terms(const std::vector<Entry>& entries) {
  std::vector<uint64_t> out;
  for (const Entry& e : entries) out.push_back(e.term);
  return out;
}

Message Msg(MessageType type, const std::string& from, const std::string& to, uint64_t term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

// ---- Creation ----

TEST(RaftTest, CreateRefusesNonsense) {
  auto config = [](std::function<void(Config*)> f) {
    Config c;
    c.self = "n1";
    c.voters = {"n1", "n2", "n3"};
    f(&c);
    return c;
  };
  const struct {
    const char* label;
    Config config;
    DurableState state;
  } kCases[] = {
      {"empty self", config([](Config* c) { c->self = ""; }), {}},
      {"no voters", config([](Config* c) { c->voters.clear(); }), {}},
      {"a voter twice",
       config([](Config* c) {
         c->voters = {"n2", "n1", "n2"};
       }),
       {}},
      {"an empty voter",
       config([](Config* c) {
         c->voters = {"", "n1"};
       }),
       {}},
      {"election min 0", config([](Config* c) { c->election_ticks_min = 0; }), {}},
      {"election max <= min", config([](Config* c) { c->election_ticks_max = 10; }), {}},
      {"heartbeat 0", config([](Config* c) { c->heartbeat_ticks = 0; }), {}},
      {"heartbeat >= election", config([](Config* c) { c->heartbeat_ticks = 10; }), {}},
      {"no entries per append", config([](Config* c) { c->max_entries_per_append = 0; }), {}},
      {"no appends in flight", config([](Config* c) { c->max_inflight_appends = 0; }), {}},
      {"log with a gap", config([](Config*) {}), {{3, "", 0}, {}, {{1, 1, "a"}, {1, 3, "b"}}}},
      {"log not after the snapshot",
       config([](Config*) {}),
       {{3, "", 0}, {5, 1, "s"}, {{1, 7, "a"}}}},
      {"term goes back", config([](Config*) {}), {{3, "", 0}, {}, {{2, 1, "a"}, {1, 2, "b"}}}},
      {"log term beyond current term", config([](Config*) {}), {{1, "", 0}, {}, {{2, 1, "a"}}}},
      {"snapshot without term", config([](Config*) {}), {{1, "", 0}, {5, 0, "s"}, {}}},
      {"a term out of range", config([](Config*) {}), {{~uint64_t{0}, "", 0}, {}, {}}},
  };
  for (const auto& c : kCases) {
    Result<Raft> r = Raft::Create(c.config, c.state);
    ASSERT_FALSE(r.ok()) << c.label;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << c.label;
  }
  // Voters are sorted for the caller.
  Result<Raft> r = Raft::Create(config([](Config* c) { c->voters = {"n3", "n1", "n2"}; }));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

// ---- Elections ----

TEST(RaftTest, SingleVoterElectsItselfOnFirstTick) {
  Config config;
  config.self = "n1";
  config.voters = {"n1"};
  Raft r = Raft::Create(config).value();
  EXPECT_EQ(r.role(), Role::kFollower);
  EXPECT_EQ(r.leader(), "");
  r.Tick();
  EXPECT_EQ(r.role(), Role::kLeader);
  EXPECT_EQ(r.term(), 1u);
  EXPECT_EQ(r.leader(), "n1");

  Ready rd = r.TakeReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(*rd.hard_state, (HardState{1, "n1", 1}));
  EXPECT_EQ(rd.entries, (std::vector<Entry>{{1, 1, ""}}));  // the no-op
  EXPECT_EQ(rd.committed_entries, rd.entries);
  EXPECT_TRUE(rd.messages.empty());

  Result<uint64_t> index = r.Propose("x");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(*index, 2u);
  rd = r.TakeReady();
  EXPECT_EQ(rd.entries, (std::vector<Entry>{{1, 2, "x"}}));
  EXPECT_EQ(rd.committed_entries, rd.entries);
  EXPECT_FALSE(r.HasReady());
}

TEST(RaftTest, ThreeVotersElectOneLeader) {
  Cluster c(kThree);
  c.TimeOut("n1");
  EXPECT_EQ(c.node("n1").role(), Role::kPreCandidate);
  EXPECT_EQ(c.node("n1").term(), 0u) << "a pre-vote does not bump the term";
  c.Deliver();

  EXPECT_EQ(c.node("n1").role(), Role::kLeader);
  for (const std::string& id : kThree) {
    EXPECT_EQ(c.node(id).term(), 1u) << id;
    EXPECT_EQ(c.node(id).leader(), "n1") << id;
    EXPECT_EQ(c.node(id).voted_for(), "n1") << id;
    EXPECT_EQ(c.disk(id).hard_state.voted_for, "n1") << id << ": the vote is durable";
    EXPECT_EQ(c.applied(id), (std::vector<std::string>{""})) << id << ": the no-op";
  }
  EXPECT_EQ(c.node("n2").role(), Role::kFollower);

  ASSERT_TRUE(c.Propose("n1", "a").ok());
  EXPECT_EQ(c.Propose("n2", "b").status().code(), Code::kUnavailable);
  c.Deliver();
  for (const std::string& id : kThree) {
    EXPECT_EQ(c.applied(id), (std::vector<std::string>{"", "a"})) << id;
  }
}

// The vote goes out in the same Ready as the durable record of it.
TEST(RaftTest, AVoteIsPersistedWithItsReply) {
  Config config;
  config.self = "n2";
  config.voters = kThree;
  Raft r = Raft::Create(config).value();
  Message vote = Msg(MessageType::kVote, "n1", "n2", 1);
  ASSERT_TRUE(r.Step(vote).ok());
  Ready rd = r.TakeReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->voted_for, "n1");
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kVoteReply);
  EXPECT_FALSE(rd.messages[0].reject);
}

// The voter's log ends at (index 3, term 2); it is at term 5 and gets a vote
// request for term 6, or for term 5 after its vote in term 5.
TEST(RaftTest, VoteRequestsTable) {
  const struct {
    const char* label;
    std::string voted_for;  // in term 5
    uint64_t term;          // of the request
    uint64_t last_index;    // the candidate's
    uint64_t last_term;
    bool granted;
  } kCases[] = {
      {"later last term, shorter log", "", 6, 2, 3, true},
      {"same last term, longer log", "", 6, 4, 2, true},
      {"same last term, same length", "", 6, 3, 2, true},
      {"same last term, shorter log", "", 6, 2, 2, false},
      {"earlier last term, longer log", "", 6, 9, 1, false},
      {"empty log", "", 6, 0, 0, false},
      {"already voted for another in this term", "n3", 5, 9, 4, false},
      {"asked again by the one it voted for", "n1", 5, 3, 2, true},
      {"not voted yet in this term", "", 5, 3, 2, true},
      {"a later term clears the vote", "n3", 6, 3, 2, true},
  };
  for (const auto& c : kCases) {
    Config config;
    config.self = "n2";
    config.voters = kThree;
    DurableState state{{5, c.voted_for, 0}, {}, Log({1, 2, 2})};
    Raft r = Raft::Create(config, state).value();
    Message m = Msg(MessageType::kVote, "n1", "n2", c.term);
    m.index = c.last_index;
    m.log_term = c.last_term;
    ASSERT_TRUE(r.Step(m).ok()) << c.label;
    Ready rd = r.TakeReady();
    ASSERT_EQ(rd.messages.size(), 1u) << c.label;
    EXPECT_EQ(rd.messages[0].type, MessageType::kVoteReply) << c.label;
    EXPECT_EQ(!rd.messages[0].reject, c.granted) << c.label;
    EXPECT_EQ(rd.messages[0].term, c.term) << c.label;
    EXPECT_EQ(r.term(), c.term) << c.label;
    EXPECT_EQ(r.voted_for() == "n1", c.granted) << c.label;
  }
}

// A node cut off from the others keeps campaigning, but only with pre-votes:
// its term does not grow, so when it comes back the leader is not disturbed.
TEST(RaftTest, PreVoteKeepsAPartitionedNodeFromBumpingTerms) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Run(5);
  c.Isolate("n3");
  for (int i = 0; i < 200; ++i) c.Tick("n3");
  EXPECT_EQ(c.node("n3").role(), Role::kPreCandidate);
  EXPECT_EQ(c.node("n3").term(), 1u);
  EXPECT_EQ(c.node("n3").leader(), "");

  c.Clear();
  c.Heal();
  c.Run(30);
  EXPECT_EQ(c.node("n1").role(), Role::kLeader);
  EXPECT_EQ(c.node("n1").term(), 1u);
  EXPECT_EQ(c.node("n3").role(), Role::kFollower);
  EXPECT_EQ(c.node("n3").leader(), "n1");
}

// A follower that hears from its leader ignores requests to elect another,
// even in a later term: they come from a node that cannot see the leader.
TEST(RaftTest, FollowersInLeaseIgnoreVoteRequests) {
  Cluster c(kThree);
  c.Elect("n1");
  for (MessageType type : {MessageType::kPreVote, MessageType::kVote}) {
    Message m = Msg(type, "n3", "n2", 2);
    m.index = 1;
    m.log_term = 1;
    ASSERT_TRUE(c.Inject("n2", m).ok());
    EXPECT_TRUE(c.TakeSentBy("n2").empty()) << MessageTypeName(type) << ": no answer";
    EXPECT_EQ(c.node("n2").term(), 1u) << MessageTypeName(type);
    EXPECT_EQ(c.node("n2").leader(), "n1") << MessageTypeName(type);
  }
}

// CheckQuorum: a leader that has not heard from a quorum for an election
// timeout steps down; one that hears from them stays.
TEST(RaftTest, CheckQuorumStepsDownALeaderCutOff) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Run(100);
  EXPECT_EQ(c.node("n1").role(), Role::kLeader) << "followers answer: it stays";

  c.Isolate("n1");
  int ticks = 0;
  while (c.node("n1").role() == Role::kLeader && ticks < 100) {
    c.Tick("n1");
    ++ticks;
  }
  EXPECT_LE(ticks, 2 * 10) << "within two CheckQuorum periods";
  EXPECT_EQ(c.node("n1").role(), Role::kFollower);
  EXPECT_EQ(c.node("n1").leader(), "");
  EXPECT_EQ(c.node("n1").term(), 1u) << "stepping down does not bump the term";
  EXPECT_TRUE(c.node("n1").Progress().empty());
}

// A leader with one follower of two reachable keeps its quorum.
TEST(RaftTest, CheckQuorumKeepsALeaderWithAMajority) {
  Cluster c({"n1", "n2", "n3", "n4", "n5"});
  c.Elect("n1");
  c.Isolate("n4");
  c.Isolate("n5");
  c.Run(100);
  EXPECT_EQ(c.node("n1").role(), Role::kLeader);
  EXPECT_EQ(c.node("n1").term(), 1u);
}

// ---- Replication ----

// Figure 7 of the Raft paper: a new leader of term 8 meets followers whose
// logs miss entries, have extra ones, or both. Every follower ends with the
// leader's log; the conflict hints need at most one rejection each.
TEST(RaftTest, LogConflictsAreRepairedTable) {
  const std::vector<uint64_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const struct {
    const char* label;
    std::vector<uint64_t> follower;
    int rejections;
  } kCases[] = {
      {"(a) one entry missing", {1, 1, 1, 4, 4, 5, 5, 6, 6}, 1},
      {"(b) many missing", {1, 1, 1, 4}, 1},
      {"(c) one extra uncommitted entry", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 0},
      {"(d) extra entries of a later term", {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 0},
      {"(e) missing, with an extra term-4 suffix", {1, 1, 1, 4, 4, 4, 4}, 1},
      {"(f) a divergent history", {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 1},
  };
  for (const auto& tc : kCases) {
    Cluster c(kThree);
    c.Restart("n1", DurableState{{7, "", 0}, {}, Log(leader)});
    c.Restart("n2", DurableState{{7, "", 0}, {}, Log(tc.follower)});
    c.Restart("n3", DurableState{{7, "", 0}, {}, Log(leader)});
    c.Elect("n1");
    EXPECT_EQ(c.node("n1").term(), 8u) << tc.label;

    std::vector<uint64_t> want = leader;
    want.push_back(8);  // the no-op
    EXPECT_EQ(Terms(c.disk("n2").entries), want) << tc.label;
    EXPECT_EQ(c.disk("n2").entries, c.disk("n1").entries) << tc.label;
    EXPECT_EQ(c.rejections("n2"), tc.rejections) << tc.label;
    EXPECT_EQ(c.node("n2").commit_index(), 11u) << tc.label;
    EXPECT_EQ(c.applied("n2").size(), 11u) << tc.label;
  }
}

// A follower commits only what the append proved it shares with the leader:
// entries after the last one it carried may be left from an older term. Its
// log: 1@1 2@1 3@1, where 3@1 was never committed (the leader has 3@2).
TEST(RaftTest, AFollowerCommitsOnlyWhatTheAppendCoversTable) {
  const struct {
    const char* label;
    uint64_t index;  // the entry before the append's entries
    std::vector<Entry> entries;
    uint64_t commit;  // the leader's
    uint64_t want_commit;
    uint64_t want_last;
  } kCases[] = {
      {"no entries, commit beyond", 1, {}, 3, 1, 3},
      {"matching entries, commit beyond", 1, {{1, 2, "e2t1"}}, 3, 2, 3},
      {"commit below what is covered", 1, {{1, 2, "e2t1"}}, 1, 1, 3},
      {"a conflicting entry replaces the old one", 2, {{2, 3, "e3t2"}}, 3, 3, 3},
  };
  for (const auto& c : kCases) {
    Config config;
    config.self = "n2";
    config.voters = kThree;
    Raft r = Raft::Create(config, DurableState{{2, "", 0}, {}, Log({1, 1, 1})}).value();
    Message m = Msg(MessageType::kAppend, "n1", "n2", 2);
    m.index = c.index;
    m.log_term = 1;
    m.entries = c.entries;
    m.commit = c.commit;
    ASSERT_TRUE(r.Step(m).ok()) << c.label;
    EXPECT_EQ(r.commit_index(), c.want_commit) << c.label;
    EXPECT_EQ(r.last_index(), c.want_last) << c.label;
  }
}

// Heartbeats carry the commit index only as far as the follower is known to
// share the leader's log: past that, its entries may be from an old term.
TEST(RaftTest, HeartbeatsCapTheCommitAtTheFollowersMatch) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Isolate("n3");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.Propose("n1", "w" + std::to_string(i)).ok());
  c.Deliver();
  ASSERT_EQ(c.node("n1").commit_index(), 6u);
  c.Tick("n1", 2);
  bool seen = false;
  for (const Message& m : c.TakeSentBy("n1")) {
    if (m.type != MessageType::kHeartbeat) continue;
    seen = true;
    EXPECT_EQ(m.commit, m.to == "n2" ? 6u : 1u) << m.to;
  }
  EXPECT_TRUE(seen);
}

// A delayed append must not cut entries that arrived after it.
TEST(RaftTest, AStaleAppendDoesNotTruncate) {
  Config config;
  config.self = "n2";
  config.voters = kThree;
  Raft r = Raft::Create(config, DurableState{{2, "", 0}, {}, Log({1, 2, 2, 2})}).value();
  Message m = Msg(MessageType::kAppend, "n1", "n2", 2);
  m.index = 1;
  m.log_term = 1;
  m.entries = {Log({1, 2}).back()};
  ASSERT_TRUE(r.Step(m).ok());
  EXPECT_EQ(r.last_index(), 4u);
  Ready rd = r.TakeReady();
  EXPECT_TRUE(rd.entries.empty());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].index, 2u) << "acknowledges what the message covered";
}

// Figure 8 of the Raft paper: an entry of an earlier term stored on a
// majority is not committed by counting, because a later leader may still
// overwrite it; only an entry of the leader's own term commits by counting.
TEST(RaftTest, CommitRuleOfFigure8) {
  const std::vector<std::string> five = {"s1", "s2", "s3", "s4", "s5"};
  Cluster c(five, {}, [](Config* config) {
    if (config->self == "s1") config->max_entries_per_append = 1;
  });
  // s1 led term 2 and wrote 2@2 only locally; s5 led term 3 and wrote 2@3 only locally.
  c.Restart("s1", DurableState{{3, "", 1}, {}, Log({1, 2})});
  c.Restart("s2", DurableState{{3, "", 1}, {}, Log({1})});
  c.Restart("s3", DurableState{{3, "", 1}, {}, Log({1})});
  c.Restart("s4", DurableState{{3, "", 1}, {}, Log({1})});
  c.Restart("s5", DurableState{{3, "", 1}, {}, Log({1, 3})});

  // (c) s1 leads term 4 with s2 and s3, and gets 2@2 onto both; its no-op
  // (3@4) never reaches them.
  c.Crash("s4");
  c.Crash("s5");
  c.DropIf([&c](const Message& m) {
    bool carries_3 =
        m.type == MessageType::kAppend && !m.entries.empty() && m.entries.back().index >= 3;
    return carries_3 && c.node(m.to).last_index() >= 2;
  });
  c.Elect("s1");
  EXPECT_EQ(c.node("s1").term(), 4u);
  EXPECT_EQ(Terms(c.disk("s2").entries), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Terms(c.disk("s3").entries), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(c.node("s1").commit_index(), 1u) << "2@2 is on a majority but not committed";
  for (const PeerProgress& p : c.node("s1").Progress()) {
    EXPECT_EQ(p.match, p.id == "s2" || p.id == "s3" ? 2u : 0u) << p.id;
  }

  // (d) s1 crashes; s5 can win term 5 (its last term 3 beats 2) and
  // overwrites 2@2 everywhere: committing it would have lost it.
  c.Crash("s1");
  c.DropIf({});
  c.Clear();
  for (const char* id : {"s2", "s3", "s4", "s5"}) c.Restart(id);
  c.TimeOut("s5");
  c.Deliver();  // rejected: s2 and s3 voted in term 4; s5 learns term 4
  c.TimeOut("s5");
  c.Deliver();
  ASSERT_EQ(c.node("s5").role(), Role::kLeader);
  EXPECT_EQ(c.node("s5").term(), 5u);
  for (const char* id : {"s2", "s3", "s4", "s5"}) {
    EXPECT_EQ(Terms(c.disk(id).entries), (std::vector<uint64_t>{1, 3, 5})) << id;
    EXPECT_EQ(c.node(id).commit_index(), 3u) << id;
  }
}

// Proposals made while the followers are still being probed go out in
// batches of max_entries_per_append once the logs are found to agree.
TEST(RaftTest, AppendsComeInBatches) {
  Cluster c(kThree, {}, [](Config* config) { config->max_entries_per_append = 3; });
  c.TimeOut("n1");
  c.DeliverUntil([&c] { return c.node("n1").role() == Role::kLeader; });
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.Propose("n1", "x" + std::to_string(i)).ok());
  size_t largest = 0;
  c.DropIf([&largest](const Message& m) {
    largest = std::max(largest, m.entries.size());
    return false;
  });
  c.Deliver();
  EXPECT_EQ(largest, 3u);
  for (const std::string& id : kThree) EXPECT_EQ(c.applied(id).size(), 21u) << id;
  std::vector<PeerProgress> progress = c.node("n1").Progress();
  ASSERT_EQ(progress.size(), 2u);
  for (const PeerProgress& p : progress) {
    EXPECT_EQ(p.match, 21u) << p.id;
    EXPECT_EQ(p.next, 22u) << p.id;
    EXPECT_EQ(p.state, ReplicationState::kReplicate) << p.id;
    EXPECT_TRUE(p.recent_active) << p.id;
    EXPECT_FALSE(p.learner) << p.id;
  }
  EXPECT_TRUE(c.node("n2").Progress().empty()) << "followers have none";
}

// ---- Reads ----

TEST(RaftTest, ReadIndexNeedsAQuorumRound) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Isolate("n3");  // a quorum is enough
  ASSERT_TRUE(c.ReadIndex("n1", 7).ok());
  EXPECT_TRUE(c.reads("n1").empty()) << "not before a quorum confirmed the leadership";
  c.Deliver();
  ASSERT_EQ(c.reads("n1").size(), 1u);
  EXPECT_EQ(c.reads("n1")[0].request_id, 7u);
  EXPECT_TRUE(c.reads("n1")[0].ok);
  EXPECT_EQ(c.reads("n1")[0].index, 1u);

  EXPECT_EQ(c.ReadIndex("n2", 8).code(), Code::kUnavailable);
  EXPECT_TRUE(c.reads("n2").empty());
}

// A new leader does not know what its predecessor committed until it commits
// an entry of its own term: reads wait for that.
TEST(RaftTest, ReadIndexWaitsForTheFirstCommitOfTheTerm) {
  Cluster c(kThree);
  c.TimeOut("n1");
  c.DeliverUntil([&c] { return c.node("n1").role() == Role::kLeader; });
  ASSERT_EQ(c.node("n1").commit_index(), 0u);
  ASSERT_TRUE(c.ReadIndex("n1", 1).ok());
  c.Deliver();
  ASSERT_EQ(c.reads("n1").size(), 1u);
  EXPECT_TRUE(c.reads("n1")[0].ok);
  EXPECT_EQ(c.reads("n1")[0].index, 1u) << "covers the no-op, so all earlier commits";
}

TEST(RaftTest, ReadIndexFailsWhenLeadershipIsLost) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Isolate("n1");
  ASSERT_TRUE(c.ReadIndex("n1", 9).ok());
  for (int i = 0; i < 25 && c.node("n1").role() == Role::kLeader; ++i) c.Tick("n1");
  ASSERT_EQ(c.node("n1").role(), Role::kFollower);
  ASSERT_EQ(c.reads("n1").size(), 1u);
  EXPECT_EQ(c.reads("n1")[0].request_id, 9u);
  EXPECT_FALSE(c.reads("n1")[0].ok);
}

TEST(RaftTest, ReadIndexOnASingleVoterIsImmediate) {
  Cluster c({"n1"});
  c.Tick("n1");
  ASSERT_EQ(c.node("n1").role(), Role::kLeader);
  ASSERT_TRUE(c.Propose("n1", "a").ok());
  ASSERT_TRUE(c.ReadIndex("n1", 3).ok());
  ASSERT_EQ(c.reads("n1").size(), 1u);
  EXPECT_TRUE(c.reads("n1")[0].ok);
  EXPECT_EQ(c.reads("n1")[0].index, 2u);
}

// ---- Snapshots ----

TEST(RaftTest, ALaggingFollowerGetsASnapshot) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Isolate("n3");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.Propose("n1", "w" + std::to_string(i)).ok());
  c.Deliver();
  ASSERT_EQ(c.node("n1").applied_index(), 11u);
  EXPECT_EQ(c.node("n1").Compact(12, "s").code(), Code::kInvalidArgument) << "not applied";
  ASSERT_TRUE(c.node("n1").Compact(11, "state@11").ok());
  EXPECT_EQ(c.node("n1").Compact(11, "again").code(), Code::kInvalidArgument);
  EXPECT_EQ(c.node("n1").first_index(), 12u);
  ASSERT_TRUE(c.Propose("n1", "after").ok());

  c.Heal();
  c.Run(5);
  ASSERT_EQ(c.snapshots("n3").size(), 1u);
  EXPECT_EQ(c.snapshots("n3")[0], (Snapshot{11, 1, "state@11"}));
  EXPECT_EQ(c.applied("n3"), (std::vector<std::string>{"", "after"}))
      << "the no-op before the isolation, then what follows the snapshot";
  EXPECT_EQ(c.disk("n3").snapshot.index, 11u);
  EXPECT_EQ(c.disk("n3").entries, (std::vector<Entry>{{1, 12, "after"}}));
  EXPECT_EQ(c.node("n3").commit_index(), 12u);
  for (const PeerProgress& p : c.node("n1").Progress()) {
    EXPECT_EQ(p.match, 12u) << p.id;
    EXPECT_EQ(p.state, ReplicationState::kReplicate) << p.id;
  }
}

// ---- Learners ----

TEST(RaftTest, ALearnerNeverCampaigns) {
  Config config;
  config.self = "l1";
  config.voters = kThree;
  Raft r = Raft::Create(config).value();
  EXPECT_EQ(r.role(), Role::kLearner);
  for (int i = 0; i < 1000; ++i) r.Tick();
  EXPECT_EQ(r.role(), Role::kLearner);
  EXPECT_EQ(r.term(), 0u);
  EXPECT_FALSE(r.HasReady()) << "not a single message";
}

TEST(RaftTest, ALearnerGetsEntriesButCountsInNoQuorum) {
  Cluster c(kThree, {"l1"});
  c.Elect("n1");
  ASSERT_TRUE(c.Propose("n1", "x").ok());
  c.Deliver();
  EXPECT_EQ(c.applied("l1"), (std::vector<std::string>{"", "x"}));
  EXPECT_EQ(c.node("l1").role(), Role::kLearner);
  EXPECT_EQ(c.node("l1").leader(), "n1");

  // With both voters cut off, the leader and the learner commit nothing...
  c.Isolate("n2");
  c.Isolate("n3");
  ASSERT_TRUE(c.Propose("n1", "y").ok());
  c.Deliver();
  EXPECT_EQ(c.node("l1").last_index(), 3u) << "the learner has it";
  EXPECT_EQ(c.node("n1").commit_index(), 2u) << "but it does not count";
  bool listed = false;
  for (const PeerProgress& p : c.node("n1").Progress()) {
    if (p.id != "l1") continue;
    listed = true;
    EXPECT_TRUE(p.learner);
    EXPECT_EQ(p.match, 3u);
  }
  EXPECT_TRUE(listed);
  // ...and the learner's answers do not keep the leader in office.
  c.Run(25);
  EXPECT_NE(c.node("n1").role(), Role::kLeader);
}

TEST(RaftTest, LearnerMembershipTable) {
  Config config;
  config.self = "n1";
  config.voters = kThree;
  Raft r = Raft::Create(config).value();
  const struct {
    const char* label;
    bool add;
    std::string id;
    Code want;
  } kCases[] = {
      {"a new learner", true, "l1", Code::kOk},
      {"the same again", true, "l1", Code::kOk},
      {"a voter", true, "n2", Code::kInvalidArgument},
      {"itself", true, "n1", Code::kInvalidArgument},
      {"an empty id", true, "", Code::kInvalidArgument},
      {"remove it", false, "l1", Code::kOk},
      {"remove it again", false, "l1", Code::kNotFound},
      {"remove a voter", false, "n2", Code::kNotFound},
  };
  for (const auto& c : kCases) {
    Status s = c.add ? r.AddLearner(c.id) : r.RemoveLearner(c.id);
    EXPECT_EQ(s.code(), c.want) << c.label << ": " << s.ToString();
  }
  EXPECT_TRUE(r.learners().empty());
}

// ---- Restarts ----

TEST(RaftTest, ARestartedNodeRecoversItsDurableState) {
  Cluster c(kThree);
  c.Elect("n1");
  ASSERT_TRUE(c.Propose("n1", "a").ok());
  ASSERT_TRUE(c.Propose("n1", "b").ok());
  c.Deliver();
  c.Run(2);  // heartbeats carry the commit index
  c.Crash("n2");
  c.Restart("n2");
  Raft& n2 = c.node("n2");
  EXPECT_EQ(n2.role(), Role::kFollower);
  EXPECT_EQ(n2.leader(), "") << "volatile";
  EXPECT_EQ(n2.term(), 1u);
  EXPECT_EQ(n2.voted_for(), "n1");
  EXPECT_EQ(n2.last_index(), 3u);
  EXPECT_EQ(n2.commit_index(), 3u);
  EXPECT_EQ(c.applied("n2"), (std::vector<std::string>{"", "a", "b"})) << "applied again";

  // Its vote of term 1 survived: no second one.
  Message m = Msg(MessageType::kVote, "n3", "n2", 1);
  m.index = 3;
  m.log_term = 1;
  ASSERT_TRUE(c.Inject("n2", m).ok());
  std::vector<Message> sent = c.TakeSentBy("n2");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].reject);
}

TEST(RaftTest, ARestartFromASnapshotHandsOutOnlyWhatFollows) {
  Config config;
  config.self = "n1";
  config.voters = kThree;
  DurableState state{{4, "n1", 7}, {5, 2, "state@5"}, {{3, 6, "f"}, {4, 7, "g"}, {4, 8, "h"}}};
  Raft r = Raft::Create(config, state).value();
  EXPECT_EQ(r.first_index(), 6u);
  EXPECT_EQ(r.last_index(), 8u);
  EXPECT_EQ(r.applied_index(), 5u);
  Ready rd = r.TakeReady();
  EXPECT_FALSE(rd.snapshot.has_value()) << "the owner restores its own";
  EXPECT_FALSE(rd.hard_state.has_value());
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_EQ(rd.committed_entries, (std::vector<Entry>{{3, 6, "f"}, {4, 7, "g"}}));
}

// ---- Malformed input ----

// Each message is refused and counted; nothing about the node changes.
TEST(RaftTest, BadMessagesAreCountedAndIgnoredTable) {
  Cluster c(kThree, {"l1"});
  c.Elect("n1");
  c.Run(3);
  auto append = [](const std::string& from, uint64_t term, uint64_t index, uint64_t log_term,
                   std::vector<Entry> entries) {
    Message m = Msg(MessageType::kAppend, from, "n2", term);
    m.index = index;
    m.log_term = log_term;
    m.entries = std::move(entries);
    return m;
  };
  auto with = [](Message m, std::function<void(Message*)> f) {
    f(&m);
    return m;
  };
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const struct {
    const char* label;
    std::string at;
    Message m;
  } kCases[] = {
      {"addressed to another node", "n2", Msg(MessageType::kHeartbeat, "n1", "n3", 1)},
      {"from itself", "n2", Msg(MessageType::kHeartbeat, "n2", "n2", 1)},
      {"from an unknown node", "n2", Msg(MessageType::kHeartbeat, "x9", "n2", 1)},
      {"from nobody", "n2", Msg(MessageType::kHeartbeat, "", "n2", 1)},
      {"a vote request from a learner", "n2",
       with(Msg(MessageType::kVote, "l1", "n2", 2),
            [](Message* m) {
              m->index = 9;
              m->log_term = 1;
            })},
      {"a pre-vote reply from a learner", "n2", Msg(MessageType::kPreVoteReply, "l1", "n2", 2)},
      {"a vote request to a learner", "l1",
       with(Msg(MessageType::kVote, "n3", "l1", 2),
            [](Message* m) {
              m->index = 9;
              m->log_term = 1;
            })},
      {"an append from a learner", "n2", append("l1", 1, 1, 1, {})},
      {"a heartbeat in term 0", "n2", Msg(MessageType::kHeartbeat, "n1", "n2", 0)},
      {"entries out of sequence", "n2", append("n1", 1, 1, 1, {{1, 3, "x"}})},
      {"an entry of a later term than the message", "n2", append("n1", 1, 1, 1, {{2, 2, "x"}})},
      {"entry terms going back", "n2", append("n1", 3, 1, 1, {{3, 2, "x"}, {2, 3, "y"}})},
      {"a previous entry of a later term", "n2", append("n1", 1, 1, 3, {})},
      {"a previous entry 0 with a term", "n2", append("n1", 1, 0, 1, {})},
      {"indexes that overflow", "n2", append("n1", 1, kMax, 1, {{1, 0, "x"}})},
      {"entries running past 2^62", "n2",
       append("n1", 1, (uint64_t{1} << 62) - 1, 1, {{1, uint64_t{1} << 62, "x"}, {1, 0, "y"}})},
      {"a snapshot at the last index there is", "n2",
       with(Msg(MessageType::kSnapshot, "n1", "n2", 1),
            [kMax](Message* m) {
              m->snapshot = {kMax, 1, ""};
            })},
      {"a term out of range", "n2", Msg(MessageType::kHeartbeat, "n1", "n2", kMax)},
      {"an unknown type", "n2", Msg(static_cast<MessageType>(200), "n1", "n2", 1)},
      {"a snapshot at index 0", "n2", Msg(MessageType::kSnapshot, "n1", "n2", 1)},
      {"a snapshot of a later term", "n2",
       with(Msg(MessageType::kSnapshot, "n1", "n2", 1),
            [](Message* m) {
              m->snapshot = {5, 3, ""};
            })},
      {"a candidate whose last entry is beyond its term", "n2",
       with(Msg(MessageType::kVote, "n3", "n2", 2),
            [](Message* m) {
              m->index = 5;
              m->log_term = 3;
            })},
      {"an append from a second leader of the term", "n2", append("n3", 1, 1, 1, {})},
      {"an append reply beyond the leader's log", "n1",
       with(Msg(MessageType::kAppendReply, "n2", "n1", 1), [](Message* m) { m->index = 99; })},
      {"a confirmation of a read round never started", "n1",
       with(Msg(MessageType::kHeartbeatReply, "n2", "n1", 1), [](Message* m) { m->context = 99; })},
      {"a heartbeat to the leader of its own term", "n1",
       Msg(MessageType::kHeartbeat, "n3", "n1", 1)},
  };
  for (const auto& tc : kCases) {
    Raft& r = c.node(tc.at);
    const uint64_t bad = r.bad_messages();
    const uint64_t term = r.term();
    const Role role = r.role();
    const std::string leader = r.leader();
    const uint64_t last = r.last_index();
    const uint64_t commit = r.commit_index();
    Status s = r.Step(tc.m);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << tc.label << ": " << s.ToString();
    EXPECT_EQ(r.bad_messages(), bad + 1) << tc.label;
    EXPECT_EQ(r.term(), term) << tc.label;
    EXPECT_EQ(r.role(), role) << tc.label;
    EXPECT_EQ(r.leader(), leader) << tc.label;
    EXPECT_EQ(r.last_index(), last) << tc.label;
    EXPECT_EQ(r.commit_index(), commit) << tc.label;
    EXPECT_FALSE(r.HasReady()) << tc.label << ": nothing to persist or send";
  }
}

// Old or repeated messages are part of normal life: not counted.
TEST(RaftTest, StaleMessagesAreNotBad) {
  Cluster c(kThree);
  c.Elect("n1");
  c.Run(3);
  const struct {
    const char* label;
    Message m;
  } kCases[] = {
      {"a late vote reply", Msg(MessageType::kVoteReply, "n2", "n1", 1)},
      {"a late pre-vote reply", Msg(MessageType::kPreVoteReply, "n3", "n1", 1)},
      {"an append reply for what is known", Msg(MessageType::kAppendReply, "n2", "n1", 1)},
      {"a repeated heartbeat reply", Msg(MessageType::kHeartbeatReply, "n2", "n1", 1)},
  };
  for (const auto& tc : kCases) {
    EXPECT_TRUE(c.Inject("n1", tc.m).ok()) << tc.label;
    EXPECT_EQ(c.node("n1").role(), Role::kLeader) << tc.label;
  }
  EXPECT_EQ(c.node("n1").bad_messages(), 0u);

  // An append of an old term is answered with our term, for a deposed leader to learn it.
  c.Clear();
  c.Restart("n2", DurableState{{5, "", 0}, {}, {}});
  Message old = Msg(MessageType::kAppend, "n1", "n2", 1);
  ASSERT_TRUE(c.Inject("n2", old).ok());
  std::vector<Message> sent = c.TakeSentBy("n2");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].term, 5u);
  EXPECT_EQ(c.node("n2").bad_messages(), 0u);
  ASSERT_TRUE(c.Inject("n1", sent[0]).ok());
  EXPECT_EQ(c.node("n1").role(), Role::kFollower) << "deposed";
  EXPECT_EQ(c.node("n1").term(), 5u);
}

// Committed entries are never rewritten: an append that starts below the
// commit index only gets the commit index back.
TEST(RaftTest, AnAppendBelowTheCommitIndexChangesNothing) {
  Config config;
  config.self = "n2";
  config.voters = kThree;
  Raft r = Raft::Create(config, DurableState{{1, "", 2}, {}, Log({1, 1})}).value();
  Message m = Msg(MessageType::kAppend, "n3", "n2", 2);
  m.index = 1;
  m.log_term = 1;
  m.entries = {{2, 2, "other"}};
  ASSERT_TRUE(r.Step(m).ok());
  Ready rd = r.TakeReady();
  EXPECT_TRUE(rd.entries.empty());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_FALSE(rd.messages[0].reject);
  EXPECT_EQ(rd.messages[0].index, 2u);
  EXPECT_EQ(r.last_index(), 2u);
  EXPECT_EQ(r.commit_index(), 2u);
}

}  // namespace
}  // namespace meshbus::raft
