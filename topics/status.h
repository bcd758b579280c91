// Status: the outcome of an operation, as a value. Either ok, or a code with
// a human-readable message. Copyable, cheap when ok. Not thread-safe to
// mutate from several threads at once (like any value type).
//
// Errors cross every library boundary as a Status (or a Result<T>, which is a
// Status or a T); no exception leaves the SDK or the broker's public API.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace meshbus {

// Stable numbers: they travel on the wire in error replies.
enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,  // the caller sent something malformed or out of range
  kNotJoined = 2,        // leave of a group the member is not in
  kNotFound = 3,         // unknown monitor ref, member, ...
  kUnreachable = 4,      // the broker cannot be reached
  kTimeout = 5,          // no answer within the deadline
  kBadMessage = 6,       // a frame that does not decode
  kUnavailable = 7,      // the broker is shutting down or the resource is gone
  kInternal = 8,         // a broken invariant; a bug
  kNoMembers = 9,        // dispatch to a group with no members anywhere
  kNoResponders = 10,    // request to a group with no members anywhere
  kTooLarge = 11,        // a message over the broker's maximum size
  kTaken = 12,           // register: another member holds the name
  kNotRegistered = 13,   // nobody holds the name
  kNoLeader = 14,        // the registry has no reachable leader (e.g. a minority partition)
  kNotHolder = 15,       // unregister of a name another member holds
  kExists = 16,          // create of a registry record whose key is there already
  kNoEmitters = 17,      // an event-store broadcast to a subscription with no emitters
};
inline constexpr Code kLastCode = Code::kNoEmitters;

std::string_view CodeName(Code code);

class Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotJoined(std::string m) { return {Code::kNotJoined, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Unreachable(std::string m) { return {Code::kUnreachable, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status BadMessage(std::string m) { return {Code::kBadMessage, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status NoMembers(std::string m) { return {Code::kNoMembers, std::move(m)}; }
  static Status NoResponders(std::string m) { return {Code::kNoResponders, std::move(m)}; }
  static Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status Taken(std::string m) { return {Code::kTaken, std::move(m)}; }
  static Status NotRegistered(std::string m) { return {Code::kNotRegistered, std::move(m)}; }
  static Status NoLeader(std::string m) { return {Code::kNoLeader, std::move(m)}; }
  static Status NotHolder(std::string m) { return {Code::kNotHolder, std::move(m)}; }
  static Status Exists(std::string m) { return {Code::kExists, std::move(m)}; }
  static Status NoEmitters(std::string m) { return {Code::kNoEmitters, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: group name is empty", or "ok".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A T or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be ok
  // The value made in place, from `args`: nothing to move.
  template <typename... Args>
  explicit Result(std::in_place_t, Args&&... args)
      : v_(std::in_place_index<0>, std::forward<Args>(args)...) {}
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace meshbus
