#include "broker/registry.h"

#include <algorithm>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include <msgpack.hpp>

#include "topics/msgpack_reader.h"

namespace meshbus::registry {
namespace {

// Type numbers of the commands: the first element of their array. Stable.
enum class CommandType : uint8_t {
  kRegister = 1,
  kUnregister = 2,
  kReleaseMember = 3,
  kReleaseNode = 4,
  kReadmitNode = 5,
  kPutRecord = 6,
  kCreateRecord = 7,
  kDeleteRecord = 8,
};

// The first element of a snapshot's array; a later format gets another.
// Records came later as an optional last element of format 1, so that the
// snapshots in data dirs from before still restore.
inline constexpr uint64_t kSnapshotFormat = 1;

// "<node>.<incarnation hex>.<session>": at most 64 + 1 + 16 + 1 + 20 bytes.
inline constexpr size_t kMaxMemberBytes = kMaxNodeNameBytes + 38;

// The unpacker refuses longer strings before copying them; the Reader then
// checks each field's own limit, with a clearer message.
inline constexpr size_t kMaxUnpackedStringBytes = 64u << 10;
static_assert(kMaxValueBytes <= kMaxUnpackedStringBytes);

using Packer = MsgpackPacker;

void PackMember(Packer& pk, const MemberId& m) {
  PackStr(pk, m.ToString());
}

std::string ToString(const msgpack::sbuffer& buf) {
  return std::string(buf.data(), buf.size());
}

// Registry formats are exact (End() refuses extra fields), so that a command
// or snapshot means one thing to every broker.
using Reader = MsgpackReader;

// Unpacks `bytes` into `zone` with bounded sizes and depth. The object is
// valid as long as the zone.
Result<msgpack::object> Unpack(std::string_view bytes, std::string_view what, msgpack::zone& zone) {
  if (bytes.empty()) return Status::BadMessage(std::string(what) + " is empty");
  try {
    size_t off = 0;
    // Every element takes at least one byte, so no array can honestly claim
    // more elements than there are bytes: this stops a few bytes from making
    // the unpacker reserve room for millions of objects. No maps, no exts;
    // a snapshot nests three arrays deep.
    msgpack::unpack_limit limit(/*array=*/bytes.size(), /*map=*/0,
                                /*str=*/kMaxUnpackedStringBytes, /*bin=*/kMaxUnpackedStringBytes,
                                /*ext=*/0, /*depth=*/3);
    msgpack::object o =
        msgpack::unpack(zone, bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size()) {
      return Status::BadMessage(std::string(what) + " has trailing bytes");
    }
    return o;
  } catch (const std::exception& e) {
    return Status::BadMessage(std::string(what) + " is not valid msgpack: " + e.what());
  }
}

Status ValidateCommand(const Command& command) {
  return std::visit(
      [](const auto& c) -> Status {
        using T = std::decay_t<decltype(c)>;
        Status s;
        if constexpr (std::is_same_v<T, Register>) {
          if (s = ValidateName(c.name); !s.ok()) return s;
          if (s = ValidateMember(c.holder); !s.ok()) return s;
          return ValidateMetadata(c.metadata);
        } else if constexpr (std::is_same_v<T, Unregister>) {
          if (s = ValidateName(c.name); !s.ok()) return s;
          return ValidateMember(c.holder);
        } else if constexpr (std::is_same_v<T, ReleaseMember>) {
          return ValidateMember(c.member);
        } else if constexpr (std::is_same_v<T, PutRecord> || std::is_same_v<T, CreateRecord>) {
          if (s = ValidateKey(c.key); !s.ok()) return s;
          return ValidateValue(c.value);
        } else if constexpr (std::is_same_v<T, DeleteRecord>) {
          return ValidateKey(c.key);
        } else {
          return ValidateNodeName(c.node);
        }
      },
      command);
}

}  // namespace

// ---- validation -------------------------------------------------------------

Status ValidateMember(const MemberId& member) {
  Status s = ValidateNodeName(member.node);
  if (!s.ok()) return Status::InvalidArgument("member id: " + s.message());
  return s;
}

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kTaken:
      return "taken";
    case Verdict::kNotRegistered:
      return "not_registered";
    case Verdict::kNotHolder:
      return "not_holder";
    case Verdict::kHolderGone:
      return "holder_gone";
    case Verdict::kExists:
      return "exists";
    case Verdict::kNoRecord:
      return "not_found";
  }
  return "?";
}

std::string_view ChangeKindName(ChangeKind kind) {
  return kind == ChangeKind::kRegistered ? "registered" : "unregistered";
}

// ---- the codec --------------------------------------------------------------

