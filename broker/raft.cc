#include "broker/raft.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <utility>

namespace meshbus::raft {
namespace {

// Beyond any real log or term, and low enough that index + 1 never wraps.
constexpr uint64_t kMaxIndex = uint64_t{1} << 62;

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

bool IsVoteRequest(MessageType t) {
  return t == MessageType::kPreVote || t == MessageType::kVote;
}

bool IsElectionMessage(MessageType t) {
  return IsVoteRequest(t) || t == MessageType::kPreVoteReply || t == MessageType::kVoteReply;
}

bool IsFromLeader(MessageType t) {
  return t == MessageType::kAppend || t == MessageType::kHeartbeat || t == MessageType::kSnapshot;
}

Status Bad(const Message& m, const std::string& why) {
  return Status::InvalidArgument("raft " + std::string(MessageTypeName(m.type)) + " from '" +
                                 m.from + "': " + why);
}

Status ValidateConfig(Config* c) {
  if (c->self.empty()) return Status::InvalidArgument("raft config: self is empty");
  if (c->voters.empty()) return Status::InvalidArgument("raft config: no voters");
  std::sort(c->voters.begin(), c->voters.end());
  if (c->voters.front().empty()) return Status::InvalidArgument("raft config: an empty voter id");
  if (std::adjacent_find(c->voters.begin(), c->voters.end()) != c->voters.end()) {
    return Status::InvalidArgument("raft config: a voter is listed twice");
  }
  if (c->election_ticks_min < 1 || c->election_ticks_max <= c->election_ticks_min) {
    return Status::InvalidArgument(
        "raft config: need 1 <= election_ticks_min < election_ticks_max");
  }
  if (c->heartbeat_ticks < 1 || c->heartbeat_ticks >= c->election_ticks_min) {
    return Status::InvalidArgument("raft config: need 1 <= heartbeat_ticks < election_ticks_min");
  }
  if (c->max_entries_per_append < 1 || c->max_inflight_appends < 1) {
    return Status::InvalidArgument("raft config: append limits must be at least 1");
  }
  return Status::Ok();
}

Status ValidateState(const DurableState& s) {
  const Snapshot& snap = s.snapshot;
  if (s.hard_state.term > kMaxIndex || s.hard_state.commit > kMaxIndex || snap.index > kMaxIndex ||
      snap.index + s.entries.size() > kMaxIndex) {
    return Status::InvalidArgument("raft state: an index or term out of range");
  }
  if ((snap.index == 0) != (snap.term == 0)) {
    return Status::InvalidArgument("raft state: a snapshot needs both an index and a term");
  }
  uint64_t term = snap.term;
  for (size_t i = 0; i < s.entries.size(); ++i) {
    const Entry& e = s.entries[i];
    if (e.index != snap.index + 1 + i) {
      return Status::InvalidArgument("raft state: log entry " + std::to_string(e.index) +
                                     " where " + std::to_string(snap.index + 1 + i) +
                                     " was expected");
    }
    if (e.term < term || e.term == 0) {
      return Status::InvalidArgument("raft state: term goes back at log entry " +
                                     std::to_string(e.index));
    }
    term = e.term;
  }
  if (term > s.hard_state.term) {
    return Status::InvalidArgument("raft state: the log has a term beyond the current term");
  }
  return Status::Ok();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre_candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
    case Role::kLearner:
      return "learner";
  }
  return "unknown";
}

std::string_view ReplicationStateName(ReplicationState state) {
  switch (state) {
    case ReplicationState::kProbe:
      return "probe";
    case ReplicationState::kReplicate:
      return "replicate";
    case ReplicationState::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

// ---- Construction ----

Result<Raft> Raft::Create(Config config, DurableState state) {
  if (Status s = ValidateConfig(&config); !s.ok()) return s;
  if (Status s = ValidateState(state); !s.ok()) return s;
  return Raft(std::move(config), std::move(state));
}

Raft::Raft(Config config, DurableState state) : config_(std::move(config)) {
  voter_ = IsVoter(config_.self);
  rng_state_ = config_.seed ^ Fnv1a(config_.self);
  handed_hard_state_ = state.hard_state;
  term_ = state.hard_state.term;
  voted_for_ = std::move(state.hard_state.voted_for);
  snapshot_ = std::move(state.snapshot);
  entries_ = std::move(state.entries);
  // A crash between the writes of a Ready can leave the stored commit behind
  // the snapshot, which holds only committed entries: raise it. Lowering it
  // to the log's end (never needed if the disk keeps its fsyncs) is safe too:
  // it is learnt again.
  commit_ = std::clamp(state.hard_state.commit, snapshot_.index, last_index());
  applied_ = snapshot_.index;
  unstable_ = last_index() + 1;
  BecomeFollower(term_, "");
}

// ---- The log ----

std::optional<uint64_t> Raft::TermAt(uint64_t index) const {
  if (index == snapshot_.index) return snapshot_.term;
  if (index < snapshot_.index || index > last_index()) return std::nullopt;
  return EntryAt(index).term;
}

bool Raft::IsUpToDate(uint64_t last_term, uint64_t last) const {
  uint64_t my_term = LastTerm();
  return last_term > my_term || (last_term == my_term && last >= last_index());
}

// The last index <= `index` whose term is <= `term`: where two logs that
// disagree at `index` may agree again. Stops at the snapshot.
uint64_t Raft::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, last_index());
  if (index <= snapshot_.index) return index;
  auto begin = entries_.begin();
  auto end = begin + static_cast<ptrdiff_t>(index - snapshot_.index);
  // Terms never decrease along a log: binary search.
  auto it =
      std::upper_bound(begin, end, term, [](uint64_t t, const Entry& e) { return t < e.term; });
  return it == begin ? snapshot_.index : std::prev(it)->index;
}

// `entries` follow an entry we share with the leader, at or after commit_.
void Raft::AppendFromLeader(const std::vector<Entry>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    // Already there: a delayed or duplicated append must not cut what follows.
    if (TermAt(e.index) == e.term) continue;
    TruncateFrom(e.index);
    entries_.insert(entries_.end(), entries.begin() + static_cast<ptrdiff_t>(i), entries.end());
    return;
  }
}

