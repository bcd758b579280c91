// Raft: the consensus core of the name registry (DESIGN.md §5), a pure state
// machine in the shape of etcd's raft. No sockets, no threads, no clocks, no
// files: the owner feeds it ticks, messages from peers, proposals and read
// requests, and takes from it a Ready that says what to persist, what to send
// and what to apply. Not thread-safe (owned by the broker's loop thread).
//
// The owner's loop, after every input (Tick, Step, Propose, ReadIndex, ...):
//   if (raft.HasReady()) {
//     Ready rd = raft.TakeReady();
//     1. persist rd.snapshot, then rd.entries, then rd.hard_state, and fsync
//        (RaftStorage::Save does this, in this order);
//     2. only then send rd.messages: a vote or an acknowledgement must not
//        leave before what it promises is on disk;
//     3. apply rd.snapshot (if any), then rd.committed_entries, in order;
//     4. answer rd.reads: each successful one may be served from the state
//        machine now.
//   }
// A crash anywhere in this sequence is safe as long as nothing of step 2
// happens before step 1 is durable.
//
// Implemented: terms and votes with the up-to-date log check, randomized
// election timeouts, PreVote (a node back from a partition does not bump
// terms), CheckQuorum (a leader that has not heard from a quorum within an
// election timeout steps down; followers that hear from a leader ignore vote
// requests for as long), a no-op entry at election, replication with fast
// backtracking, commit by counting only of entries of the current term
// (§5.4.2), InstallSnapshot, learners and ReadIndex.
//
// Membership: the voters are fixed by Config. Learners (non-voting members
// that receive the log) are local configuration, not replicated: the owner
// calls AddLearner/RemoveLearner on every node, e.g. from the broker's
// membership. A node whose id is not among the voters is itself a learner.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "topics/raft_types.h"
#include "topics/status.h"

namespace meshbus::raft {

// What must survive a crash besides the log.
struct HardState {
  uint64_t term = 0;
  std::string voted_for;  // empty: no vote cast in `term`
  uint64_t commit = 0;
  bool operator==(const HardState&) const = default;
};

// What the owner recovered from storage at restart: the log is the snapshot
// followed by `entries` (indexes snapshot.index + 1, + 2, ...).
struct DurableState {
  HardState hard_state;
  Snapshot snapshot;
  std::vector<Entry> entries;
};

struct Config {
  std::string self;
  // The voting members, each once (sorted by Create). `self` may be missing:
  // then this node is a learner and never campaigns.
  std::vector<std::string> voters;
  // Each election timeout is drawn in [min, max) ticks. `min` is also the
  // CheckQuorum period and the length of a leader's lease on votes.
  int election_ticks_min = 10;
  int election_ticks_max = 20;
  int heartbeat_ticks = 2;
  size_t max_entries_per_append = 64;
  // Appends in flight to one follower before waiting for its replies.
  size_t max_inflight_appends = 16;
  // Seeds the election timeouts, mixed with `self` so that nodes given the
  // same seed still draw different timeouts. Same inputs, same run.
  uint64_t seed = 0;
};

// A read released by TakeReady.
struct ReadState {
  uint64_t request_id = 0;
  // True: the read may be served now, from a state machine that has applied
  // `index` (it has). False: leadership was lost before the read could be
  // confirmed; the caller retries on the new leader.
  bool ok = false;
  uint64_t index = 0;
};

// What the owner must do, in this order (see the top of this file).
struct Ready {
  std::optional<HardState> hard_state;  // set when it changed
  // A snapshot received from the leader: persist it (it replaces the whole
  // log), then apply it (it replaces the state machine).
  std::optional<Snapshot> snapshot;
  // Persist, first deleting every persisted entry at or after
  // entries.front().index (a follower overwriting a conflicting suffix).
  std::vector<Entry> entries;
  std::vector<Message> messages;         // send after persisting
  std::vector<Entry> committed_entries;  // apply in order, after `snapshot`
  std::vector<ReadState> reads;          // answer after applying
};

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader, kLearner };
std::string_view RoleName(Role role);