std::string EncodeCommand(const Command& command) {
  msgpack::sbuffer buf(256);
  Packer pk(buf);
  std::visit(
      [&pk](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, Register>) {
          pk.pack_array(4);
          pk.pack_uint8(uint8_t(CommandType::kRegister));
          PackStr(pk, c.name);
          PackMember(pk, c.holder);
          PackBin(pk, c.metadata);
        } else if constexpr (std::is_same_v<T, Unregister>) {
          pk.pack_array(3);
          pk.pack_uint8(uint8_t(CommandType::kUnregister));
          PackStr(pk, c.name);
          PackMember(pk, c.holder);
        } else if constexpr (std::is_same_v<T, ReleaseMember>) {
          pk.pack_array(2);
          pk.pack_uint8(uint8_t(CommandType::kReleaseMember));
          PackMember(pk, c.member);
        } else if constexpr (std::is_same_v<T, PutRecord> || std::is_same_v<T, CreateRecord>) {
          pk.pack_array(3);
          pk.pack_uint8(uint8_t(std::is_same_v<T, PutRecord> ? CommandType::kPutRecord
                                                             : CommandType::kCreateRecord));
          PackStr(pk, c.key);
          PackBin(pk, c.value);
        } else if constexpr (std::is_same_v<T, DeleteRecord>) {
          pk.pack_array(2);
          pk.pack_uint8(uint8_t(CommandType::kDeleteRecord));
          PackStr(pk, c.key);
        } else {
          pk.pack_array(3);
          pk.pack_uint8(uint8_t(std::is_same_v<T, ReleaseNode> ? CommandType::kReleaseNode
                                                               : CommandType::kReadmitNode));
          PackStr(pk, c.node);
          pk.pack_uint64(c.incarnation);
        }
      },
      command);
  return ToString(buf);
}

Result<Command> DecodeCommand(std::string_view bytes) {
  msgpack::zone zone;
  Result<msgpack::object> o = Unpack(bytes, "registry command", zone);
  if (!o.ok()) return o.status();
  Status st;
  Reader r(&*o, &st, "registry command");
  uint64_t type = r.U64("type");
  Command command;
  switch (type) {
    case uint64_t(CommandType::kRegister): {
      Register c;
      c.name = r.Checked("name", ValidateName, kMaxNameBytes);
      c.holder = r.Member("holder", kMaxMemberBytes);
      c.metadata = r.Bin("metadata", kMaxMetadataBytes);
      command = std::move(c);
      break;
    }
    case uint64_t(CommandType::kUnregister): {
      Unregister c;
      c.name = r.Checked("name", ValidateName, kMaxNameBytes);
      c.holder = r.Member("holder", kMaxMemberBytes);
      command = std::move(c);
      break;
    }
    case uint64_t(CommandType::kReleaseMember):
      command = ReleaseMember{r.Member("member", kMaxMemberBytes)};
      break;
    case uint64_t(CommandType::kReleaseNode):
    case uint64_t(CommandType::kReadmitNode): {
      std::string node = r.Checked("node", ValidateNodeName, kMaxNodeNameBytes);
      uint64_t incarnation = r.U64("incarnation");
      if (type == uint64_t(CommandType::kReleaseNode)) {
        command = ReleaseNode{std::move(node), incarnation};
      } else {
        command = ReadmitNode{std::move(node), incarnation};
      }
      break;
    }
    case uint64_t(CommandType::kPutRecord):
    case uint64_t(CommandType::kCreateRecord): {
      std::string key = r.Checked("key", ValidateKey, kMaxNameBytes);
      std::string value = r.Bin("value", kMaxValueBytes);
      if (type == uint64_t(CommandType::kPutRecord)) {
        command = PutRecord{std::move(key), std::move(value)};
      } else {
        command = CreateRecord{std::move(key), std::move(value)};
      }
      break;
    }
    case uint64_t(CommandType::kDeleteRecord):
      command = DeleteRecord{r.Checked("key", ValidateKey, kMaxNameBytes)};
      break;
    default:
      r.Fail("has unknown type " + std::to_string(type));
  }
  r.End();
  if (!st.ok()) return st;
  return command;
}

// ---- the state machine ------------------------------------------------------