void Raft::TruncateFrom(uint64_t index) {
  if (index > last_index()) return;
  entries_.resize(index - first_index());
  unstable_ = std::min(unstable_, index);
}

void Raft::CommitTo(uint64_t index) {
  commit_ = std::max(commit_, index);
}

HardState Raft::CurrentHardState() const {
  return HardState{term_, voted_for_, commit_};
}

// ---- Roles ----

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    voted_for_.clear();
  }
  leader_.clear();
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetElectionTimeout();
  votes_.clear();
  peers_.clear();
  FailPendingReads();
}

void Raft::ResetElectionTimeout() {
  uint64_t span = static_cast<uint64_t>(config_.election_ticks_max - config_.election_ticks_min);
  randomized_timeout_ = config_.election_ticks_min + static_cast<int>(NextRandom() % span);
}

void Raft::BecomeFollower(uint64_t term, std::string leader) {
  Reset(term);
  role_ = voter_ ? Role::kFollower : Role::kLearner;
  leader_ = std::move(leader);
}

// A pre-candidate keeps its term and its vote: it only asks whether it could win.
void Raft::BecomePreCandidate() {
  role_ = Role::kPreCandidate;
  leader_.clear();
  votes_.clear();
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  voted_for_ = config_.self;
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  Reset(term_);
  role_ = Role::kLeader;
  leader_ = config_.self;
  Peer fresh;
  fresh.next = last_index() + 1;
  for (const std::string& v : config_.voters) {
    if (v != config_.self) peers_[v] = fresh;
  }
  fresh.learner = true;
  for (const std::string& l : learners_) peers_[l] = fresh;
  // Entries of earlier terms commit only through one of ours (§5.4.2): the
  // no-op makes that happen without waiting for a proposal.
  entries_.push_back(Entry{term_, last_index() + 1, ""});
  MaybeCommit();
  BroadcastAppend();
}

