#include "topics/status.h"

namespace meshbus {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid_argument";
    case Code::kNotJoined:
      return "not_joined";
    case Code::kNotFound:
      return "not_found";
    case Code::kUnreachable:
      return "unreachable";
    case Code::kTimeout:
      return "timeout";
    case Code::kBadMessage:
      return "bad_message";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kInternal:
      return "internal";
    case Code::kNoMembers:
      return "no_members";
    case Code::kNoResponders:
      return "no_responders";
    case Code::kTooLarge:
      return "too_large";
    case Code::kTaken:
      return "taken";
    case Code::kNotRegistered:
      return "not_registered";
    case Code::kNoLeader:
      return "no_leader";
    case Code::kNotHolder:
      return "not_holder";
    case Code::kExists:
      return "exists";
    case Code::kNoEmitters:
      return "no_emitters";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(CodeName(code_));
  if (!message_.empty()) s += ": " + message_;
  return s;
}

}  // namespace meshbus
