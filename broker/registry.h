// Registry: the name registry's replicated state machine (DESIGN.md §5,
// issue #4). Every broker applies to it the commands its Raft log commits, in
// log order, so it is pure and deterministic: no sockets, threads, clocks or
// files, and every output (changes, listings, snapshot bytes) is ordered by
// the state, never by hashing or by history. Not thread-safe: the broker's
// loop thread owns it.
//
// A name is held by one member with an opaque metadata string. Only its
// holder unregisters it; it is also dropped when the holder's session ends
// (ReleaseMember) or the holder's node is declared dead or restarted
// (ReleaseNode). After ReleaseNode(node, i), members of `node` with an
// incarnation <= i can no longer register: a registration proposed before the
// node died but committed after it would otherwise hold a name forever. If
// the node was not dead after all (a partition that healed), ReadmitNode lets
// its current incarnation register again: its broker is alive to release
// whatever such a late registration leaves behind.
//
// Records are key/value entries beside the names, owned by no member: no
// release touches them; they stay until deleted (PutRecord, CreateRecord,
// DeleteRecord). Keys follow the rules of names; values are opaque bytes.
//
// Commands travel in the log as msgpack (EncodeCommand/DecodeCommand); an
// entry that does not decode is skipped by every broker alike. The encoding
// is never empty, as Raft reserves empty entries for its no-op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "topics/names.h"
#include "topics/status.h"

namespace meshbus::registry {

inline constexpr size_t kMaxNameBytes = kMaxRegistryNameBytes;
inline constexpr size_t kMaxMetadataBytes = kMaxNameMetadataBytes;

// See topics/names.h.
inline Status ValidateName(std::string_view name) {
  return ValidateRegistryName(name);
}
inline Status ValidateMetadata(std::string_view metadata) {
  return ValidateNameMetadata(metadata);
}
inline constexpr size_t kMaxValueBytes = kMaxRecordValueBytes;
inline Status ValidateKey(std::string_view key) {
  return ValidateRecordKey(key);
}
inline Status ValidateValue(std::string_view value) {
  return ValidateRecordValue(value);
}
// A member id a command may carry: its node name is valid.
Status ValidateMember(const MemberId& member);

// ---- commands: what a log entry holds --------------------------------------

// Takes `name` for `holder`. Again by the same holder: ok, metadata replaced.
struct Register {
  std::string name;
  MemberId holder;
  std::string metadata;
  friend bool operator==(const Register&, const Register&) = default;
};
// Gives `name` up; only its holder may.
struct Unregister {
  std::string name;
  MemberId holder;
  friend bool operator==(const Unregister&, const Unregister&) = default;
};
// Drops every name `member` holds: its session ended.
struct ReleaseMember {
  MemberId member;
  friend bool operator==(const ReleaseMember&, const ReleaseMember&) = default;
};
// Drops every name held by members of `node` with an incarnation <=
// `incarnation`, and refuses their registrations from now on: the node was
// declared dead, or restarted with a larger incarnation.
struct ReleaseNode {
  std::string node;
  uint64_t incarnation = 0;
  friend bool operator==(const ReleaseNode&, const ReleaseNode&) = default;
};
// `node` is alive as `incarnation` after all: its members may register
// again. Earlier incarnations stay refused.
struct ReadmitNode {
  std::string node;
  uint64_t incarnation = 0;
  friend bool operator==(const ReadmitNode&, const ReadmitNode&) = default;
};
// Sets record `key` to `value`, creating or replacing it.
struct PutRecord {
  std::string key;
  std::string value;
  friend bool operator==(const PutRecord&, const PutRecord&) = default;
};
// Creates record `key` unless it exists (kExists, record unchanged): the
// atomic create-if-absent that lets two writers race safely.
struct CreateRecord {
  std::string key;
  std::string value;
  friend bool operator==(const CreateRecord&, const CreateRecord&) = default;
};
// Deletes record `key`; kNoRecord when there is none.
struct DeleteRecord {
  std::string key;
  friend bool operator==(const DeleteRecord&, const DeleteRecord&) = default;
};
using Command = std::variant<Register, Unregister, ReleaseMember, ReleaseNode, ReadmitNode,
                             PutRecord, CreateRecord, DeleteRecord>;

// Never empty. Stable: the log and snapshots outlive the process.
std::string EncodeCommand(const Command& command);
// BadMessage for anything EncodeCommand did not produce from a valid command:
// every field is checked, as in Registry::Apply.
Result<Command> DecodeCommand(std::string_view bytes);

// ---- outcomes ---------------------------------------------------------------

// What a command did. The broker maps these to the wire's reply codes.
enum class Verdict : uint8_t {
  kOk = 0,
  kTaken = 1,          // Register: another member holds the name
  kNotRegistered = 2,  // Unregister: nobody holds the name
  kNotHolder = 3,      // Unregister: another member holds the name
  kHolderGone = 4,     // Register: the holder's node incarnation was released
  kExists = 5,         // CreateRecord: the key is there
  kNoRecord = 6,       // DeleteRecord: there is no such key
};
// "ok", "taken", "not_registered", "not_holder", "holder_gone", "exists",
// "not_found".
std::string_view VerdictName(Verdict verdict);

enum class ChangeKind : uint8_t { kRegistered = 0, kUnregistered = 1 };
std::string_view ChangeKindName(ChangeKind kind);  // "registered", "unregistered"

// One change for monitor_names subscribers. kRegistered: `name` is now held
// by `holder` with `metadata` (also sent when its holder re-registers it with
// other metadata). kUnregistered: `name` was held so and is free now.
struct Change {
  ChangeKind kind = ChangeKind::kRegistered;
  std::string name;
  MemberId holder;
  std::string metadata;
  friend bool operator==(const Change&, const Change&) = default;
};

// Record commands have a verdict only: no holder, no changes.
struct Outcome {
  Verdict verdict = Verdict::kOk;
  // kTaken, kNotHolder: who holds the name. Otherwise empty.
  std::optional<MemberId> holder;
  // In the order they happened. Releases report names in holder order, then
  // name order.
  std::vector<Change> changes;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

struct Entry {
  std::string name;
  MemberId holder;
  std::string metadata;
  friend bool operator==(const Entry&, const Entry&) = default;
};

struct RecordEntry {
  std::string key;
  std::string value;
  friend bool operator==(const RecordEntry&, const RecordEntry&) = default;
};

// ---- the state machine -----------------------------------------------------

class Registry {
 public:
  // InvalidArgument (TooLarge for a record value) when a field of the
  // command is invalid; the registry is then unchanged. Every other result
  // is an Outcome.
  Result<Outcome> Apply(const Command& command);