void Raft::Campaign(bool pre_vote) {
  uint64_t term = 0;
  MessageType type = MessageType::kVote;
  if (pre_vote) {
    BecomePreCandidate();
    term = term_ + 1;
    type = MessageType::kPreVote;
  } else {
    BecomeCandidate();
    term = term_;
    type = MessageType::kVote;
  }
  if (RecordVote(config_.self, true) == VoteResult::kWon) {
    if (pre_vote) {
      Campaign(false);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (const std::string& v : config_.voters) {
    if (v == config_.self) continue;
    Message m = NewMessage(type, v);
    m.term = term;
    m.index = last_index();
    m.log_term = LastTerm();
    Send(std::move(m));
  }
}

Raft::VoteResult Raft::RecordVote(const std::string& id, bool granted) {
  votes_.emplace(id, granted);  // the first answer counts
  size_t yes = 0;
  for (const auto& [voter, vote] : votes_) yes += vote ? 1 : 0;
  size_t unanswered = config_.voters.size() - votes_.size();
  if (yes >= Quorum()) return VoteResult::kWon;
  if (yes + unanswered < Quorum()) return VoteResult::kLost;
  return VoteResult::kPending;
}

bool Raft::IsVoter(const std::string& id) const {
  return std::binary_search(config_.voters.begin(), config_.voters.end(), id);
}

bool Raft::InLease() const {
  return !leader_.empty() && election_elapsed_ < config_.election_ticks_min;
}

// ---- Ticks ----

void Raft::Tick() {
  if (role_ == Role::kLeader) {
    TickLeader();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  if (election_elapsed_ < std::numeric_limits<int>::max()) ++election_elapsed_;
  if (!voter_) {
    // A learner never campaigns, but stops naming a leader gone silent.
    if (election_elapsed_ >= randomized_timeout_) leader_.clear();
    return;
  }
  // A single voter needs nobody's vote: waiting would only delay it.
  bool alone = config_.voters.size() == 1;
  if (alone || election_elapsed_ >= randomized_timeout_) {
    election_elapsed_ = 0;
    Campaign(/*pre_vote=*/true);
  }
}

void Raft::TickLeader() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_ticks_min) {
    election_elapsed_ = 0;
    // CheckQuorum: cut off from a quorum, we may already have been replaced;
    // stepping down makes the broker answer "no leader" instead.
    if (!QuorumActive()) {
      BecomeFollower(term_, "");
      return;
    }
    for (auto& [id, peer] : peers_) peer.recent_active = false;
  }
  for (auto& [id, peer] : peers_) {
    // A snapshot that got no answer (lost, or the follower restarted) is sent again.
    if (peer.state == ReplicationState::kSnapshot &&
        ++peer.snapshot_ticks >= config_.election_ticks_min) {
      BecomeProbe(peer);
    }
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    BroadcastHeartbeat();
  }
}

bool Raft::QuorumActive() const {
  size_t active = 1;  // self
  for (const auto& [id, peer] : peers_) {
    if (!peer.learner && peer.recent_active) ++active;
  }
  return active >= Quorum();
}

// ---- Messages in ----

Status Raft::Step(const Message& m) {
  Status status = Validate(m);
  if (status.ok()) {
    if (m.term > term_ && !StepHigherTerm(m)) return Status::Ok();
    if (m.term < term_) {
      StepLowerTerm(m);
      return Status::Ok();
    }
    status = Dispatch(m);
  }
  if (!status.ok()) ++bad_messages_;
  return status;
}

Status Raft::Validate(const Message& m) const {
  if (static_cast<uint8_t>(m.type) > static_cast<uint8_t>(MessageType::kHeartbeatReply)) {
    return Bad(m, "unknown type");
  }
  if (m.to != config_.self) return Bad(m, "addressed to '" + m.to + "'");
  if (m.from == config_.self) return Bad(m, "from this node itself");
  bool from_voter = IsVoter(m.from);
  if (!from_voter && learners_.count(m.from) == 0) return Bad(m, "unknown sender");
  if (IsElectionMessage(m.type) && (!from_voter || !voter_)) {
    return Bad(m, "learners take no part in elections");
  }
  if (IsFromLeader(m.type) && !from_voter) return Bad(m, "a learner cannot lead");
  for (uint64_t v : {m.term, m.index, m.log_term, m.commit, m.hint_index, m.hint_term, m.context,
                     m.snapshot.index, m.snapshot.term}) {
    if (v > kMaxIndex) return Bad(m, "an index or term out of range");
  }
  if ((IsVoteRequest(m.type) || IsFromLeader(m.type)) && m.term == 0) return Bad(m, "term 0");
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      if (m.log_term > m.term || (m.index == 0) != (m.log_term == 0)) {
        return Bad(m, "impossible last entry");
      }
      return Status::Ok();
    case MessageType::kAppend:
      return ValidateAppend(m);
    case MessageType::kSnapshot:
      if (m.snapshot.index == 0 || m.snapshot.term == 0 || m.snapshot.term > m.term) {
        return Bad(m, "impossible snapshot");
      }
      return Status::Ok();
    default:
      return Status::Ok();
  }
}

