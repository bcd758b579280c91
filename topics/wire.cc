#include "topics/wire.h"

#include <algorithm>

#include <msgpack.hpp>

#include "topics/msgpack_reader.h"

namespace meshbus::wire {
namespace {

using Packer = MsgpackPacker;

// ---- encoding helpers ------------------------------------------------------

// One buffer per thread, reused by every Encode: a fresh sbuffer allocates
// 8 KiB for each message.
msgpack::sbuffer& ScratchBuffer() {
  thread_local msgpack::sbuffer buf;
  buf.clear();
  return buf;
}

void PackPeerId(Packer& pk, const PeerId& id) {
  pk.pack_array(2);
  PackStr(pk, id.node);
  pk.pack_uint64(id.incarnation);
}
void PackMembers(Packer& pk, const std::vector<MemberId>& members) {
  pk.pack_array(static_cast<uint32_t>(members.size()));
  for (const MemberId& m : members) PackStr(pk, m.ToString());
}
void PackSnapshot(Packer& pk, const Snapshot& s) {
  pk.pack_array(2);
  pk.pack_uint64(s.seq);
  pk.pack_array(static_cast<uint32_t>(s.entries.size()));
  for (const MembershipEntry& e : s.entries) {
    pk.pack_array(4);
    PackStr(pk, e.scope);
    PackStr(pk, e.group);
    pk.pack_uint64(e.session);
    pk.pack_uint32(e.count);
  }
}

// ---- decoding helpers ------------------------------------------------------

using Reader = MsgpackReader;

PeerId ReadPeerId(Reader& r) {
  Reader a = r.Array("from");
  PeerId id;
  id.node = a.Checked("node", ValidateNodeName);
  id.incarnation = a.U64("incarnation");
  return id;
}

std::vector<MemberId> ReadMembers(Reader& r, std::string_view field) {
  Reader a = r.Array(field);
  std::vector<MemberId> out;
  if (!a.ok()) return out;
  out.reserve(a.size());
  while (a.has_more()) {
    std::string text = a.Str("member", kMaxNodeNameBytes + 48);
    if (!a.ok()) break;
    std::optional<MemberId> id = MemberId::Parse(text);
    if (!id) {
      a.Fail("holds a malformed member id '" + text + "'");
      break;
    }
    out.push_back(std::move(*id));
  }
  return out;
}

void PackStatus(Packer& pk, const Status& s) {
  pk.pack_uint8(uint8_t(s.code()));
  PackStr(pk, s.message());
}

Status ReadStatus(Reader& r) {
  uint64_t code = r.U64("code");
  std::string message = r.Str("message", 1u << 16);
  if (r.ok() && code > uint64_t(kLastCode)) r.Fail("has unknown code " + std::to_string(code));
  if (!r.ok()) return {};
  return Status(static_cast<Code>(code), std::move(message));
}

void PackNameInfo(Packer& pk, const NameInfo& n) {
  PackStr(pk, n.name);
  PackStr(pk, n.holder.ToString());
  PackBin(pk, n.metadata);
}

NameInfo ReadNameInfo(Reader& r) {
  NameInfo n;
  n.name = r.Checked("name", ValidateRegistryName);
  n.holder = r.Member("holder", kMaxHandleBytes);
  n.metadata = r.Bin("metadata", kMaxNameMetadataBytes);
  return n;
}

void PackRecords(Packer& pk, const std::vector<Record>& records) {
  pk.pack_array(static_cast<uint32_t>(records.size()));
  for (const Record& rec : records) {
    pk.pack_array(2);
    PackStr(pk, rec.key);
    PackBin(pk, rec.value);
  }
}

// Fixed-width unsigned numbers in packed frames, little-endian.
template <typename T>
void PutLittleEndian(char* out, T v) {
  for (size_t k = 0; k < sizeof(T); ++k) out[k] = static_cast<char>(v >> (8 * k));
}
template <typename T>
T GetLittleEndian(const char* in) {
  T v = 0;
  for (size_t k = sizeof(T); k-- > 0;) v = static_cast<T>(v << 8 | static_cast<uint8_t>(in[k]));
  return v;
}

// A publish's or broadcast's count of packed payloads (0: one, unpacked).
uint32_t ReadCastCount(Reader& r) {
  uint32_t n = r.U32("count");
  if (r.ok() && n > kMaxCastPayloads) {
    r.Fail("field 'count' must be 0 to " + std::to_string(kMaxCastPayloads));
  }
  return n;
}

// A DispatchMany's outcomes: the members that took payloads; for each
// payload, as 2 bytes, the index of its member or kFailedOutcome; and the
// failures, [code, message] each, in order.
constexpr uint16_t kFailedOutcome = 0xFFFF;

std::vector<DispatchOutcome> ReadDispatchOutcomes(Reader& r) {
  std::vector<DispatchOutcome> out;
  std::vector<MemberId> members;
  Reader listed = r.Array("members");
  if (!listed.ok()) return out;
  if (listed.size() > kMaxCastPayloads) {
    listed.Fail("holds more than " + std::to_string(kMaxCastPayloads) + " members");
    return out;
  }
  members.reserve(listed.size());
  while (listed.has_more()) members.push_back(listed.Member("member", kMaxHandleBytes));
  if (!listed.ok()) return out;
  const std::string indices = r.Bin("outcomes", 2 * kMaxCastPayloads);
  Reader failures = r.Array("failures");
  if (!failures.ok()) return out;
  if (indices.size() % 2 != 0) {
    failures.Fail("field 'outcomes' holds " + std::to_string(indices.size()) +
                  " bytes, not 2 per outcome");
    return out;
  }
  out.reserve(indices.size() / 2);
  for (size_t i = 0; i < indices.size(); i += 2) {
    const uint16_t index = GetLittleEndian<uint16_t>(&indices[i]);
    if (index != kFailedOutcome) {
      if (index >= members.size()) {
        failures.Fail("outcome " + std::to_string(i / 2) + " names member " +
                      std::to_string(index) + " of " + std::to_string(members.size()));
        return out;
      }
      out.push_back({Status::Ok(), members[index]});
      continue;
    }
    if (!failures.has_more()) {
      failures.Fail("holds fewer failures than the outcomes say");
      return out;
    }
    Reader failed = failures.Array("failure");
    uint64_t code = failed.U64("code");
    std::string message = failed.Str("message", 1u << 16);
    failed.End();
    if (!failed.ok()) return out;
    if (code == 0 || code > uint64_t(kLastCode)) {
      failed.Fail("has code " + std::to_string(code) + ", not a failure's");
      return out;
    }
    out.push_back({Status(static_cast<Code>(code), std::move(message)), {}});
  }
  if (failures.has_more()) failures.Fail("holds more failures than the outcomes say");
  return out;
}

std::vector<Record> ReadRecords(Reader& r) {
  std::vector<Record> out;
  Reader list = r.Array("records");
  if (!list.ok()) return out;
  out.reserve(list.size());
  while (list.has_more()) {
    Reader item = list.Array("record");
    Record rec;
    rec.key = item.Checked("key", ValidateRecordKey);
    rec.value = item.Bin("value", kMaxRecordValueBytes);
    if (!item.ok()) break;
    out.push_back(std::move(rec));
  }
  return out;
}

void PackRaftMembers(Packer& pk, const std::vector<RaftMemberInfo>& members) {
  pk.pack_array(static_cast<uint32_t>(members.size()));
  for (const RaftMemberInfo& m : members) {
    pk.pack_array(6);
    PackStr(pk, m.node);
    PackBool(pk, m.voter);
    PackBool(pk, m.alive);
    pk.pack_uint64(m.match);
    PackStr(pk, m.replication);
    PackBool(pk, m.active);
  }
}

std::vector<RaftMemberInfo> ReadRaftMembers(Reader& r) {
  std::vector<RaftMemberInfo> out;
  Reader list = r.Array("members");
  while (list.has_more()) {
    Reader item = list.Array("member");
    RaftMemberInfo m;
    m.node = item.Checked("node", ValidateNodeName);
    m.voter = item.Bool("voter");
    m.alive = item.Bool("alive");
    m.match = item.U64("match");
    m.replication = item.Str("replication", 32);
    m.active = item.Bool("active");
    if (!item.ok()) break;
    out.push_back(std::move(m));
  }
  return out;
}

Snapshot ReadSnapshot(Reader& r) {
  Reader s = r.Array("snapshot");
  Snapshot snap;
  snap.seq = s.U64("seq");
  Reader entries = s.Array("entries");
  if (!entries.ok()) return snap;
  snap.entries.reserve(entries.size());
  while (entries.has_more()) {
    Reader e = entries.Array("entry");
    MembershipEntry m;
    m.scope = e.Checked("scope", ValidateScope);
    m.group = e.Checked("group", ValidateGroup);
    m.session = e.U64("session");
    m.count = e.U32("count");
    if (e.ok() && m.count == 0) e.Fail("has an entry with count 0");
    if (!e.ok()) break;
    snap.entries.push_back(std::move(m));
  }
  return snap;
}

// Unpacks one frame into a msgpack object with bounded sizes and depth.
// Unpacks one frame with bounded sizes and depth, into a zone of this
// thread's that the next Unpack on the thread reuses (a fresh zone allocates
// 8 KiB per message). The object is valid until then: decoders copy out
// everything they keep before returning.
// The one msgpack object a frame holds. With `rest`, the frame may go on
// after it, and *rest is what follows; without, that is an error.
Result<const msgpack::object*> Unpack(std::string_view frame, std::string_view* rest = nullptr) {
  if (frame.empty()) return Status::BadMessage("empty frame");
  if (frame.size() > kMaxFrameBytes) return Status::BadMessage("frame is too large");
  thread_local msgpack::zone zone;
  thread_local msgpack::object object;
  zone.clear();
  try {
    size_t off = 0;
    // Every element takes at least one byte, so no array can honestly claim
    // more elements than the frame has bytes: this stops a tiny frame from
    // making the unpacker reserve room for millions of objects.
    size_t max_items = std::min(kMaxListItems, frame.size());
    msgpack::unpack_limit limit(/*array=*/max_items, /*map=*/0, /*str=*/64u << 20,
                                /*bin=*/kMaxFrameBytes, /*ext=*/0, /*depth=*/8);
    object = msgpack::unpack(zone, frame.data(), frame.size(), off, nullptr, nullptr, limit);
    if (rest != nullptr) {
      *rest = frame.substr(off);
    } else if (off != frame.size()) {
      return Status::BadMessage("trailing bytes after the message");
    }
    return &object;
  } catch (const std::exception& e) {
    return Status::BadMessage(std::string("invalid msgpack: ") + e.what());
  }
}

// The message type number as a Type; out of Type's range it is Type{0}, which
// no message has, so it is reported unknown. (A plain cast would truncate
// 65546 to 10, Join.)
Type AsType(uint64_t type) {
  return type > UINT16_MAX ? Type{0} : static_cast<Type>(type);
}

template <typename T>
Result<T> Finish(const Status& st, T value) {
  if (!st.ok()) return st;
  return value;
}

}  // namespace

std::string_view EventKindName(EventKind kind) {
  return kind == EventKind::kJoin ? "join" : "leave";
}

std::string_view NameEventKindName(NameEventKind kind) {
  return kind == NameEventKind::kRegistered ? "registered" : "unregistered";
}

std::string_view MessageKindName(MessageKind kind) {
  switch (kind) {
    case MessageKind::kPublish:
      return "publish";
    case MessageKind::kBroadcast:
      return "broadcast";
    case MessageKind::kDispatch:
      return "dispatch";
    case MessageKind::kRequest:
      return "request";
    case MessageKind::kDirect:
      return "direct";
  }
  return "?";
}

bool CarriesPayload(const ClientRequest& m) {
  return std::holds_alternative<Publish>(m) || std::holds_alternative<Broadcast>(m) ||
         std::holds_alternative<Dispatch>(m) || std::holds_alternative<Request>(m) ||
         std::holds_alternative<Respond>(m) || std::holds_alternative<Send>(m) ||
         std::holds_alternative<SendName>(m);
}

uint64_t RequestIdOf(const ClientRequest& m) {
  return std::visit(
      [](const auto& r) -> uint64_t {
        if constexpr (requires { r.req; })
          return r.req;
        else
          return 0;
      },
      m);
}

bool CarriesPayload(const ClientInbound& m) {
  if (const auto* r = std::get_if<Reply>(&m)) return std::holds_alternative<ResponseBody>(r->body);
  return std::holds_alternative<Message>(m);
}

namespace {
void AppendU32(std::string* out, uint32_t v) {
  char b[4];
  PutLittleEndian(b, v);
  out->append(b, 4);
}
bool ReadU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = GetLittleEndian<uint32_t>(in->data());
  in->remove_prefix(4);
  return true;
}
}  // namespace