// How the leader replicates to one follower (etcd's progress states).
enum class ReplicationState : uint8_t {
  kProbe,      // finding where the logs agree: one append at a time
  kReplicate,  // logs agree: appends are streamed
  kSnapshot,   // a snapshot was sent; waiting for its answer
};
std::string_view ReplicationStateName(ReplicationState state);

// The leader's view of one follower, for an operator's status command.
struct PeerProgress {
  std::string id;
  bool learner = false;
  uint64_t match = 0;          // the last entry known to be replicated there
  uint64_t next = 0;           // the next entry to send
  bool recent_active = false;  // heard from during the current CheckQuorum period
  ReplicationState state = ReplicationState::kProbe;
};

class Raft {
 public:
  // A node starting from `state` (empty: a fresh node). Fails on a config or
  // state that does not make sense (duplicate voters, a log with gaps, ...).
  // The owner restores its state machine from state.snapshot itself; the
  // committed entries after it come again in the first Ready.
  static Result<Raft> Create(Config config, DurableState state = {});

  // One unit of logical time.
  void Tick();
  // A message from a peer. A malformed one (unknown sender, not addressed to
  // this node, indexes that make no sense, ...) changes nothing: it is
  // counted in bad_messages() and the returned status says what was wrong.
  // Stale messages (older terms, duplicates) are normal: ok.
  Status Step(const Message& m);
  // Appends `data` to the log. Leader only (kUnavailable otherwise). Returns
  // the entry's index; it is committed when a Ready hands it out to apply.
  Result<uint64_t> Propose(std::string data);
  // A linearizable read: leader only (kUnavailable otherwise). Once the
  // leader has committed an entry of its term and a quorum has confirmed its
  // leadership, a Ready releases `request_id` with ok = true together with
  // (or after) the committed entries the read must see; if leadership is lost
  // before, it is released with ok = false.
  Status ReadIndex(uint64_t request_id);
  // The owner has snapshotted its state machine as of `index` (applied, i.e.
  // handed out by a Ready): the log up to it is replaced by the snapshot.
  // The owner persists the snapshot itself (RaftStorage::SaveSnapshot).
  Status Compact(uint64_t index, std::string data);
  Status AddLearner(const std::string& id);
  Status RemoveLearner(const std::string& id);

  bool HasReady() const;
  Ready TakeReady();

  Role role() const { return role_; }
  uint64_t term() const { return term_; }
  const std::string& voted_for() const { return voted_for_; }
  const std::string& leader() const { return leader_; }  // empty: unknown
  const std::string& id() const { return config_.self; }
  uint64_t commit_index() const { return commit_; }
  uint64_t applied_index() const { return applied_; }  // handed out to apply
  uint64_t first_index() const { return snapshot_.index + 1; }
  uint64_t last_index() const { return snapshot_.index + entries_.size(); }
  const Snapshot& snapshot() const { return snapshot_; }
  const std::set<std::string>& learners() const { return learners_; }
  // One row per follower, sorted by id; empty unless leader.
  std::vector<PeerProgress> Progress() const;
  uint64_t bad_messages() const { return bad_messages_; }

 private:
  struct Peer {
    bool learner = false;
    uint64_t match = 0;
    uint64_t next = 1;
    ReplicationState state = ReplicationState::kProbe;
    bool probe_sent = false;        // kProbe: an append is on its way
    uint64_t pending_snapshot = 0;  // kSnapshot: the index sent
    int snapshot_ticks = 0;         // kSnapshot: since it was sent
    bool recent_active = false;
    uint64_t read_ack = 0;     // the highest ReadIndex round it confirmed
    uint64_t commit_sent = 0;  // the highest commit index it can have learnt from us
  };
  struct PendingRead {
    uint64_t request_id = 0;
    uint64_t index = 0;
    uint64_t round = 0;  // 0: waits for the leader's first commit in its term
  };
  enum class VoteResult { kPending, kWon, kLost };

  Raft(Config config, DurableState state);