Status Raft::ValidateAppend(const Message& m) const {
  if (m.log_term > m.term || (m.index == 0) != (m.log_term == 0)) {
    return Bad(m, "impossible previous entry");
  }
  if (m.entries.size() > kMaxIndex - m.index) return Bad(m, "indexes out of range");
  uint64_t term = m.log_term;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (e.index != m.index + 1 + i) return Bad(m, "entries out of sequence");
    if (e.term < term || e.term > m.term) return Bad(m, "entry terms out of order");
    term = e.term;
  }
  return Status::Ok();
}

// Returns false when the message must be dropped.
bool Raft::StepHigherTerm(const Message& m) {
  // Lease: we heard from a leader less than an election timeout ago, so this
  // candidate is probably back from a partition; our vote (or even our term)
  // would depose a healthy leader.
  if (IsVoteRequest(m.type) && InLease()) return false;
  if (m.type == MessageType::kPreVote) return true;  // never changes our term
  // The term moves only when the pre-vote is won.
  if (m.type == MessageType::kPreVoteReply && !m.reject) return true;
  BecomeFollower(m.term, IsFromLeader(m.type) ? m.from : "");
  return true;
}

void Raft::StepLowerTerm(const Message& m) {
  if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat) {
    // A leader deposed while cut off learns our term from the answer and
    // steps down. Without it a node whose term ran ahead would be stuck:
    // PreVote and the lease keep it from winning or forcing an election.
    Send(NewMessage(MessageType::kAppendReply, m.from));
  } else if (m.type == MessageType::kPreVote) {
    Reply(m, MessageType::kPreVoteReply, term_, /*reject=*/true);
  }
}

Status Raft::Dispatch(const Message& m) {
  if (IsVoteRequest(m.type)) {
    HandleVoteRequest(m);
    return Status::Ok();
  }
  switch (role_) {
    case Role::kLeader:
      return StepLeader(m);
    case Role::kPreCandidate:
    case Role::kCandidate:
      return StepCandidate(m);
    case Role::kFollower:
    case Role::kLearner:
      return StepFollower(m);
  }
  return Status::Ok();
}

void Raft::HandleVoteRequest(const Message& m) {
  bool pre_vote = m.type == MessageType::kPreVote;
  MessageType reply = pre_vote ? MessageType::kPreVoteReply : MessageType::kVoteReply;
  bool can_vote = voted_for_ == m.from || (voted_for_.empty() && leader_.empty()) ||
                  (pre_vote && m.term > term_);
  if (can_vote && IsUpToDate(m.log_term, m.index)) {
    // Answered in the term asked about, so that a pre-candidate counts it.
    Reply(m, reply, m.term, /*reject=*/false);
    if (!pre_vote) {
      election_elapsed_ = 0;
      voted_for_ = m.from;
    }
  } else {
    Reply(m, reply, term_, /*reject=*/true);
  }
}

Status Raft::StepLeader(const Message& m) {
  Peer* peer = FindPeer(m.from);
  switch (m.type) {
    case MessageType::kAppendReply:
      return peer != nullptr ? HandleAppendReply(m.from, *peer, m) : Status::Ok();
    case MessageType::kHeartbeatReply:
      return peer != nullptr ? HandleHeartbeatReply(m.from, *peer, m) : Status::Ok();
    case MessageType::kAppend:
    case MessageType::kHeartbeat:
    case MessageType::kSnapshot:
      return Bad(m, "a second leader in term " + std::to_string(term_));
    default:
      return Status::Ok();  // late answers to our election
  }
}