Result<Outcome> Registry::Apply(const Command& command) {
  Status s = ValidateCommand(command);
  if (!s.ok()) return s;
  if (const auto* c = std::get_if<Register>(&command)) return DoRegister(*c);
  if (const auto* c = std::get_if<Unregister>(&command)) return DoUnregister(*c);
  Outcome out;
  if (const auto* c = std::get_if<PutRecord>(&command)) {
    records_.insert_or_assign(c->key, c->value);
    return out;
  }
  if (const auto* c = std::get_if<CreateRecord>(&command)) {
    if (!records_.try_emplace(c->key, c->value).second) out.verdict = Verdict::kExists;
    return out;
  }
  if (const auto* c = std::get_if<DeleteRecord>(&command)) {
    auto it = records_.find(c->key);
    if (it == records_.end()) {
      out.verdict = Verdict::kNoRecord;
    } else {
      records_.erase(it);
    }
    return out;
  }
  if (const auto* c = std::get_if<ReleaseMember>(&command)) {
    auto it = by_holder_.find(c->member);
    if (it != by_holder_.end()) ReleaseHolder(it, &out.changes);
    return out;
  }
  if (const auto* c = std::get_if<ReadmitNode>(&command)) {
    auto it = released_.find(c->node);
    if (it != released_.end() && it->second >= c->incarnation) {
      if (c->incarnation == 0) {
        released_.erase(it);
      } else {
        it->second = c->incarnation - 1;
      }
    }
    return out;
  }
  const auto& c = std::get<ReleaseNode>(command);
  // MemberId orders by node, then incarnation: the node's members from the
  // oldest incarnation up are one contiguous range.
  auto it = by_holder_.lower_bound(MemberId{c.node, 0, 0});
  while (it != by_holder_.end() && it->first.node == c.node &&
         it->first.incarnation <= c.incarnation) {
    it = ReleaseHolder(it, &out.changes);
  }
  uint64_t& released = released_[c.node];
  released = std::max(released, c.incarnation);
  return out;
}

Outcome Registry::DoRegister(const Register& c) {
  Outcome out;
  auto it = names_.find(c.name);
  if (it != names_.end()) {
    Held& held = it->second;
    if (held.holder != c.holder) {
      out.verdict = Verdict::kTaken;
      out.holder = held.holder;
      return out;
    }
    // The holder again: idempotent, so a retried registration is ok.
    if (held.metadata != c.metadata) {
      held.metadata = c.metadata;
      out.changes.push_back({ChangeKind::kRegistered, c.name, c.holder, c.metadata});
    }
    return out;
  }
  auto gone = released_.find(c.holder.node);
  if (gone != released_.end() && c.holder.incarnation <= gone->second) {
    out.verdict = Verdict::kHolderGone;
    return out;
  }
  names_.emplace(c.name, Held{c.holder, c.metadata});
  by_holder_[c.holder].insert(c.name);
  out.changes.push_back({ChangeKind::kRegistered, c.name, c.holder, c.metadata});
  return out;
}

Outcome Registry::DoUnregister(const Unregister& c) {
  Outcome out;
  auto it = names_.find(c.name);
  if (it == names_.end()) {
    out.verdict = Verdict::kNotRegistered;
    return out;
  }
  if (it->second.holder != c.holder) {
    out.verdict = Verdict::kNotHolder;
    out.holder = it->second.holder;
    return out;
  }
  auto h = by_holder_.find(c.holder);
  if (h != by_holder_.end()) {
    h->second.erase(c.name);
    if (h->second.empty()) by_holder_.erase(h);
  }
  out.changes.push_back(
      {ChangeKind::kUnregistered, c.name, c.holder, std::move(it->second.metadata)});
  names_.erase(it);
  return out;
}

Registry::HolderIt Registry::ReleaseHolder(HolderIt it, std::vector<Change>* out) {
  for (const std::string& name : it->second) {
    auto n = names_.find(name);
    if (n == names_.end()) continue;  // cannot happen: the index mirrors names_
    out->push_back({ChangeKind::kUnregistered, name, it->first, std::move(n->second.metadata)});
    names_.erase(n);
  }
  return by_holder_.erase(it);
}

std::optional<Entry> Registry::Whereis(std::string_view name) const {
  auto it = names_.find(name);
  if (it == names_.end()) return std::nullopt;
  return Entry{it->first, it->second.holder, it->second.metadata};
}

std::vector<Entry> Registry::Names(std::string_view prefix) const {
  std::vector<Entry> out;
  for (auto it = names_.lower_bound(prefix);
       it != names_.end() && std::string_view(it->first).substr(0, prefix.size()) == prefix; ++it) {
    out.push_back(Entry{it->first, it->second.holder, it->second.metadata});
  }
  return out;
}

