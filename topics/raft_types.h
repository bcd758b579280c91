// The values Raft nodes exchange: log entries, snapshots and messages. Plain
// value types, shared by the consensus core (broker/raft.h) and the wire
// codec (topics/wire.h), which carries them between brokers. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meshbus::raft {

// One log entry. `data` is opaque to Raft; an entry with empty data is the
// no-op a leader appends when it is elected: the owner skips it when applying
// (Propose refuses empty data, so the two cannot be confused).
struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  std::string data;
  bool operator==(const Entry&) const = default;
};

// The owner's state machine as of the entry (index, term), which it includes.
struct Snapshot {
  uint64_t index = 0;  // 0: no snapshot
  uint64_t term = 0;
  std::string data;  // opaque to Raft
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  kPreVote = 0,
  kPreVoteReply = 1,
  kVote = 2,
  kVoteReply = 3,
  kAppend = 4,
  kAppendReply = 5,  // also answers kSnapshot
  kSnapshot = 6,     // InstallSnapshot
  kHeartbeat = 7,
  kHeartbeatReply = 8,
};
std::string_view MessageTypeName(MessageType type);

// One message between two nodes. Plain fields, so that the wire codec is a
// direct mapping; the fields a type does not use are left at their defaults.
struct Message {
  MessageType type = MessageType::kHeartbeat;
  std::string from;
  std::string to;
  uint64_t term = 0;  // a kPreVote carries the term the sender would campaign in
  // kPreVote, kVote: the candidate's last entry (index, log_term).
  // kAppend: the entry just before `entries` (index, log_term).
  // kAppendReply: accepted: `index` is the last entry known to match the
  //   leader's log. Rejected: `index` is the kAppend's index, and
  //   (hint_index, hint_term) is the follower's last entry that may match.
  uint64_t index = 0;
  uint64_t log_term = 0;
  uint64_t commit = 0;  // kAppend, kHeartbeat: the leader's commit index
  bool reject = false;  // replies
  uint64_t hint_index = 0;
  uint64_t hint_term = 0;
  uint64_t context = 0;        // kHeartbeat(Reply): the ReadIndex round confirmed
  std::vector<Entry> entries;  // kAppend
  Snapshot snapshot;           // kSnapshot
};

}  // namespace meshbus::raft