Status Raft::StepCandidate(const Message& m) {
  bool pre = role_ == Role::kPreCandidate;
  switch (m.type) {
    case MessageType::kAppend:
    case MessageType::kHeartbeat:
    case MessageType::kSnapshot:
      BecomeFollower(term_, m.from);  // someone won this term
      return StepFollower(m);
    case MessageType::kPreVoteReply:
    case MessageType::kVoteReply:
      break;
    default:
      return Status::Ok();
  }
  // A late answer to an earlier (pre-)election does not count.
  if (pre != (m.type == MessageType::kPreVoteReply)) return Status::Ok();
  if (pre && !m.reject && m.term != term_ + 1) return Status::Ok();
  switch (RecordVote(m.from, !m.reject)) {
    case VoteResult::kWon:
      if (pre) {
        Campaign(false);
      } else {
        BecomeLeader();
      }
      break;
    case VoteResult::kLost:
      BecomeFollower(term_, "");
      break;
    case VoteResult::kPending:
      break;
  }
  return Status::Ok();
}

Status Raft::StepFollower(const Message& m) {
  if (!IsFromLeader(m.type)) return Status::Ok();  // answers meant for an earlier role
  if (!leader_.empty() && leader_ != m.from) {
    return Bad(m, "a second leader in term " + std::to_string(term_));
  }
  election_elapsed_ = 0;
  leader_ = m.from;
  switch (m.type) {
    case MessageType::kAppend:
      return HandleAppend(m);
    case MessageType::kHeartbeat:
      HandleHeartbeat(m);
      return Status::Ok();
    default:
      HandleSnapshot(m);
      return Status::Ok();
  }
}

Status Raft::HandleAppend(const Message& m) {
  Message reply = NewMessage(MessageType::kAppendReply, m.from);
  if (m.index < commit_) {
    // Everything up to our commit is settled (and never rewritten): the
    // leader resumes from there.
    reply.index = commit_;
    Send(std::move(reply));
    return Status::Ok();
  }
  if (TermAt(m.index) != m.log_term) {
    uint64_t hint = FindConflictByTerm(std::min(m.index, last_index()), m.log_term);
    reply.reject = true;
    reply.index = m.index;
    reply.hint_index = hint;
    reply.hint_term = TermAt(hint).value_or(0);
    Send(std::move(reply));
    return Status::Ok();
  }
  AppendFromLeader(m.entries);
  uint64_t last_new = m.index + m.entries.size();
  // Only up to what this message proved we share with the leader: entries
  // after last_new may still be from an old term.
  CommitTo(std::min(m.commit, last_new));
  reply.index = last_new;
  Send(std::move(reply));
  return Status::Ok();
}

void Raft::HandleHeartbeat(const Message& m) {
  // The leader caps m.commit at what it knows we share with it.
  CommitTo(std::min(m.commit, last_index()));
  Message reply = NewMessage(MessageType::kHeartbeatReply, m.from);
  reply.context = m.context;
  Send(std::move(reply));
}

void Raft::HandleSnapshot(const Message& m) {
  const Snapshot& s = m.snapshot;
  if (s.index > commit_) {
    if (TermAt(s.index) == s.term) {
      // We have that entry, hence everything before it: keep the log.
      CommitTo(s.index);
    } else {
      snapshot_ = s;
      entries_.clear();
      commit_ = s.index;
      unstable_ = s.index + 1;
      snapshot_unsent_ = true;
    }
  }
  Message reply = NewMessage(MessageType::kAppendReply, m.from);
  reply.index = commit_;
  Send(std::move(reply));
}