void AppendBatchEntry(std::string* frame, std::string_view header, bool same_header,
                      std::string_view payload) {
  AppendU32(frame, same_header ? 0 : uint32_t(header.size()));
  if (!same_header) frame->append(header);
  AppendU32(frame, uint32_t(payload.size()));
  frame->append(payload);
}

void AppendSized(std::string* frame, std::string_view bytes) {
  AppendU32(frame, uint32_t(bytes.size()));
  frame->append(bytes);
}

Status SplitSized(std::string_view frame, size_t count, std::vector<std::string_view>* out) {
  out->clear();
  std::string_view in = frame;
  for (size_t i = 0; i < count; ++i) {
    uint32_t n = 0;
    if (!ReadU32(&in, &n) || n > in.size()) {
      return Status::BadMessage("payload " + std::to_string(i + 1) + " of " +
                                std::to_string(count) + " runs past the frame's end");
    }
    out->push_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  if (!in.empty()) {
    return Status::BadMessage(std::to_string(in.size()) + " bytes after the last of " +
                              std::to_string(count) + " payloads");
  }
  return Status::Ok();
}

Status SplitMessageBatch(std::string_view frame, uint32_t count, std::vector<BatchEntry>* entries) {
  entries->clear();
  if (count == 0 || count > kMaxMessageBatch) {
    return Status::BadMessage("a message batch holds 1 to " + std::to_string(kMaxMessageBatch) +
                              " messages");
  }
  entries->reserve(count);
  std::string_view in = frame, header;
  for (uint32_t i = 0; i < count; ++i) {
    // Built only on failure: this loop runs once per message delivered.
    auto bad = [&](const char* why) {
      return Status::BadMessage("message " + std::to_string(i + 1) + " of a batch of " +
                                std::to_string(count) + why);
    };
    uint32_t n = 0;
    if (!ReadU32(&in, &n)) return bad(" is cut off before its header");
    if (n == 0 && i == 0) return bad(" repeats a header before it");
    if (n > in.size()) return bad(" has a header past the frame's end");
    if (n > 0) {
      header = in.substr(0, n);
      in.remove_prefix(n);
    }
    if (!ReadU32(&in, &n)) return bad(" is cut off before its payload");
    if (n > in.size()) return bad(" has a payload past the frame's end");
    entries->push_back(BatchEntry{header, in.substr(0, n)});
    in.remove_prefix(n);
  }
  if (!in.empty()) {
    return Status::BadMessage(std::to_string(in.size()) + " bytes after the last of " +
                              std::to_string(count) + " messages in a batch");
  }
  return Status::Ok();
}

bool CarriesPayload(const PeerMessage& m) {
  if (const auto* d = std::get_if<PeerData>(&m)) return !d->is_mark;
  return std::holds_alternative<PeerForward>(m) || std::holds_alternative<PeerResponse>(m) ||
         std::holds_alternative<PeerCallBatch>(m) || std::holds_alternative<PeerForwardRun>(m);
}

bool BatchesAsCall(const PeerMessage& m) {
  return std::holds_alternative<PeerForward>(m) || std::holds_alternative<PeerForwardAck>(m) ||
         std::holds_alternative<PeerResponse>(m) || std::holds_alternative<PeerForwardRun>(m) ||
         std::holds_alternative<PeerAckRun>(m);
}

// ---- client requests -------------------------------------------------------

std::string Encode(const ClientRequest& m) {
  msgpack::sbuffer& buf = ScratchBuffer();
  Packer pk(buf);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kHello));
          pk.pack_uint64(v.req);
          pk.pack_uint32(v.version);
          PackStr(pk, v.client_name);
        } else if constexpr (std::is_same_v<T, Bye>) {
          pk.pack_array(2);
          pk.pack_uint16(uint16_t(Type::kBye));
          pk.pack_uint64(v.req);
        } else if constexpr (std::is_same_v<T, SessionHeartbeat>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kHeartbeat));
          pk.pack_uint64(v.session);
          pk.pack_uint64(v.token);
        } else if constexpr (std::is_same_v<T, Join> || std::is_same_v<T, Leave>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(std::is_same_v<T, Join> ? Type::kJoin : Type::kLeave));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
        } else if constexpr (std::is_same_v<T, Members>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kMembers));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
          PackBool(pk, v.local_only);
        } else if constexpr (std::is_same_v<T, WhichGroups>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kWhichGroups));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          PackBool(pk, v.local_only);
        } else if constexpr (std::is_same_v<T, Monitor>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kMonitor));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          if (v.group)
            PackStr(pk, *v.group);
          else
            pk.pack_nil();
        } else if constexpr (std::is_same_v<T, Demonitor>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kDemonitor));
          pk.pack_uint64(v.req);
          pk.pack_uint64(v.ref);
        } else if constexpr (std::is_same_v<T, Nodes>) {
          pk.pack_array(2);
          pk.pack_uint16(uint16_t(Type::kNodes));
          pk.pack_uint64(v.req);
        } else if constexpr (std::is_same_v<T, Stats>) {
          pk.pack_array(2);
          pk.pack_uint16(uint16_t(Type::kStats));
          pk.pack_uint64(v.req);
        } else if constexpr (std::is_same_v<T, JoinMany>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kJoinMany));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          pk.pack_array(static_cast<uint32_t>(v.groups.size()));
          for (const std::string& g : v.groups) PackStr(pk, g);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(v.unsubscribe ? Type::kUnsubscribe : Type::kSubscribe));
          pk.pack_uint64(v.req);
          PackStr(pk, v.prefix);
        } else if constexpr (std::is_same_v<T, Publish>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kPublish));
          pk.pack_uint64(v.req);
          PackStr(pk, v.topic);
          pk.pack_uint32(v.count);
        } else if constexpr (std::is_same_v<T, Broadcast> || std::is_same_v<T, Dispatch>) {
          constexpr bool kBroadcast = std::is_same_v<T, Broadcast>;
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(kBroadcast ? Type::kBroadcast : Type::kDispatch));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
          pk.pack_uint32(v.count);
        } else if constexpr (std::is_same_v<T, Request>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kRequest));
          pk.pack_uint64(v.req);
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
          pk.pack_uint32(v.timeout_ms);
        } else if constexpr (std::is_same_v<T, Respond>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kRespond));
          pk.pack_uint64(v.req);
          PackStr(pk, v.reply_to);
        } else if constexpr (std::is_same_v<T, Send>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kSend));
          pk.pack_uint64(v.req);
          PackStr(pk, v.member.ToString());
        } else if constexpr (std::is_same_v<T, Credit>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kCredit));
          pk.pack_uint64(v.session);
          pk.pack_uint64(v.token);
          pk.pack_uint64(v.bytes);
        } else if constexpr (std::is_same_v<T, Register>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kRegister));
          pk.pack_uint64(v.req);
          PackStr(pk, v.name);
          PackBin(pk, v.metadata);
        } else if constexpr (std::is_same_v<T, Unregister> || std::is_same_v<T, SendName>) {
          pk.pack_array(3);
          pk.pack_uint16(
              uint16_t(std::is_same_v<T, Unregister> ? Type::kUnregister : Type::kSendName));
          pk.pack_uint64(v.req);
          PackStr(pk, v.name);
        } else if constexpr (std::is_same_v<T, Whereis>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kWhereis));
          pk.pack_uint64(v.req);
          PackStr(pk, v.name);
          PackBool(pk, v.consistent);
        } else if constexpr (std::is_same_v<T, ListNames> || std::is_same_v<T, MonitorNames>) {
          pk.pack_array(3);
          pk.pack_uint16(
              uint16_t(std::is_same_v<T, ListNames> ? Type::kNames : Type::kMonitorNames));
          pk.pack_uint64(v.req);
          PackStr(pk, v.prefix);
        } else if constexpr (std::is_same_v<T, Leader>) {
          pk.pack_array(2);
          pk.pack_uint16(uint16_t(Type::kLeader));
          pk.pack_uint64(v.req);
        } else if constexpr (std::is_same_v<T, PutRecord>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kPutRecord));
          pk.pack_uint64(v.req);
          PackStr(pk, v.key);
          PackBin(pk, v.value);
          pk.pack_uint8(uint8_t(v.mode));
        } else if constexpr (std::is_same_v<T, DeleteRecord>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kDeleteRecord));
          pk.pack_uint64(v.req);
          PackStr(pk, v.key);
        } else if constexpr (std::is_same_v<T, ListRecords>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kRecords));
          pk.pack_uint64(v.req);
          PackStr(pk, v.prefix);
          PackBool(pk, v.consistent);
          PackBool(pk, v.exact);
        }
      },
      m);
  return std::string(buf.data(), buf.size());
}

