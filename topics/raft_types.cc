#include "topics/raft_types.h"

namespace meshbus::raft {

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kPreVote:
      return "pre_vote";
    case MessageType::kPreVoteReply:
      return "pre_vote_reply";
    case MessageType::kVote:
      return "vote";
    case MessageType::kVoteReply:
      return "vote_reply";
    case MessageType::kAppend:
      return "append";
    case MessageType::kAppendReply:
      return "append_reply";
    case MessageType::kSnapshot:
      return "snapshot";
    case MessageType::kHeartbeat:
      return "heartbeat";
    case MessageType::kHeartbeatReply:
      return "heartbeat_reply";
  }
  return "unknown";
}

}  // namespace meshbus::raft