Status Raft::HandleAppendReply(const std::string& from, Peer& peer, const Message& m) {
  if (m.index > last_index()) return Bad(m, "index beyond the leader's log");
  peer.recent_active = true;
  if (m.reject) {
    uint64_t hint = m.hint_index;
    if (m.hint_term > 0) hint = FindConflictByTerm(m.hint_index, m.hint_term);
    if (MaybeDecreaseNext(peer, m.index, hint)) {
      if (peer.state == ReplicationState::kReplicate) BecomeProbe(peer);
      SendAppend(from, peer, /*send_if_empty=*/true);
    }
    return Status::Ok();
  }
  bool advanced = m.index > peer.match;
  bool probe_answered = m.index == peer.match && peer.state == ReplicationState::kProbe;
  if (!advanced && !probe_answered) return Status::Ok();  // stale or duplicate
  peer.match = m.index;
  peer.next = std::max(peer.next, m.index + 1);
  peer.probe_sent = false;
  if (peer.state == ReplicationState::kProbe) {
    BecomeReplicate(peer);
  } else if (peer.state == ReplicationState::kSnapshot &&
             (peer.match >= peer.pending_snapshot || peer.match + 1 >= first_index())) {
    BecomeReplicate(peer);
  }
  if (MaybeCommit()) {
    BroadcastAppend();
  } else if (peer.commit_sent < std::min(commit_, peer.match)) {
    SendAppend(from, peer, /*send_if_empty=*/true);  // it was paused when the commit moved
  }
  while (SendAppend(from, peer, /*send_if_empty=*/false)) {
  }
  return Status::Ok();
}

Status Raft::HandleHeartbeatReply(const std::string& from, Peer& peer, const Message& m) {
  if (m.context > read_round_) return Bad(m, "confirms a read round never started");
  peer.recent_active = true;
  peer.probe_sent = false;
  if (peer.match < last_index()) {
    if (peer.state == ReplicationState::kReplicate) {
      // A full window may hide lost appends: one more, past the window,
      // either extends the stream or meets the gap, is rejected, and starts a
      // probe (etcd frees one in-flight slot per heartbeat the same way).
      SendAppendNow(from, peer, /*send_if_empty=*/true);
    } else {
      SendAppend(from, peer, /*send_if_empty=*/true);
    }
  }
  if (!peer.learner) {
    peer.read_ack = std::max(peer.read_ack, m.context);
    ConfirmReads();
  }
  return Status::Ok();
}

// ---- Messages out ----

Message Raft::NewMessage(MessageType type, const std::string& to) const {
  Message m;
  m.type = type;
  m.from = config_.self;
  m.to = to;
  m.term = term_;
  return m;
}

void Raft::Reply(const Message& to_this, MessageType type, uint64_t term, bool reject) {
  Message m = NewMessage(type, to_this.from);
  m.term = term;
  m.reject = reject;
  Send(std::move(m));
}

// Returns whether a message was sent.
bool Raft::SendAppend(const std::string& to, Peer& peer, bool send_if_empty) {
  return !IsPaused(peer, Window()) && SendAppendNow(to, peer, send_if_empty);
}

bool Raft::SendAppendNow(const std::string& to, Peer& peer, bool send_if_empty) {
  uint64_t prev = peer.next - 1;
  std::optional<uint64_t> prev_term = TermAt(prev);
  if (!prev_term) return SendSnapshot(to, peer);  // compacted away
  uint64_t last = std::min(last_index(), prev + config_.max_entries_per_append);
  if (last == prev && !send_if_empty) return false;
  Message m = NewMessage(MessageType::kAppend, to);
  m.index = prev;
  m.log_term = *prev_term;
  m.commit = commit_;
  auto from = entries_.begin() + static_cast<ptrdiff_t>(prev + 1 - first_index());
  m.entries.assign(from, from + static_cast<ptrdiff_t>(last - prev));
  Send(std::move(m));
  peer.commit_sent = std::max(peer.commit_sent, std::min(commit_, last));
  if (last > prev) {
    if (peer.state == ReplicationState::kReplicate) {
      peer.next = last + 1;  // optimistic: the next batch may follow at once
    } else {
      peer.probe_sent = true;
    }
  }
  return true;
}

bool Raft::SendSnapshot(const std::string& to, Peer& peer) {
  // Silent lately, probably down: not worth a (large) snapshot yet.
  if (!peer.recent_active) return false;
  Message m = NewMessage(MessageType::kSnapshot, to);
  m.snapshot = snapshot_;
  Send(std::move(m));
  peer.state = ReplicationState::kSnapshot;
  peer.pending_snapshot = snapshot_.index;
  peer.snapshot_ticks = 0;
  return true;
}

void Raft::BroadcastAppend() {
  for (auto& [id, peer] : peers_) SendAppend(id, peer, /*send_if_empty=*/true);
}