Result<ClientRequest> DecodeClientRequest(std::string_view frame, uint64_t* req_out,
                                          std::string_view* rest) {
  if (req_out) *req_out = 0;
  if (rest) *rest = {};
  Result<const msgpack::object*> obj = Unpack(frame, rest);
  if (!obj.ok()) return obj.status();
  Status st;
  Reader r(*obj, &st, "request");
  uint64_t type = r.U64("type");
  if (!st.ok()) return st;
  if (type == uint64_t(Type::kHeartbeat)) {
    SessionHeartbeat h;
    h.session = r.U64("session");
    h.token = r.U64("token");
    return Finish<ClientRequest>(st, h);
  }
  if (type == uint64_t(Type::kCredit)) {
    Credit c;
    c.session = r.U64("session");
    c.token = r.U64("token");
    c.bytes = r.U64("bytes");
    return Finish<ClientRequest>(st, c);
  }
  uint64_t req = r.U64("req");
  if (!st.ok()) return st;
  if (req_out) *req_out = req;
  switch (AsType(type)) {
    case Type::kHello: {
      Hello h;
      h.req = req;
      h.version = r.U32("version");
      h.client_name = r.Str("client_name", 255);
      return Finish<ClientRequest>(st, std::move(h));
    }
    case Type::kBye:
      return Finish<ClientRequest>(st, Bye{req});
    case Type::kJoin:
    case Type::kLeave: {
      std::string scope = r.Checked("scope", ValidateScope);
      std::string group = r.Checked("group", ValidateGroup);
      if (static_cast<Type>(type) == Type::kJoin)
        return Finish<ClientRequest>(st, Join{req, scope, group});
      return Finish<ClientRequest>(st, Leave{req, scope, group});
    }
    case Type::kMembers: {
      Members m;
      m.req = req;
      m.scope = r.Checked("scope", ValidateScope);
      m.group = r.Checked("group", ValidateGroup);
      m.local_only = r.Bool("local_only");
      return Finish<ClientRequest>(st, std::move(m));
    }
    case Type::kWhichGroups: {
      WhichGroups w;
      w.req = req;
      w.scope = r.Str("scope", kMaxScopeBytes);
      if (st.ok() && !w.scope.empty()) {
        Status v = ValidateScope(w.scope);
        if (!v.ok()) st = Status::BadMessage("request field 'scope': " + v.message());
      }
      w.local_only = r.Bool("local_only");
      return Finish<ClientRequest>(st, std::move(w));
    }
    case Type::kMonitor: {
      Monitor m;
      m.req = req;
      m.scope = r.Checked("scope", ValidateScope);
      if (r.PeekNil()) {
        r.Next("group");
      } else {
        m.group = r.Checked("group", ValidateGroup);
      }
      return Finish<ClientRequest>(st, std::move(m));
    }
    case Type::kDemonitor: {
      Demonitor d{req};
      d.ref = r.U64("ref");
      return Finish<ClientRequest>(st, d);
    }
    case Type::kNodes:
      return Finish<ClientRequest>(st, Nodes{req});
    case Type::kStats:
      return Finish<ClientRequest>(st, Stats{req});
    case Type::kJoinMany: {
      JoinMany j;
      j.req = req;
      j.scope = r.Checked("scope", ValidateScope);
      Reader groups = r.Array("groups");
      if (groups.ok() && groups.size() == 0) groups.Fail("is empty");
      if (groups.ok() && groups.size() > kMaxJoinManyGroups) {
        groups.Fail("names more than " + std::to_string(kMaxJoinManyGroups) + " groups");
      }
      j.groups.reserve(groups.ok() ? groups.size() : 0);
      while (groups.has_more()) j.groups.push_back(groups.Checked("group", ValidateGroup));
      return Finish<ClientRequest>(st, std::move(j));
    }
    case Type::kSubscribe:
    case Type::kUnsubscribe: {
      Subscribe sub{req, r.Checked("prefix", ValidateTopicPrefix),
                    AsType(type) == Type::kUnsubscribe};
      return Finish<ClientRequest>(st, std::move(sub));
    }
    case Type::kPublish: {
      Publish p{req, r.Checked("topic", ValidateTopic)};
      p.count = ReadCastCount(r);
      return Finish<ClientRequest>(st, std::move(p));
    }
    case Type::kBroadcast:
    case Type::kDispatch: {
      std::string scope = r.Checked("scope", ValidateScope);
      std::string group = r.Checked("group", ValidateGroup);
      uint32_t count = ReadCastCount(r);
      if (AsType(type) == Type::kBroadcast) {
        return Finish<ClientRequest>(st, Broadcast{req, scope, group, count});
      }
      return Finish<ClientRequest>(st, Dispatch{req, scope, group, count});
    }
    case Type::kRequest: {
      Request q{req};
      q.scope = r.Checked("scope", ValidateScope);
      q.group = r.Checked("group", ValidateGroup);
      q.timeout_ms = r.U32("timeout_ms");
      if (st.ok() && q.timeout_ms == 0) return Status::BadMessage("request has timeout_ms 0");
      return Finish<ClientRequest>(st, std::move(q));
    }
    case Type::kRespond: {
      Respond a{req, r.Str("reply_to", kMaxHandleBytes)};
      if (st.ok() && !MemberId::Parse(a.reply_to)) {
        return Status::BadMessage("respond has a malformed reply_to '" + a.reply_to + "'");
      }
      return Finish<ClientRequest>(st, std::move(a));
    }
    case Type::kSend: {
      std::string text = r.Str("member", kMaxHandleBytes);
      std::optional<MemberId> member = MemberId::Parse(text);
      if (st.ok() && !member)
        return Status::BadMessage("send to a malformed member id '" + text + "'");
      return Finish<ClientRequest>(st, Send{req, member ? *member : MemberId{}});
    }
    case Type::kRegister: {
      Register g{req};
      g.name = r.Checked("name", ValidateRegistryName);
      g.metadata = r.Bin("metadata", kMaxNameMetadataBytes);
      return Finish<ClientRequest>(st, std::move(g));
    }
    case Type::kUnregister:
      return Finish<ClientRequest>(st, Unregister{req, r.Checked("name", ValidateRegistryName)});
    case Type::kSendName:
      return Finish<ClientRequest>(st, SendName{req, r.Checked("name", ValidateRegistryName)});
    case Type::kWhereis: {
      Whereis w{req};
      w.name = r.Checked("name", ValidateRegistryName);
      w.consistent = r.Bool("consistent");
      return Finish<ClientRequest>(st, std::move(w));
    }
    case Type::kNames:
      return Finish<ClientRequest>(st, ListNames{req, r.Checked("prefix", ValidateNamePrefix)});
    case Type::kMonitorNames:
      return Finish<ClientRequest>(st, MonitorNames{req, r.Checked("prefix", ValidateNamePrefix)});
    case Type::kLeader:
      return Finish<ClientRequest>(st, Leader{req});
    case Type::kPutRecord: {
      PutRecord p{req};
      p.key = r.Checked("key", ValidateRecordKey);
      // Read whole, so that an oversized value is answered too_large.
      p.value = r.Bin("value", kMaxFrameBytes);
      uint64_t mode = r.U64("mode");
      if (!st.ok()) return st;
      if (mode > uint64_t(RecordMode::kCreate)) {
        return Status::BadMessage("put record has unknown mode " + std::to_string(mode));
      }
      if (Status v = ValidateRecordValue(p.value); !v.ok()) return v;
      p.mode = static_cast<RecordMode>(mode);
      return ClientRequest(std::move(p));
    }
    case Type::kDeleteRecord:
      return Finish<ClientRequest>(st, DeleteRecord{req, r.Checked("key", ValidateRecordKey)});
    case Type::kRecords: {
      ListRecords l{req};
      l.prefix = r.Checked("prefix", ValidateRecordKeyPrefix);
      l.consistent = r.Bool("consistent");
      l.exact = r.Bool("exact");
      if (st.ok() && l.exact) {
        if (Status v = ValidateRecordKey(l.prefix); !v.ok()) {
          return Status::BadMessage("records request (exact): " + v.message());
        }
      }
      return Finish<ClientRequest>(st, std::move(l));
    }
    default:
      return Status::BadMessage("unknown request type " + std::to_string(type));
  }
}