  // The log.
  std::optional<uint64_t> TermAt(uint64_t index) const;
  uint64_t LastTerm() const { return *TermAt(last_index()); }
  const Entry& EntryAt(uint64_t index) const { return entries_[index - first_index()]; }
  bool IsUpToDate(uint64_t last_term, uint64_t last_index) const;
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;
  void AppendFromLeader(const std::vector<Entry>& entries);
  void TruncateFrom(uint64_t index);
  void CommitTo(uint64_t index);
  bool CommittedInTerm() const { return TermAt(commit_) == term_; }
  HardState CurrentHardState() const;

  // Roles.
  void Reset(uint64_t term);
  void ResetElectionTimeout();
  void BecomeFollower(uint64_t term, std::string leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Campaign(bool pre_vote);
  VoteResult RecordVote(const std::string& id, bool granted);
  bool IsVoter(const std::string& id) const;
  size_t Quorum() const { return config_.voters.size() / 2 + 1; }
  bool InLease() const;

  // Ticks.
  void TickElection();
  void TickLeader();
  bool QuorumActive() const;

  // Messages in.
  Status Validate(const Message& m) const;
  Status ValidateAppend(const Message& m) const;
  bool StepHigherTerm(const Message& m);
  void StepLowerTerm(const Message& m);
  Status Dispatch(const Message& m);
  void HandleVoteRequest(const Message& m);
  Status StepLeader(const Message& m);
  Status StepCandidate(const Message& m);
  Status StepFollower(const Message& m);
  Status HandleAppend(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  Status HandleAppendReply(const std::string& from, Peer& peer, const Message& m);
  Status HandleHeartbeatReply(const std::string& from, Peer& peer, const Message& m);

  // Messages out.
  Message NewMessage(MessageType type, const std::string& to) const;
  void Send(Message m) { outbox_.push_back(std::move(m)); }
  void Reply(const Message& to_this, MessageType type, uint64_t term, bool reject);
  bool SendAppend(const std::string& to, Peer& peer, bool send_if_empty);
  bool SendAppendNow(const std::string& to, Peer& peer, bool send_if_empty);
  bool SendSnapshot(const std::string& to, Peer& peer);
  void BroadcastAppend();
  void BroadcastHeartbeat();

  // Replication progress.
  static bool IsPaused(const Peer& peer, uint64_t window);
  uint64_t Window() const { return config_.max_entries_per_append * config_.max_inflight_appends; }
  static void BecomeProbe(Peer& peer);
  static void BecomeReplicate(Peer& peer);
  bool MaybeDecreaseNext(Peer& peer, uint64_t rejected, uint64_t hint) const;
  bool MaybeCommit();
  Peer* FindPeer(const std::string& id);
  const Peer* FindPeer(const std::string& id) const;

  // Reads.
  void StartPendingReads();
  void ConfirmReads();
  void FailPendingReads();
  void ReleaseReads(Ready* rd);

  uint64_t NextRandom();

  Config config_;
  bool voter_ = false;
  uint64_t rng_state_ = 0;
  std::set<std::string> learners_;

  // Persistent: the hard state and the log.
  uint64_t term_ = 0;
  std::string voted_for_;
  Snapshot snapshot_;
  std::vector<Entry> entries_;  // entries_[i].index == snapshot_.index + 1 + i
  uint64_t commit_ = 0;

  // What the owner has been handed.
  HardState handed_hard_state_;
  uint64_t applied_ = 0;          // committed entries (or snapshot) handed out to apply
  uint64_t unstable_ = 1;         // the first entry not yet handed out to persist
  bool snapshot_unsent_ = false;  // snapshot_ came from the leader; not handed out yet

  // Volatile.
  Role role_ = Role::kFollower;
  std::string leader_;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_timeout_ = 0;
  std::map<std::string, bool> votes_;  // in the current (pre-)election
  std::map<std::string, Peer> peers_;  // leader only: everyone but self
  uint64_t read_round_ = 0;
  std::vector<PendingRead> pending_reads_;    // leader only
  std::vector<PendingRead> confirmed_reads_;  // released once applied
  std::vector<ReadState> failed_reads_;
  std::vector<Message> outbox_;
  uint64_t bad_messages_ = 0;
};

}  // namespace meshbus::raft