void Raft::BroadcastHeartbeat() {
  for (auto& [id, peer] : peers_) {
    Message m = NewMessage(MessageType::kHeartbeat, id);
    // Capped at the follower's match: its log beyond may differ from ours.
    m.commit = std::min(peer.match, commit_);
    m.context = read_round_;
    Send(std::move(m));
    peer.commit_sent = std::max(peer.commit_sent, m.commit);
  }
}

// ---- Replication progress ----

bool Raft::IsPaused(const Peer& peer, uint64_t window) {
  switch (peer.state) {
    case ReplicationState::kProbe:
      return peer.probe_sent;
    case ReplicationState::kReplicate:
      return peer.next - 1 - peer.match >= window;
    case ReplicationState::kSnapshot:
      return true;
  }
  return true;
}

void Raft::BecomeProbe(Peer& peer) {
  peer.state = ReplicationState::kProbe;
  peer.next = peer.match + 1;
  peer.probe_sent = false;
}

void Raft::BecomeReplicate(Peer& peer) {
  peer.state = ReplicationState::kReplicate;
  peer.next = peer.match + 1;
  peer.probe_sent = false;
}

// The follower rejected the append after `rejected`; `hint` is where the
// logs may agree. Returns whether `next` moved (and an append is due).
bool Raft::MaybeDecreaseNext(Peer& peer, uint64_t rejected, uint64_t hint) const {
  if (peer.state == ReplicationState::kReplicate) {
    if (rejected <= peer.match) return false;  // stale: older than an acknowledgement
    peer.next = peer.match + 1;
    return true;
  }
  if (peer.next - 1 != rejected) return false;  // stale: not the probe in flight
  peer.next = std::max(std::min(rejected, hint + 1), peer.match + 1);
  peer.probe_sent = false;
  return true;
}

bool Raft::MaybeCommit() {
  std::vector<uint64_t> matches;
  matches.reserve(config_.voters.size());
  for (const std::string& v : config_.voters) {
    const Peer* peer = v == config_.self ? nullptr : FindPeer(v);
    matches.push_back(peer == nullptr ? last_index() : peer->match);
  }
  std::sort(matches.begin(), matches.end(), std::greater<>());
  uint64_t index = matches[Quorum() - 1];
  // §5.4.2: counting replicas commits only entries of the current term; the
  // ones before are committed with them.
  if (index <= commit_ || TermAt(index) != term_) return false;
  commit_ = index;
  StartPendingReads();
  return true;
}