// ---- broker -> client ------------------------------------------------------

std::string Encode(const ClientInbound& m) {
  msgpack::sbuffer& buf = ScratchBuffer();
  Packer pk(buf);
  if (const Reply* r = std::get_if<Reply>(&m)) {
    // Fixed part: type, req, code, message, tag; then the body's fields.
    size_t body_fields = std::visit(
        [](const auto& b) -> size_t {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, Empty>)
            return 0;
          else if constexpr (std::is_same_v<T, WelcomeBody>)
            return 8;
          else if constexpr (std::is_same_v<T, MonitorBody> || std::is_same_v<T, NamesBody>)
            return 2;
          else if constexpr (std::is_same_v<T, DispatchedBody>)
            return 3;
          else if constexpr (std::is_same_v<T, NameInfo>)
            return 3;
          else if constexpr (std::is_same_v<T, LeaderBody>)
            return 8;
          else
            return 1;
        },
        r->body);
    pk.pack_array(static_cast<uint32_t>(5 + body_fields));
    pk.pack_uint16(uint16_t(Type::kReply));
    pk.pack_uint64(r->req);
    pk.pack_uint8(uint8_t(r->status.code()));
    PackStr(pk, r->status.message());
    pk.pack_uint8(static_cast<uint8_t>(r->body.index()));
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, WelcomeBody>) {
            PackStr(pk, b.node);
            pk.pack_uint64(b.incarnation);
            pk.pack_uint64(b.session);
            pk.pack_uint64(b.token);
            pk.pack_uint32(b.heartbeat_ms);
            pk.pack_uint32(b.session_timeout_ms);
            pk.pack_uint64(b.max_message_bytes);
            pk.pack_uint64(b.client_queue_bytes);
          } else if constexpr (std::is_same_v<T, DeliveredBody> ||
                               std::is_same_v<T, ResponseBody>) {
            PackStr(pk, b.member.ToString());
          } else if constexpr (std::is_same_v<T, MembersBody>) {
            PackMembers(pk, b.members);
          } else if constexpr (std::is_same_v<T, GroupsBody>) {
            pk.pack_array(static_cast<uint32_t>(b.groups.size()));
            for (const GroupCount& g : b.groups) {
              pk.pack_array(3);
              PackStr(pk, g.scope);
              PackStr(pk, g.group);
              pk.pack_uint64(g.count);
            }
          } else if constexpr (std::is_same_v<T, MonitorBody>) {
            pk.pack_uint64(b.ref);
            pk.pack_array(static_cast<uint32_t>(b.groups.size()));
            for (const GroupMembers& g : b.groups) {
              pk.pack_array(3);
              PackStr(pk, g.scope);
              PackStr(pk, g.group);
              PackMembers(pk, g.members);
            }
          } else if constexpr (std::is_same_v<T, NodesBody>) {
            pk.pack_array(static_cast<uint32_t>(b.nodes.size()));
            for (const NodeInfo& n : b.nodes) {
              pk.pack_array(6);
              PackStr(pk, n.name);
              pk.pack_uint64(n.incarnation);
              PackStr(pk, n.state);
              PackStr(pk, n.calls_endpoint);
              pk.pack_uint64(n.last_heard_ms_ago);
              PackBool(pk, n.is_self);
            }
          } else if constexpr (std::is_same_v<T, StatsBody>) {
            pk.pack_array(static_cast<uint32_t>(b.counters.size()));
            for (const auto& [name, value] : b.counters) {
              pk.pack_array(2);
              PackStr(pk, name);
              pk.pack_uint64(value);
            }
          } else if constexpr (std::is_same_v<T, NameInfo>) {
            PackNameInfo(pk, b);
          } else if constexpr (std::is_same_v<T, NamesBody>) {
            pk.pack_uint64(b.ref);
            pk.pack_array(static_cast<uint32_t>(b.names.size()));
            for (const NameInfo& n : b.names) {
              pk.pack_array(3);
              PackNameInfo(pk, n);
            }
          } else if constexpr (std::is_same_v<T, RecordsBody>) {
            PackRecords(pk, b.records);
          } else if constexpr (std::is_same_v<T, DispatchedBody>) {
            // Each member once (most payloads went to one of a few), then 2
            // bytes per payload: packed, not one msgpack item each.
            std::vector<const MemberId*> members;
            std::string indices(2 * b.outcomes.size(), '\0');
            size_t failures = 0;
            for (size_t i = 0; i < b.outcomes.size(); ++i) {
              uint16_t index = kFailedOutcome;
              if (b.outcomes[i].status.ok()) {
                const MemberId& m = b.outcomes[i].member;
                auto at = std::find_if(members.begin(), members.end(),
                                       [&](const MemberId* seen) { return *seen == m; });
                index = static_cast<uint16_t>(at - members.begin());
                if (at == members.end()) members.push_back(&m);
              } else {
                ++failures;
              }
              PutLittleEndian(&indices[2 * i], index);
            }
            pk.pack_array(static_cast<uint32_t>(members.size()));
            for (const MemberId* m : members) PackStr(pk, m->ToString());
            PackBin(pk, indices);
            pk.pack_array(static_cast<uint32_t>(failures));
            for (const DispatchOutcome& o : b.outcomes) {
              if (o.status.ok()) continue;
              pk.pack_array(2);
              pk.pack_uint8(uint8_t(o.status.code()));
              PackStr(pk, o.status.message());
            }
          } else if constexpr (std::is_same_v<T, LeaderBody>) {
            PackStr(pk, b.node);
            PackStr(pk, b.leader);
            PackStr(pk, b.role);
            pk.pack_uint64(b.term);
            pk.pack_uint64(b.commit);
            pk.pack_uint64(b.applied);
            PackStr(pk, b.problem);
            PackRaftMembers(pk, b.members);
          }
        },
        r->body);
  } else if (const Event* e = std::get_if<Event>(&m)) {
    pk.pack_array(6);
    pk.pack_uint16(uint16_t(Type::kEvent));
    pk.pack_uint64(e->ref);
    pk.pack_uint8(uint8_t(e->kind));
    PackStr(pk, e->scope);
    PackStr(pk, e->group);
    PackMembers(pk, e->members);
  } else if (const Gap* g = std::get_if<Gap>(&m)) {
    pk.pack_array(2);
    pk.pack_uint16(uint16_t(Type::kGap));
    pk.pack_uint64(g->lost);
  } else if (const Message* msg = std::get_if<Message>(&m)) {
    pk.pack_array(7);
    pk.pack_uint16(uint16_t(Type::kMessage));
    pk.pack_uint8(uint8_t(msg->kind));
    PackStr(pk, msg->from.ToString());
    PackStr(pk, msg->topic);
    PackStr(pk, msg->scope);
    PackStr(pk, msg->group);
    PackStr(pk, msg->reply_to);
  } else if (const NameEvent* e = std::get_if<NameEvent>(&m)) {
    pk.pack_array(6);
    pk.pack_uint16(uint16_t(Type::kNameEvent));
    pk.pack_uint64(e->ref);
    pk.pack_uint8(uint8_t(e->kind));
    PackNameInfo(pk, e->entry);
  } else if (const MessageBatch* b = std::get_if<MessageBatch>(&m)) {
    pk.pack_array(2);
    pk.pack_uint16(uint16_t(Type::kMessages));
    pk.pack_uint32(b->count);
  }
  return std::string(buf.data(), buf.size());
}