std::vector<std::string> Registry::NamesOf(const MemberId& member) const {
  auto it = by_holder_.find(member);
  if (it == by_holder_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

std::vector<MemberId> Registry::Holders() const {
  std::vector<MemberId> out;
  out.reserve(by_holder_.size());
  for (const auto& [holder, names] : by_holder_) out.push_back(holder);
  return out;
}

std::optional<uint64_t> Registry::ReleasedIncarnation(std::string_view node) const {
  auto it = released_.find(node);
  if (it == released_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Registry::Record(std::string_view key) const {
  auto it = records_.find(key);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::vector<RecordEntry> Registry::Records(std::string_view prefix) const {
  std::vector<RecordEntry> out;
  for (auto it = records_.lower_bound(prefix);
       it != records_.end() && std::string_view(it->first).substr(0, prefix.size()) == prefix;
       ++it) {
    out.push_back(RecordEntry{it->first, it->second});
  }
  return out;
}

// [format, [[name, holder, metadata], ...] by name, [[node, incarnation], ...] by node,
//  [[key, value], ...] by key]; the records only when there are some, so
// that a state without records has the bytes it had before records existed.
std::string Registry::Snapshot() const {
  msgpack::sbuffer buf(64 + names_.size() * 48 + records_.size() * 64);
  Packer pk(buf);
  pk.pack_array(records_.empty() ? 3 : 4);
  pk.pack_uint64(kSnapshotFormat);
  pk.pack_array(static_cast<uint32_t>(names_.size()));
  for (const auto& [name, held] : names_) {
    pk.pack_array(3);
    PackStr(pk, name);
    PackMember(pk, held.holder);
    PackBin(pk, held.metadata);
  }
  pk.pack_array(static_cast<uint32_t>(released_.size()));
  for (const auto& [node, incarnation] : released_) {
    pk.pack_array(2);
    PackStr(pk, node);
    pk.pack_uint64(incarnation);
  }
  if (!records_.empty()) {
    pk.pack_array(static_cast<uint32_t>(records_.size()));
    for (const auto& [key, value] : records_) {
      pk.pack_array(2);
      PackStr(pk, key);
      PackBin(pk, value);
    }
  }
  return ToString(buf);
}

Status Registry::Restore(std::string_view bytes) {
  msgpack::zone zone;
  Result<msgpack::object> o = Unpack(bytes, "registry snapshot", zone);
  if (!o.ok()) return o.status();
  Status st;
  Reader r(&*o, &st, "registry snapshot");
  uint64_t format = r.U64("format");
  if (r.ok() && format != kSnapshotFormat) r.Fail("has unknown format " + std::to_string(format));

  // Built aside and swapped in at the end, so a bad snapshot changes nothing.
  decltype(names_) names;
  decltype(by_holder_) by_holder;
  decltype(released_) released;
  Reader entries = r.Array("names");
  while (entries.has_more()) {
    Reader e = entries.Array("entry");
    std::string name = e.Checked("name", ValidateName, kMaxNameBytes);
    MemberId holder = e.Member("holder", kMaxMemberBytes);
    std::string metadata = e.Bin("metadata", kMaxMetadataBytes);
    e.End();
    if (!e.ok()) break;
    // Strictly ascending, as Snapshot writes them: no duplicates, one
    // encoding per state.
    if (!names.empty() && names.rbegin()->first >= name) {
      e.Fail("names are not strictly ascending at '" + name + "'");
      break;
    }
    by_holder[holder].insert(by_holder[holder].end(), name);
    names.emplace_hint(names.end(), std::move(name), Held{std::move(holder), std::move(metadata)});
  }
  Reader nodes = r.Array("released");
  while (nodes.has_more()) {
    Reader n = nodes.Array("node");
    std::string node = n.Checked("node", ValidateNodeName, kMaxNodeNameBytes);
    uint64_t incarnation = n.U64("incarnation");
    n.End();
    if (!n.ok()) break;
    if (!released.empty() && released.rbegin()->first >= node) {
      n.Fail("nodes are not strictly ascending at '" + node + "'");
      break;
    }
    released.emplace_hint(released.end(), std::move(node), incarnation);
  }
  decltype(records_) records;
  if (r.has_more()) {
    Reader list = r.Array("records");
    // Snapshot leaves an empty list out: one encoding per state.
    if (list.ok() && list.size() == 0) list.Fail("is empty (written as absent)");
    while (list.has_more()) {
      Reader e = list.Array("record");
      std::string key = e.Checked("key", ValidateKey, kMaxNameBytes);
      std::string value = e.Bin("value", kMaxValueBytes);
      e.End();
      if (!e.ok()) break;
      if (!records.empty() && records.rbegin()->first >= key) {
        e.Fail("keys are not strictly ascending at '" + key + "'");
        break;
      }
      records.emplace_hint(records.end(), std::move(key), std::move(value));
    }
  }
  r.End();
  // A holder whose incarnation was released cannot hold a name (the release
  // dropped it and refuses new ones): such a snapshot was not ours.
  for (const auto& [node, incarnation] : released) {
    if (!st.ok()) break;
    auto it = by_holder.lower_bound(MemberId{node, 0, 0});
    if (it != by_holder.end() && it->first.node == node && it->first.incarnation <= incarnation) {
      r.Fail("has names held by released member " + it->first.ToString());
    }
  }
  if (!st.ok()) return st;
  names_ = std::move(names);
  by_holder_ = std::move(by_holder);
  released_ = std::move(released);
  records_ = std::move(records);
  return Status::Ok();
}

}  // namespace meshbus::registry