  std::optional<Entry> Whereis(std::string_view name) const;
  // Entries whose name starts with `prefix` (all when empty), sorted by name.
  std::vector<Entry> Names(std::string_view prefix = "") const;
  // The names `member` holds, sorted.
  std::vector<std::string> NamesOf(const MemberId& member) const;
  // Every member that holds a name, in MemberId order (by node, incarnation,
  // session): what brokers sweep to release the names of the dead.
  std::vector<MemberId> Holders() const;
  // The largest incarnation of `node` released by ReleaseNode, if any.
  std::optional<uint64_t> ReleasedIncarnation(std::string_view node) const;
  size_t size() const { return names_.size(); }

  std::optional<std::string> Record(std::string_view key) const;
  // Records whose key starts with `prefix` (all when empty), sorted by key.
  std::vector<RecordEntry> Records(std::string_view prefix = "") const;
  size_t record_count() const { return records_.size(); }

  // The whole state, as msgpack. Equal states give identical bytes, whatever
  // history led to them.
  std::string Snapshot() const;
  // Replaces the state by a Snapshot's. BadMessage when the bytes are not one
  // (checked as strictly as commands); the registry is then unchanged.
  // Snapshots written before records existed restore too (without records).
  Status Restore(std::string_view bytes);

 private:
  struct Held {
    MemberId holder;
    std::string metadata;
  };
  // Ordered maps throughout: listings, releases and snapshots iterate them.
  std::map<std::string, Held, std::less<>> names_;
  // holder -> the names it holds, so releases cost O(names released). A
  // holder without names has no entry.
  std::map<MemberId, std::set<std::string, std::less<>>> by_holder_;
  // node -> the largest incarnation released.
  std::map<std::string, uint64_t, std::less<>> released_;
  std::map<std::string, std::string, std::less<>> records_;

  Outcome DoRegister(const Register& c);
  Outcome DoUnregister(const Unregister& c);
  // Drops every name of by_holder_'s entry `it`, reporting them; returns the
  // next entry.
  using HolderIt = std::map<MemberId, std::set<std::string, std::less<>>>::iterator;
  HolderIt ReleaseHolder(HolderIt it, std::vector<Change>* out);
};

}  // namespace meshbus::registry