Result<ClientInbound> DecodeClientInbound(std::string_view frame) {
  Result<const msgpack::object*> obj = Unpack(frame);
  if (!obj.ok()) return obj.status();
  Status st;
  Reader r(*obj, &st, "broker message");
  uint64_t type = r.U64("type");
  if (!st.ok()) return st;
  switch (AsType(type)) {
    case Type::kReply: {
      Reply rep;
      rep.req = r.U64("req");
      uint64_t code = r.U64("code");
      std::string message = r.Str("message", 1u << 16);
      uint64_t tag = r.U64("body_tag");
      if (!st.ok()) return st;
      if (code > uint64_t(kLastCode)) return Status::BadMessage("reply has unknown code");
      rep.status = Status(static_cast<Code>(code), std::move(message));
      switch (tag) {
        case 0:
          rep.body = Empty{};
          break;
        case 1: {
          WelcomeBody w;
          w.node = r.Checked("node", ValidateNodeName);
          w.incarnation = r.U64("incarnation");
          w.session = r.U64("session");
          w.token = r.U64("token");
          w.heartbeat_ms = r.U32("heartbeat_ms");
          w.session_timeout_ms = r.U32("session_timeout_ms");
          w.max_message_bytes = r.U64("max_message_bytes");
          w.client_queue_bytes = r.U64("client_queue_bytes");
          rep.body = std::move(w);
          break;
        }
        case 7:
          rep.body = DeliveredBody{r.Member("member", kMaxHandleBytes)};
          break;
        case 8:
          rep.body = ResponseBody{r.Member("member", kMaxHandleBytes)};
          break;
        case 2:
          rep.body = MembersBody{ReadMembers(r, "members")};
          break;
        case 3: {
          GroupsBody g;
          Reader list = r.Array("groups");
          while (list.has_more()) {
            Reader item = list.Array("group");
            GroupCount c;
            c.scope = item.Checked("scope", ValidateScope);
            c.group = item.Checked("group", ValidateGroup);
            c.count = item.U64("count");
            g.groups.push_back(std::move(c));
          }
          rep.body = std::move(g);
          break;
        }
        case 4: {
          MonitorBody m;
          m.ref = r.U64("ref");
          Reader list = r.Array("groups");
          while (list.has_more()) {
            Reader item = list.Array("group");
            GroupMembers gm;
            gm.scope = item.Checked("scope", ValidateScope);
            gm.group = item.Checked("group", ValidateGroup);
            gm.members = ReadMembers(item, "members");
            m.groups.push_back(std::move(gm));
          }
          rep.body = std::move(m);
          break;
        }
        case 5: {
          NodesBody n;
          Reader list = r.Array("nodes");
          while (list.has_more()) {
            Reader item = list.Array("node");
            NodeInfo info;
            info.name = item.Checked("name", ValidateNodeName);
            info.incarnation = item.U64("incarnation");
            info.state = item.Str("state", 16);
            info.calls_endpoint = item.Str("calls_endpoint", kMaxEndpointBytes);
            info.last_heard_ms_ago = item.U64("last_heard_ms_ago");
            info.is_self = item.Bool("is_self");
            n.nodes.push_back(std::move(info));
          }
          rep.body = std::move(n);
          break;
        }
        case 6: {
          StatsBody s;
          Reader list = r.Array("counters");
          while (list.has_more()) {
            Reader item = list.Array("counter");
            std::string name = item.Str("name", 255);
            uint64_t value = item.U64("value");
            s.counters.emplace_back(std::move(name), value);
          }
          rep.body = std::move(s);
          break;
        }
        case 9:
          rep.body = ReadNameInfo(r);
          break;
        case 10: {
          NamesBody n;
          n.ref = r.U64("ref");
          Reader list = r.Array("names");
          while (list.has_more()) {
            Reader item = list.Array("name");
            n.names.push_back(ReadNameInfo(item));
          }
          rep.body = std::move(n);
          break;
        }
        case 11: {
          LeaderBody b;
          b.node = r.Checked("node", ValidateNodeName);
          b.leader = r.Str("leader", kMaxNodeNameBytes);
          b.role = r.Str("role", 32);
          b.term = r.U64("term");
          b.commit = r.U64("commit");
          b.applied = r.U64("applied");
          b.problem = r.Str("problem", 4096);
          b.members = ReadRaftMembers(r);
          rep.body = std::move(b);
          break;
        }
        case 12:
          rep.body = RecordsBody{ReadRecords(r)};
          break;
        case 13:
          rep.body = DispatchedBody{ReadDispatchOutcomes(r)};
          break;
        default:
          return Status::BadMessage("reply has unknown body tag " + std::to_string(tag));
      }
      return Finish<ClientInbound>(st, std::move(rep));
    }
    case Type::kEvent: {
      Event e;
      e.ref = r.U64("ref");
      uint64_t kind = r.U64("kind");
      if (st.ok() && kind != 1 && kind != 2) return Status::BadMessage("event has unknown kind");
      e.kind = static_cast<EventKind>(kind);
      e.scope = r.Checked("scope", ValidateScope);
      e.group = r.Checked("group", ValidateGroup);
      e.members = ReadMembers(r, "members");
      return Finish<ClientInbound>(st, std::move(e));
    }
    case Type::kGap: {
      Gap g;
      g.lost = r.U64("lost");
      return Finish<ClientInbound>(st, g);
    }
    case Type::kMessage: {
      Message msg;
      uint64_t kind = r.U64("kind");
      if (st.ok() && (kind < 1 || kind > 5)) return Status::BadMessage("message has unknown kind");
      msg.kind = static_cast<MessageKind>(kind);
      msg.from = r.Member("from", kMaxHandleBytes);
      msg.topic = r.Str("topic", kMaxTopicBytes);
      msg.scope = r.Str("scope", kMaxScopeBytes);
      msg.group = r.Str("group", kMaxGroupBytes);
      msg.reply_to = r.Str("reply_to", kMaxHandleBytes);
      if (!st.ok()) return st;
      Status v = msg.kind == MessageKind::kPublish ? ValidateTopic(msg.topic)
                 : msg.kind == MessageKind::kDirect
                     ? Status::Ok()
                     : (ValidateScope(msg.scope).ok() ? ValidateGroup(msg.group)
                                                      : ValidateScope(msg.scope));
      if (v.ok() && msg.kind == MessageKind::kRequest && !MemberId::Parse(msg.reply_to)) {
        v = Status::InvalidArgument("reply_to is malformed");
      }
      if (!v.ok()) return Status::BadMessage("message: " + v.message());
      return ClientInbound(std::move(msg));
    }
    case Type::kNameEvent: {
      NameEvent e;
      e.ref = r.U64("ref");
      uint64_t kind = r.U64("kind");
      if (st.ok() && kind != 1 && kind != 2)
        return Status::BadMessage("name event has unknown kind");
      e.kind = static_cast<NameEventKind>(kind);
      e.entry = ReadNameInfo(r);
      return Finish<ClientInbound>(st, std::move(e));
    }
    case Type::kMessages: {
      MessageBatch b;
      uint64_t count = r.U64("count");
      if (st.ok() && (count < 1 || count > kMaxMessageBatch)) {
        return Status::BadMessage("a message batch holds 1 to " + std::to_string(kMaxMessageBatch) +
                                  " messages");
      }
      b.count = static_cast<uint32_t>(count);
      return Finish<ClientInbound>(st, b);
    }
    default:
      return Status::BadMessage("unknown broker message type " + std::to_string(type));
  }
}