Raft::Peer* Raft::FindPeer(const std::string& id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

const Raft::Peer* Raft::FindPeer(const std::string& id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

// ---- Reads ----

// Starts a confirmation round for the reads not yet in one. They wait for the
// leader's first commit in its term: only then does commit_ cover everything
// an earlier leader may have acknowledged.
void Raft::StartPendingReads() {
  if (!CommittedInTerm()) return;
  bool started = false;
  for (PendingRead& r : pending_reads_) {
    if (r.round != 0) continue;
    if (!started) {
      ++read_round_;
      started = true;
    }
    r.index = commit_;
    r.round = read_round_;
  }
  if (!started) return;
  BroadcastHeartbeat();
  ConfirmReads();  // a single voter confirms alone
}

// A round is confirmed when a quorum of voters answered a heartbeat sent
// after it started: no other leader can have been elected before that.
void Raft::ConfirmReads() {
  if (pending_reads_.empty()) return;
  std::vector<uint64_t> acks;
  acks.reserve(config_.voters.size());
  for (const std::string& v : config_.voters) {
    const Peer* peer = v == config_.self ? nullptr : FindPeer(v);
    acks.push_back(peer == nullptr ? read_round_ : peer->read_ack);
  }
  std::sort(acks.begin(), acks.end(), std::greater<>());
  uint64_t confirmed = acks[Quorum() - 1];
  auto unconfirmed = std::stable_partition(
      pending_reads_.begin(), pending_reads_.end(),
      [confirmed](const PendingRead& r) { return r.round != 0 && r.round <= confirmed; });
  confirmed_reads_.insert(confirmed_reads_.end(), pending_reads_.begin(), unconfirmed);
  pending_reads_.erase(pending_reads_.begin(), unconfirmed);
}

void Raft::FailPendingReads() {
  for (const PendingRead& r : pending_reads_) {
    failed_reads_.push_back(ReadState{r.request_id, false, 0});
  }
  pending_reads_.clear();
}

void Raft::ReleaseReads(Ready* rd) {
  rd->reads = std::move(failed_reads_);
  failed_reads_.clear();
  auto waiting =
      std::stable_partition(confirmed_reads_.begin(), confirmed_reads_.end(),
                            [this](const PendingRead& r) { return r.index <= applied_; });
  for (auto it = confirmed_reads_.begin(); it != waiting; ++it) {
    rd->reads.push_back(ReadState{it->request_id, true, it->index});
  }
  confirmed_reads_.erase(confirmed_reads_.begin(), waiting);
}

Status Raft::ReadIndex(uint64_t request_id) {
  if (role_ != Role::kLeader) return Status::Unavailable("not the leader");
  pending_reads_.push_back(PendingRead{request_id, 0, 0});
  StartPendingReads();
  return Status::Ok();
}

// ---- The owner's calls ----

Result<uint64_t> Raft::Propose(std::string data) {
  if (role_ != Role::kLeader) return Status::Unavailable("not the leader");
  if (data.empty()) return Status::InvalidArgument("empty data is reserved for the no-op");
  uint64_t index = last_index() + 1;
  entries_.push_back(Entry{term_, index, std::move(data)});
  MaybeCommit();  // a single voter commits alone
  BroadcastAppend();
  return index;
}

Status Raft::Compact(uint64_t index, std::string data) {
  if (index <= snapshot_.index) {
    return Status::InvalidArgument("already compacted up to " + std::to_string(snapshot_.index));
  }
  if (index > applied_) {
    return Status::InvalidArgument("entry " + std::to_string(index) + " is not applied yet");
  }
  uint64_t term = *TermAt(index);
  entries_.erase(entries_.begin(),
                 entries_.begin() + static_cast<ptrdiff_t>(index - snapshot_.index));
  snapshot_ = Snapshot{index, term, std::move(data)};
  return Status::Ok();
}

Status Raft::AddLearner(const std::string& id) {
  if (id.empty() || id == config_.self || IsVoter(id)) {
    return Status::InvalidArgument("raft: '" + id + "' cannot be a learner");
  }
  if (!learners_.insert(id).second) return Status::Ok();
  if (role_ == Role::kLeader) {
    Peer peer;
    peer.learner = true;
    peer.next = last_index() + 1;
    peers_[id] = peer;
  }
  return Status::Ok();
}

Status Raft::RemoveLearner(const std::string& id) {
  if (learners_.erase(id) == 0) return Status::NotFound("raft: '" + id + "' is not a learner");
  peers_.erase(id);
  return Status::Ok();
}

bool Raft::HasReady() const {
  return CurrentHardState() != handed_hard_state_ || snapshot_unsent_ ||
         unstable_ <= last_index() || !outbox_.empty() || applied_ < commit_ ||
         !failed_reads_.empty() || !confirmed_reads_.empty();
}

Ready Raft::TakeReady() {
  Ready rd;
  HardState hs = CurrentHardState();
  if (hs != handed_hard_state_) {
    rd.hard_state = hs;
    handed_hard_state_ = std::move(hs);
  }
  if (snapshot_unsent_) {
    rd.snapshot = snapshot_;
    snapshot_unsent_ = false;
    applied_ = snapshot_.index;
  }
  for (uint64_t i = std::max(unstable_, first_index()); i <= last_index(); ++i) {
    rd.entries.push_back(EntryAt(i));
  }
  unstable_ = last_index() + 1;
  rd.messages.swap(outbox_);
  for (uint64_t i = applied_ + 1; i <= commit_; ++i) rd.committed_entries.push_back(EntryAt(i));
  applied_ = commit_;
  ReleaseReads(&rd);
  return rd;
}

std::vector<PeerProgress> Raft::Progress() const {
  std::vector<PeerProgress> out;
  if (role_ != Role::kLeader) return out;
  for (const auto& [id, peer] : peers_) {
    out.push_back(
        PeerProgress{id, peer.learner, peer.match, peer.next, peer.recent_active, peer.state});
  }
  return out;
}

uint64_t Raft::NextRandom() {
  // splitmix64: small, and the same sequence on every platform.
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace meshbus::raft