// ---- broker <-> broker -----------------------------------------------------

std::string Encode(const PeerMessage& m) {
  msgpack::sbuffer& buf = ScratchBuffer();
  Packer pk(buf);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, PeerHeartbeat>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kPeerHeartbeat));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.seq);
          PackStr(pk, v.calls_endpoint);
        } else if constexpr (std::is_same_v<T, PeerDelta>) {
          pk.pack_array(4);
          pk.pack_uint16(uint16_t(Type::kPeerDelta));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.seq);
          pk.pack_array(static_cast<uint32_t>(v.ops.size()));
          for (const DeltaOp& op : v.ops) {
            pk.pack_array(4);
            pk.pack_uint8(uint8_t(op.op));
            PackStr(pk, op.scope);
            PackStr(pk, op.group);
            pk.pack_uint64(op.session);
          }
        } else if constexpr (std::is_same_v<T, PeerBye>) {
          pk.pack_array(2);
          pk.pack_uint16(uint16_t(Type::kPeerBye));
          PackPeerId(pk, v.from);
        } else if constexpr (std::is_same_v<T, PeerHello>) {
          pk.pack_array(8);
          pk.pack_uint16(uint16_t(v.is_welcome ? Type::kPeerWelcome : Type::kPeerHello));
          PackPeerId(pk, v.from);
          pk.pack_uint32(v.version);
          pk.pack_array(3);
          PackStr(pk, v.endpoints.calls);
          PackStr(pk, v.endpoints.control);
          PackStr(pk, v.endpoints.data);
          pk.pack_array(static_cast<uint32_t>(v.known_peers.size()));
          for (const std::string& p : v.known_peers) PackStr(pk, p);
          PackSnapshot(pk, v.snapshot);
          pk.pack_array(static_cast<uint32_t>(v.voters.size()));
          for (const std::string& n : v.voters) PackStr(pk, n);
          pk.pack_uint64(v.registry_epoch);
        } else if constexpr (std::is_same_v<T, PeerSyncRequest>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kPeerSyncRequest));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.target_incarnation);
        } else if constexpr (std::is_same_v<T, PeerSyncReply>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kPeerSyncReply));
          PackPeerId(pk, v.from);
          PackSnapshot(pk, v.snapshot);
        } else if constexpr (std::is_same_v<T, PeerProbe>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(v.is_reply ? Type::kPeerProbeReply : Type::kPeerProbe));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.nonce);
        } else if constexpr (std::is_same_v<T, PeerForward>) {
          pk.pack_array(9);
          pk.pack_uint16(uint16_t(Type::kPeerForward));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          pk.pack_uint8(uint8_t(v.kind));
          pk.pack_uint64(v.session);
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
          PackStr(pk, v.sender.ToString());
          pk.pack_uint32(v.timeout_ms);
        } else if constexpr (std::is_same_v<T, PeerForwardAck>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kPeerForwardAck));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          PackStatus(pk, v.status);
        } else if constexpr (std::is_same_v<T, PeerResponse>) {
          pk.pack_array(6);
          pk.pack_uint16(uint16_t(Type::kPeerResponse));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          PackStatus(pk, v.status);
          PackStr(pk, v.responder.ToString());
        } else if constexpr (std::is_same_v<T, PeerCallBatch>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kPeerCallBatch));
          PackPeerId(pk, v.from);
          pk.pack_uint32(v.count);
        } else if constexpr (std::is_same_v<T, PeerForwardRun>) {
          pk.pack_array(8);
          pk.pack_uint16(uint16_t(Type::kPeerForwardRun));
          PackPeerId(pk, v.from);
          pk.pack_uint8(uint8_t(v.kind));
          PackStr(pk, v.scope);
          PackStr(pk, v.group);
          PackStr(pk, v.sender.ToString());
          pk.pack_uint32(v.timeout_ms);
          pk.pack_array(static_cast<uint32_t>(2 * v.calls.size()));
          for (const PeerForwardRun::Call& c : v.calls) {
            pk.pack_uint64(c.id);
            pk.pack_uint64(c.session);
          }
        } else if constexpr (std::is_same_v<T, PeerAckRun>) {
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kPeerAckRun));
          PackPeerId(pk, v.from);
          // 8 bytes per id, little-endian: packed, not one msgpack item each.
          std::string ids(8 * v.ids.size(), '\0');
          for (size_t i = 0; i < v.ids.size(); ++i) PutLittleEndian(&ids[8 * i], v.ids[i]);
          PackBin(pk, ids);
        } else if constexpr (std::is_same_v<T, PeerData>) {
          pk.pack_array(v.is_mark ? 4 : 5);
          pk.pack_uint16(uint16_t(v.is_mark ? Type::kPeerDataMark : Type::kPeerData));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.epoch);
          pk.pack_array(static_cast<uint32_t>(v.streams.size()));
          for (const StreamSeq& s : v.streams) {
            pk.pack_array(2);
            PackStr(pk, s.stream);
            pk.pack_uint64(s.seq);
          }
          if (!v.is_mark) {
            pk.pack_array(static_cast<uint32_t>(v.sessions.size()));
            for (uint64_t session : v.sessions) pk.pack_uint64(session);
          }
        } else if constexpr (std::is_same_v<T, PeerSubscriptionCheck>) {
          pk.pack_array(3);
          pk.pack_uint16(
              uint16_t(v.is_reply ? Type::kPeerSubscriptionSeen : Type::kPeerSubscriptionCheck));
          PackPeerId(pk, v.from);
          PackStr(pk, v.ticket);
        } else if constexpr (std::is_same_v<T, PeerRaft>) {
          const raft::Message& r = v.message;
          pk.pack_array(3);
          pk.pack_uint16(uint16_t(Type::kPeerRaft));
          PackPeerId(pk, v.from);
          pk.pack_array(12);
          pk.pack_uint8(uint8_t(r.type));
          PackStr(pk, r.to);
          pk.pack_uint64(r.term);
          pk.pack_uint64(r.index);
          pk.pack_uint64(r.log_term);
          pk.pack_uint64(r.commit);
          PackBool(pk, r.reject);
          pk.pack_uint64(r.hint_index);
          pk.pack_uint64(r.hint_term);
          pk.pack_uint64(r.context);
          pk.pack_array(static_cast<uint32_t>(r.entries.size()));
          for (const raft::Entry& e : r.entries) {
            pk.pack_array(3);
            pk.pack_uint64(e.term);
            pk.pack_uint64(e.index);
            PackBin(pk, e.data);
          }
          pk.pack_array(3);
          pk.pack_uint64(r.snapshot.index);
          pk.pack_uint64(r.snapshot.term);
          PackBin(pk, r.snapshot.data);
        } else if constexpr (std::is_same_v<T, PeerNameCall>) {
          pk.pack_array(5);
          pk.pack_uint16(uint16_t(Type::kPeerNameCall));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          pk.pack_uint8(uint8_t(v.op));
          PackBin(pk, v.data);
        } else if constexpr (std::is_same_v<T, PeerRegistryStatus>) {
          pk.pack_array(v.is_reply ? 4 : 3);
          pk.pack_uint16(
              uint16_t(v.is_reply ? Type::kPeerRegistryStatus : Type::kPeerRegistryStatusRequest));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          if (v.is_reply) PackRaftMembers(pk, v.members);
        } else if constexpr (std::is_same_v<T, PeerNameAnswer>) {
          pk.pack_array(8);
          pk.pack_uint16(uint16_t(Type::kPeerNameAnswer));
          PackPeerId(pk, v.from);
          pk.pack_uint64(v.id);
          PackStatus(pk, v.status);
          PackStr(pk, v.holder ? v.holder->ToString() : std::string());
          PackBin(pk, v.metadata);
          PackRecords(pk, v.records);
        }
      },
      m);
  return std::string(buf.data(), buf.size());
}

namespace {
// A forward's kind: false (and r failed) unless a dispatch, request or send.
bool ReadForwardKind(Reader& r, MessageKind* kind) {
  uint64_t k = r.U64("kind");
  if (k != uint64_t(MessageKind::kDispatch) && k != uint64_t(MessageKind::kRequest) &&
      k != uint64_t(MessageKind::kDirect)) {
    r.Fail("has kind " + std::to_string(k));
    return false;
  }
  *kind = static_cast<MessageKind>(k);
  return r.ok();
}
// A direct send names no group; the others name a valid one.
void ReadForwardTarget(Reader& r, MessageKind kind, std::string* scope, std::string* group) {
  if (kind == MessageKind::kDirect) {
    *scope = r.Str("scope", 0);
    *group = r.Str("group", 0);
  } else {
    *scope = r.Checked("scope", ValidateScope);
    *group = r.Checked("group", ValidateGroup);
  }
}
}  // namespace

Result<PeerMessage> DecodePeerMessage(std::string_view frame) {
  Result<const msgpack::object*> obj = Unpack(frame);
  if (!obj.ok()) return obj.status();
  Status st;
  Reader r(*obj, &st, "peer message");
  uint64_t type = r.U64("type");
  if (!st.ok()) return st;
  switch (AsType(type)) {
    case Type::kPeerHeartbeat: {
      PeerHeartbeat h;
      h.from = ReadPeerId(r);
      h.seq = r.U64("seq");
      h.calls_endpoint = r.Checked("calls_endpoint", ValidateEndpoint);
      return Finish<PeerMessage>(st, std::move(h));
    }
    case Type::kPeerDelta: {
      PeerDelta d;
      d.from = ReadPeerId(r);
      d.seq = r.U64("seq");
      Reader ops = r.Array("ops");
      if (ops.ok() && ops.size() > kMaxOpsPerDelta) {
        ops.Fail("holds more than " + std::to_string(kMaxOpsPerDelta) + " ops");
      }
      d.ops.reserve(ops.ok() ? ops.size() : 0);
      while (ops.has_more()) {
        Reader o = ops.Array("op");
        DeltaOp op;
        uint64_t kind = o.U64("op");
        if (o.ok() && kind != 1 && kind != 2) o.Fail("has unknown op " + std::to_string(kind));
        op.op = static_cast<DeltaOpKind>(kind);
        op.scope = o.Checked("scope", ValidateScope);
        op.group = o.Checked("group", ValidateGroup);
        op.session = o.U64("session");
        if (!o.ok()) break;
        d.ops.push_back(std::move(op));
      }
      return Finish<PeerMessage>(st, std::move(d));
    }
    case Type::kPeerBye: {
      PeerBye b;
      b.from = ReadPeerId(r);
      return Finish<PeerMessage>(st, std::move(b));
    }
    case Type::kPeerHello:
    case Type::kPeerWelcome: {
      PeerHello h;
      h.is_welcome = static_cast<Type>(type) == Type::kPeerWelcome;
      h.from = ReadPeerId(r);
      h.version = r.U32("version");
      Reader eps = r.Array("endpoints");
      h.endpoints.calls = eps.Checked("calls", ValidateEndpoint);
      h.endpoints.control = eps.Checked("control", ValidateEndpoint);
      h.endpoints.data = eps.Checked("data", ValidateEndpoint);
      Reader known = r.Array("known_peers");
      if (known.ok() && known.size() > kMaxKnownPeers) {
        known.Fail("lists more than " + std::to_string(kMaxKnownPeers) + " peers");
      }
      while (known.has_more()) h.known_peers.push_back(known.Checked("peer", ValidateEndpoint));
      h.snapshot = ReadSnapshot(r);
      Reader voters = r.Array("voters");
      if (voters.ok() && voters.size() > kMaxVoters) {
        voters.Fail("lists more than " + std::to_string(kMaxVoters) + " voters");
      }
      while (voters.has_more()) h.voters.push_back(voters.Checked("voter", ValidateNodeName));
      if (st.ok() && !std::is_sorted(h.voters.begin(), h.voters.end())) {
        return Status::BadMessage("peer message voters are not sorted");
      }
      if (st.ok() && std::adjacent_find(h.voters.begin(), h.voters.end()) != h.voters.end()) {
        return Status::BadMessage("peer message lists a voter twice");
      }
      h.registry_epoch = r.U64("registry_epoch");
      return Finish<PeerMessage>(st, std::move(h));
    }
    case Type::kPeerSyncRequest: {
      PeerSyncRequest s;
      s.from = ReadPeerId(r);
      s.target_incarnation = r.U64("target_incarnation");
      return Finish<PeerMessage>(st, std::move(s));
    }
    case Type::kPeerSyncReply: {
      PeerSyncReply s;
      s.from = ReadPeerId(r);
      s.snapshot = ReadSnapshot(r);
      return Finish<PeerMessage>(st, std::move(s));
    }
    case Type::kPeerProbe:
    case Type::kPeerProbeReply: {
      PeerProbe p;
      p.is_reply = static_cast<Type>(type) == Type::kPeerProbeReply;
      p.from = ReadPeerId(r);
      p.nonce = r.U64("nonce");
      return Finish<PeerMessage>(st, std::move(p));
    }
    case Type::kPeerForward: {
      PeerForward f;
      f.from = ReadPeerId(r);
      f.id = r.U64("id");
      if (!ReadForwardKind(r, &f.kind)) return st;
      f.session = r.U64("session");
      ReadForwardTarget(r, f.kind, &f.scope, &f.group);
      f.sender = r.Member("sender", kMaxHandleBytes);
      f.timeout_ms = r.U32("timeout_ms");
      return Finish<PeerMessage>(st, std::move(f));
    }
    case Type::kPeerForwardRun: {
      PeerForwardRun f;
      f.from = ReadPeerId(r);
      if (!ReadForwardKind(r, &f.kind)) return st;
      ReadForwardTarget(r, f.kind, &f.scope, &f.group);
      f.sender = r.Member("sender", kMaxHandleBytes);
      f.timeout_ms = r.U32("timeout_ms");
      Reader calls = r.Array("calls");
      if (calls.ok() && (calls.size() == 0 || calls.size() % 2 != 0 ||
                         calls.size() > 2 * size_t(kMaxMessageBatch))) {
        calls.Fail("must hold 1 to " + std::to_string(kMaxMessageBatch) + " [id, session] pairs");
      }
      f.calls.reserve(calls.ok() ? calls.size() / 2 : 0);
      while (calls.has_more()) {
        PeerForwardRun::Call c;
        c.id = calls.U64("id");
        c.session = calls.U64("session");
        f.calls.push_back(c);
      }
      return Finish<PeerMessage>(st, std::move(f));
    }
    case Type::kPeerAckRun: {
      PeerAckRun a;
      a.from = ReadPeerId(r);
      const std::string ids = r.Bin("ids", 8 * kMaxMessageBatch);
      if (st.ok() && (ids.empty() || ids.size() % 8 != 0)) {
        r.Fail("field 'ids' must hold 1 to " + std::to_string(kMaxMessageBatch) +
               " ids of 8 bytes, not " + std::to_string(ids.size()) + " bytes");
      }
      if (st.ok()) {
        a.ids.resize(ids.size() / 8);
        for (size_t i = 0; i < a.ids.size(); ++i) a.ids[i] = GetLittleEndian<uint64_t>(&ids[8 * i]);
      }
      return Finish<PeerMessage>(st, std::move(a));
    }
    case Type::kPeerForwardAck: {
      PeerForwardAck a;
      a.from = ReadPeerId(r);
      a.id = r.U64("id");
      a.status = ReadStatus(r);
      return Finish<PeerMessage>(st, std::move(a));
    }
    case Type::kPeerResponse: {
      PeerResponse p;
      p.from = ReadPeerId(r);
      p.id = r.U64("id");
      p.status = ReadStatus(r);
      p.responder = r.Member("responder", kMaxHandleBytes);
      return Finish<PeerMessage>(st, std::move(p));
    }
    case Type::kPeerCallBatch: {
      PeerCallBatch b;
      b.from = ReadPeerId(r);
      uint64_t count = r.U64("count");
      if (st.ok() && (count < 2 || count > kMaxMessageBatch)) {
        return Status::BadMessage("a call batch holds 2 to " + std::to_string(kMaxMessageBatch) +
                                  " calls");
      }
      b.count = static_cast<uint32_t>(count);
      return Finish<PeerMessage>(st, std::move(b));
    }
    case Type::kPeerData:
    case Type::kPeerDataMark: {
      PeerData d;
      d.is_mark = AsType(type) == Type::kPeerDataMark;
      d.from = ReadPeerId(r);
      d.epoch = r.U64("epoch");
      Reader streams = r.Array("streams");
      if (streams.ok() && (streams.size() == 0 || streams.size() > kMaxStreamsPerData)) {
        streams.Fail("must name 1 to " + std::to_string(kMaxStreamsPerData) + " streams");
      }
      while (streams.has_more()) {
        Reader e = streams.Array("stream");
        StreamSeq ss;
        ss.stream = e.Str("prefix", kMaxTopicBytes + kMaxScopeBytes + 3);
        ss.seq = e.U64("seq");
        if (e.ok() && ss.seq == 0) e.Fail("has seq 0");
        if (!e.ok()) break;
        d.streams.push_back(std::move(ss));
      }
      if (d.is_mark && st.ok() && d.streams.size() != 1) {
        return Status::BadMessage("a data mark names one stream");
      }
      if (!d.is_mark) {
        Reader sessions = r.Array("sessions");
        if (sessions.ok() && (sessions.size() == 0 || sessions.size() > kMaxDataBatch)) {
          sessions.Fail("must name 1 to " + std::to_string(kMaxDataBatch) + " sessions");
        }
        while (sessions.has_more() && sessions.ok()) d.sessions.push_back(sessions.U64("session"));
      }
      return Finish<PeerMessage>(st, std::move(d));
    }
    case Type::kPeerSubscriptionCheck:
    case Type::kPeerSubscriptionSeen: {
      PeerSubscriptionCheck c;
      c.is_reply = AsType(type) == Type::kPeerSubscriptionSeen;
      c.from = ReadPeerId(r);
      c.ticket = r.Str("ticket", kMaxHandleBytes);
      if (st.ok() && (c.ticket.size() < 2 || c.ticket[0] != kTicketTopicMark)) {
        return Status::BadMessage("subscription check with a malformed ticket");
      }
      return Finish<PeerMessage>(st, std::move(c));
    }
    case Type::kPeerRaft: {
      PeerRaft p;
      p.from = ReadPeerId(r);
      Reader m = r.Array("raft");
      raft::Message& msg = p.message;
      uint64_t type = m.U64("type");
      if (m.ok() && type > uint64_t(raft::MessageType::kHeartbeatReply)) {
        m.Fail("has unknown raft type " + std::to_string(type));
      }
      msg.type = static_cast<raft::MessageType>(type);
      msg.from = p.from.node;
      msg.to = m.Checked("to", ValidateNodeName);
      msg.term = m.U64("term");
      msg.index = m.U64("index");
      msg.log_term = m.U64("log_term");
      msg.commit = m.U64("commit");
      msg.reject = m.Bool("reject");
      msg.hint_index = m.U64("hint_index");
      msg.hint_term = m.U64("hint_term");
      msg.context = m.U64("context");
      Reader entries = m.Array("entries");
      if (entries.ok() && entries.size() > kMaxRaftEntries) {
        entries.Fail("holds more than " + std::to_string(kMaxRaftEntries) + " entries");
      }
      msg.entries.reserve(entries.ok() ? entries.size() : 0);
      while (entries.has_more()) {
        Reader e = entries.Array("entry");
        raft::Entry entry;
        entry.term = e.U64("term");
        entry.index = e.U64("index");
        entry.data = e.Bin("data", kMaxFrameBytes);
        if (!e.ok()) break;
        msg.entries.push_back(std::move(entry));
      }
      Reader snap = m.Array("snapshot");
      msg.snapshot.index = snap.U64("index");
      msg.snapshot.term = snap.U64("term");
      msg.snapshot.data = snap.Bin("data", kMaxFrameBytes);
      return Finish<PeerMessage>(st, std::move(p));
    }
    case Type::kPeerNameCall: {
      PeerNameCall c;
      c.from = ReadPeerId(r);
      c.id = r.U64("id");
      uint64_t op = r.U64("op");
      if (r.ok() && (op < 1 || op > 4)) r.Fail("has unknown op " + std::to_string(op));
      c.op = static_cast<NameCallOp>(op);
      c.data = r.Bin("data", kMaxNameCallDataBytes);
      if (st.ok() && c.op != NameCallOp::kWrite) {
        Status v = c.op == NameCallOp::kConsistentRead     ? ValidateRegistryName(c.data)
                   : c.op == NameCallOp::kConsistentRecord ? ValidateRecordKey(c.data)
                                                           : ValidateRecordKeyPrefix(c.data);
        if (!v.ok()) return Status::BadMessage("name call: " + v.message());
      }
      return Finish<PeerMessage>(st, std::move(c));
    }
    case Type::kPeerRegistryStatusRequest:
    case Type::kPeerRegistryStatus: {
      PeerRegistryStatus p;
      p.is_reply = static_cast<Type>(type) == Type::kPeerRegistryStatus;
      p.from = ReadPeerId(r);
      p.id = r.U64("id");
      if (p.is_reply) p.members = ReadRaftMembers(r);
      return Finish<PeerMessage>(st, std::move(p));
    }
    case Type::kPeerNameAnswer: {
      PeerNameAnswer a;
      a.from = ReadPeerId(r);
      a.id = r.U64("id");
      a.status = ReadStatus(r);
      std::string holder = r.Str("holder", kMaxHandleBytes);
      if (st.ok() && !holder.empty()) {
        a.holder = MemberId::Parse(holder);
        if (!a.holder) return Status::BadMessage("name answer has a malformed holder");
      }
      a.metadata = r.Bin("metadata", kMaxNameMetadataBytes);
      if (r.has_more()) a.records = ReadRecords(r);  // older peers end before
      return Finish<PeerMessage>(st, std::move(a));
    }
    default:
      return Status::BadMessage("unknown peer message type " + std::to_string(type));
  }
}

const PeerId& SenderOf(const PeerMessage& m) {
  return std::visit([](const auto& v) -> const PeerId& { return v.from; }, m);
}

}  // namespace meshbus::wire
