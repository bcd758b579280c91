// Tests of topics/wire.h: every message round-trips, the bytes follow the
// layout documented in wire.h, and every kind of bad input is rejected with a
// Status (never a crash, never a half-decoded message).
//
// Bad messages are crafted with msgpack's packer through a small value tree
// (V below), so a test can build a valid message and break exactly one thing.

#include "topics/wire.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <msgpack.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace meshbus::wire {
namespace {

// ---- a msgpack value tree for crafting frames ------------------------------

struct V {
  enum class K { kNil, kBool, kUint, kInt, kFloat, kStr, kBin, kArr, kMap };
  K k = K::kNil;
  bool b = false;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<V> a;
  // Packed array header larger than `a` (to claim more elements than sent).
  std::optional<uint32_t> claimed_size;
};

V Nil() {
  return V{};
}
V B(bool b) {
  V v;
  v.k = V::K::kBool;
  v.b = b;
  return v;
}
V U(uint64_t u) {
  V v;
  v.k = V::K::kUint;
  v.u = u;
  return v;
}
V I(int64_t i) {
  V v;
  v.k = V::K::kInt;
  v.i = i;
  return v;
}
V F(double f) {
  V v;
  v.k = V::K::kFloat;
  v.f = f;
  return v;
}
V S(std::string s) {
  V v;
  v.k = V::K::kStr;
  v.s = std::move(s);
  return v;
}
V Bin(std::string s) {
  V v;
  v.k = V::K::kBin;
  v.s = std::move(s);
  return v;
}
V A(std::vector<V> items) {
  V v;
  v.k = V::K::kArr;
  v.a = std::move(items);
  return v;
}
V EmptyMap() {
  V v;
  v.k = V::K::kMap;
  return v;
}
V ClaimedArray(uint32_t claimed, std::vector<V> sent) {
  V v = A(std::move(sent));
  v.claimed_size = claimed;
  return v;
}

void PackV(msgpack::sbuffer& buf, const V& v) {
  msgpack::packer<msgpack::sbuffer> pk(buf);
  switch (v.k) {
    case V::K::kNil:
      pk.pack_nil();
      break;
    case V::K::kBool:
      v.b ? pk.pack_true() : pk.pack_false();
      break;
    case V::K::kUint:
      pk.pack_uint64(v.u);
      break;
    case V::K::kInt:
      pk.pack_int64(v.i);
      break;
    case V::K::kFloat: {
      // Raw float 64: msgpack's pack_double() packs a whole number as an integer.
      uint64_t bits;
      static_assert(sizeof bits == sizeof v.f);
      std::memcpy(&bits, &v.f, sizeof bits);
      char raw[9] = {'\xcb'};
      for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
      buf.write(raw, sizeof raw);
      break;
    }
    case V::K::kStr:
      pk.pack_str(static_cast<uint32_t>(v.s.size()));
      pk.pack_str_body(v.s.data(), static_cast<uint32_t>(v.s.size()));
      break;
    case V::K::kBin:
      pk.pack_bin(static_cast<uint32_t>(v.s.size()));
      pk.pack_bin_body(v.s.data(), static_cast<uint32_t>(v.s.size()));
      break;
    case V::K::kArr:
      pk.pack_array(v.claimed_size.value_or(static_cast<uint32_t>(v.a.size())));
      for (const V& item : v.a) PackV(buf, item);
      break;
    case V::K::kMap:
      pk.pack_map(0);
      break;
  }
}

std::string Pack(const V& v) {
  msgpack::sbuffer buf;
  PackV(buf, v);
  return std::string(buf.data(), buf.size());
}

V FromObject(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return Nil();
    case msgpack::type::BOOLEAN:
      return B(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      return U(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return I(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return F(o.via.f64);
    case msgpack::type::STR:
      return S(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN:
      return Bin(std::string(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      std::vector<V> items;
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        items.push_back(FromObject(o.via.array.ptr[i]));
      return A(std::move(items));
    }
    default:
      ADD_FAILURE() << "unexpected msgpack type " << o.type;
      return Nil();
  }
}

V Unpacked(const std::string& frame) {
  msgpack::object_handle oh = msgpack::unpack(frame.data(), frame.size());
  return FromObject(oh.get());
}

// Values of a different msgpack type than `v`, each of which a decoder must
// refuse in v's place.
std::vector<V> WrongTypesFor(const V& v) {
  switch (v.k) {
    case V::K::kUint:
      return {S("1"), I(-1), F(1.0), B(true), Nil(), A({}), Bin("1")};
    case V::K::kStr:
      return {U(1), Bin(v.s), Nil(), A({}), B(false)};
    case V::K::kBool:
      return {U(1), S("true"), Nil()};
    case V::K::kArr:
      return {U(1), S("x"), Nil(), EmptyMap(), Bin("x")};
    case V::K::kNil:
      return {U(0), B(false), A({})};
    default:
      return {};
  }
}

// Every path to a node of the tree (the root excluded), depth first.
void CollectPaths(const V& v, std::vector<size_t>& prefix, std::vector<std::vector<size_t>>* out) {
  for (size_t i = 0; i < v.a.size(); ++i) {
    prefix.push_back(i);
    out->push_back(prefix);
    CollectPaths(v.a[i], prefix, out);
    prefix.pop_back();
  }
}

V& At(V& root, const std::vector<size_t>& path) {
  V* v = &root;
  for (size_t i : path) v = &v->a[i];
  return *v;
}

std::string Hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
    s += ' ';
  }
  return s;
}

std::string PathString(const std::vector<size_t>& path) {
  std::string s;
  for (size_t i : path) s += "[" + std::to_string(i) + "]";
  return s;
}

// ---- readable renderings, to compare decoded messages field by field -------

std::string D(const MemberId& m) {
  return "<" + m.node + " " + std::to_string(m.incarnation) + " " + std::to_string(m.session) + ">";
}
std::string D(const std::vector<MemberId>& ms) {
  std::string s = "[";
  for (const MemberId& m : ms) s += D(m);
  return s + "]";
}
std::string D(const Status& st) {
  return std::to_string(int(st.code())) + ":'" + st.message() + "'";
}
std::string D(const PeerId& p) {
  return "<" + p.node + " " + std::to_string(p.incarnation) + ">";
}
std::string D(const Snapshot& s) {
  std::ostringstream o;
  o << "snapshot{" << s.seq;
  for (const MembershipEntry& e : s.entries) {
    o << " (" << e.scope << "," << e.group << "," << e.session << "," << e.count << ")";
  }
  o << "}";
  return o.str();
}

std::string D(const NameInfo& n) {
  return "('" + n.name + "' " + n.holder.ToString() + " '" + n.metadata + "')";
}

std::string D(const Record& r) {
  return "(" + r.key + "," + std::to_string(r.value.size()) + "B:" + r.value + ")";
}
std::string D(const ClientRequest& m) {
  std::ostringstream o;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Hello>) {
          o << "Hello " << v.req << " " << v.version << " '" << v.client_name << "'";
        } else if constexpr (std::is_same_v<T, Bye>) {
          o << "Bye " << v.req;
        } else if constexpr (std::is_same_v<T, SessionHeartbeat>) {
          o << "SessionHeartbeat " << v.session << " " << v.token;
        } else if constexpr (std::is_same_v<T, Join>) {
          o << "Join " << v.req << " '" << v.scope << "' '" << v.group << "'";
        } else if constexpr (std::is_same_v<T, Leave>) {
          o << "Leave " << v.req << " '" << v.scope << "' '" << v.group << "'";
        } else if constexpr (std::is_same_v<T, Members>) {
          o << "Members " << v.req << " '" << v.scope << "' '" << v.group << "' " << v.local_only;
        } else if constexpr (std::is_same_v<T, WhichGroups>) {
          o << "WhichGroups " << v.req << " '" << v.scope << "' " << v.local_only;
        } else if constexpr (std::is_same_v<T, Monitor>) {
          o << "Monitor " << v.req << " '" << v.scope << "' "
            << (v.group ? "'" + *v.group + "'" : std::string("nil"));
        } else if constexpr (std::is_same_v<T, Demonitor>) {
          o << "Demonitor " << v.req << " " << v.ref;
        } else if constexpr (std::is_same_v<T, Nodes>) {
          o << "Nodes " << v.req;
        } else if constexpr (std::is_same_v<T, Stats>) {
          o << "Stats " << v.req;
        } else if constexpr (std::is_same_v<T, JoinMany>) {
          o << "JoinMany " << v.req << " '" << v.scope << "'";
          for (const std::string& g : v.groups) o << " '" << g << "'";
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          o << (v.unsubscribe ? "Unsubscribe " : "Subscribe ") << v.req << " '" << v.prefix << "'";
        } else if constexpr (std::is_same_v<T, Publish>) {
          o << "Publish " << v.req << " '" << v.topic << "' " << v.count;
        } else if constexpr (std::is_same_v<T, Broadcast>) {
          o << "Broadcast " << v.req << " '" << v.scope << "' '" << v.group << "' " << v.count;
        } else if constexpr (std::is_same_v<T, Dispatch>) {
          o << "Dispatch " << v.req << " '" << v.scope << "' '" << v.group << "' " << v.count;
        } else if constexpr (std::is_same_v<T, Request>) {
          o << "Request " << v.req << " '" << v.scope << "' '" << v.group << "' " << v.timeout_ms;
        } else if constexpr (std::is_same_v<T, Respond>) {
          o << "Respond " << v.req << " '" << v.reply_to << "'";
        } else if constexpr (std::is_same_v<T, Send>) {
          o << "Send " << v.req << " " << v.member.ToString();
        } else if constexpr (std::is_same_v<T, Credit>) {
          o << "Credit " << v.session << " " << v.token << " " << v.bytes;
        } else if constexpr (std::is_same_v<T, Register>) {
          o << "Register " << v.req << " '" << v.name << "' '" << v.metadata << "'";
        } else if constexpr (std::is_same_v<T, Unregister>) {
          o << "Unregister " << v.req << " '" << v.name << "'";
        } else if constexpr (std::is_same_v<T, Whereis>) {
          o << "Whereis " << v.req << " '" << v.name << "' " << v.consistent;
        } else if constexpr (std::is_same_v<T, ListNames>) {
          o << "Names " << v.req << " '" << v.prefix << "'";
        } else if constexpr (std::is_same_v<T, MonitorNames>) {
          o << "MonitorNames " << v.req << " '" << v.prefix << "'";
        } else if constexpr (std::is_same_v<T, Leader>) {
          o << "Leader " << v.req;
        } else if constexpr (std::is_same_v<T, SendName>) {
          o << "SendName " << v.req << " '" << v.name << "'";
        } else if constexpr (std::is_same_v<T, PutRecord>) {
          o << "PutRecord " << v.req << " '" << v.key << "' " << v.value.size() << "B:'" << v.value
            << "' " << int(v.mode);
        } else if constexpr (std::is_same_v<T, DeleteRecord>) {
          o << "DeleteRecord " << v.req << " '" << v.key << "'";
        } else if constexpr (std::is_same_v<T, ListRecords>) {
          o << "Records " << v.req << " '" << v.prefix << "' " << v.consistent << " " << v.exact;
        } else {
          static_assert(sizeof(T) == 0, "describe every request type");
        }
      },
      m);
  return o.str();
}

std::string D(const ClientInbound& m) {
  std::ostringstream o;
  if (const Reply* r = std::get_if<Reply>(&m)) {
    o << "Reply " << r->req << " " << D(r->status) << " tag " << r->body.index() << " ";
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, WelcomeBody>) {
            o << b.node << " " << b.incarnation << " " << b.session << " " << b.token << " "
              << b.heartbeat_ms << " " << b.session_timeout_ms << " " << b.max_message_bytes << " "
              << b.client_queue_bytes;
          } else if constexpr (std::is_same_v<T, DeliveredBody> ||
                               std::is_same_v<T, ResponseBody>) {
            o << b.member.ToString();
          } else if constexpr (std::is_same_v<T, MembersBody>) {
            o << D(b.members);
          } else if constexpr (std::is_same_v<T, GroupsBody>) {
            for (const GroupCount& g : b.groups)
              o << "(" << g.scope << "," << g.group << "," << g.count << ")";
          } else if constexpr (std::is_same_v<T, MonitorBody>) {
            o << b.ref;
            for (const GroupMembers& g : b.groups)
              o << "(" << g.scope << "," << g.group << "," << D(g.members) << ")";
          } else if constexpr (std::is_same_v<T, NodesBody>) {
            for (const NodeInfo& n : b.nodes) {
              o << "(" << n.name << "," << n.incarnation << "," << n.state << ","
                << n.calls_endpoint << "," << n.last_heard_ms_ago << "," << n.is_self << ")";
            }
          } else if constexpr (std::is_same_v<T, StatsBody>) {
            for (const auto& [name, value] : b.counters) o << "(" << name << "," << value << ")";
          } else if constexpr (std::is_same_v<T, NameInfo>) {
            o << D(b);
          } else if constexpr (std::is_same_v<T, NamesBody>) {
            o << b.ref;
            for (const NameInfo& n : b.names) o << D(n);
          } else if constexpr (std::is_same_v<T, RecordsBody>) {
            for (const Record& rec : b.records) o << D(rec);
          } else if constexpr (std::is_same_v<T, DispatchedBody>) {
            for (const DispatchOutcome& x : b.outcomes) {
              o << "(" << D(x.status) << "," << x.member.ToString() << ")";
            }
          } else if constexpr (std::is_same_v<T, LeaderBody>) {
            o << b.node << " " << b.leader << " " << b.role << " " << b.term << " " << b.commit
              << " " << b.applied << " '" << b.problem << "'";
            for (const RaftMemberInfo& m : b.members) {
              o << " (" << m.node << "," << m.voter << "," << m.alive << "," << m.match << ","
                << m.replication << "," << m.active << ")";
            }
          }
        },
        r->body);
  } else if (const Event* e = std::get_if<Event>(&m)) {
    o << "Event " << e->ref << " " << int(e->kind) << " '" << e->scope << "' '" << e->group << "' "
      << D(e->members);
  } else if (const Gap* g = std::get_if<Gap>(&m)) {
    o << "Gap " << g->lost;
  } else if (const Message* msg = std::get_if<Message>(&m)) {
    o << "Message " << int(msg->kind) << " " << msg->from.ToString() << " '" << msg->topic << "' '"
      << msg->scope << "' '" << msg->group << "' '" << msg->reply_to << "'";
  } else if (const NameEvent* e = std::get_if<NameEvent>(&m)) {
    o << "NameEvent " << e->ref << " " << int(e->kind) << " " << D(e->entry);
  } else if (const MessageBatch* b = std::get_if<MessageBatch>(&m)) {
    o << "Messages " << b->count;
  }
  return o.str();
}

std::string D(const PeerMessage& m) {
  std::ostringstream o;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        o << D(v.from) << " ";
        if constexpr (std::is_same_v<T, PeerHeartbeat>) {
          o << "Heartbeat " << v.seq << " " << v.calls_endpoint;
        } else if constexpr (std::is_same_v<T, PeerDelta>) {
          o << "Delta " << v.seq;
          for (const DeltaOp& op : v.ops) {
            o << " (" << int(op.op) << "," << op.scope << "," << op.group << "," << op.session
              << ")";
          }
        } else if constexpr (std::is_same_v<T, PeerBye>) {
          o << "Bye";
        } else if constexpr (std::is_same_v<T, PeerHello>) {
          o << (v.is_welcome ? "Welcome " : "Hello ") << v.version << " " << v.endpoints.calls
            << " " << v.endpoints.control << " " << v.endpoints.data << " [";
          for (const std::string& p : v.known_peers) o << p << ";";
          o << "] " << D(v.snapshot) << " voters";
          for (const std::string& n : v.voters) o << " " << n;
          o << " epoch " << v.registry_epoch;
        } else if constexpr (std::is_same_v<T, PeerSyncRequest>) {
          o << "SyncRequest " << v.target_incarnation;
        } else if constexpr (std::is_same_v<T, PeerSyncReply>) {
          o << "SyncReply " << D(v.snapshot);
        } else if constexpr (std::is_same_v<T, PeerProbe>) {
          o << (v.is_reply ? "ProbeReply " : "Probe ") << v.nonce;
        } else if constexpr (std::is_same_v<T, PeerForward>) {
          o << "Forward " << v.id << " " << int(v.kind) << " " << v.session << " '" << v.scope
            << "' '" << v.group << "' " << v.sender.ToString() << " " << v.timeout_ms;
        } else if constexpr (std::is_same_v<T, PeerForwardAck>) {
          o << "ForwardAck " << v.id << " " << D(v.status);
        } else if constexpr (std::is_same_v<T, PeerCallBatch>) {
          o << "CallBatch " << v.count;
        } else if constexpr (std::is_same_v<T, PeerForwardRun>) {
          o << "ForwardRun " << int(v.kind) << " '" << v.scope << "' '" << v.group << "' "
            << v.sender.ToString() << " " << v.timeout_ms;
          for (const PeerForwardRun::Call& c : v.calls)
            o << " (" << c.id << "," << c.session << ")";
        } else if constexpr (std::is_same_v<T, PeerAckRun>) {
          o << "AckRun";
          for (uint64_t id : v.ids) o << " " << id;
        } else if constexpr (std::is_same_v<T, PeerResponse>) {
          o << "Response " << v.id << " " << D(v.status) << " " << v.responder.ToString();
        } else if constexpr (std::is_same_v<T, PeerData>) {
          o << (v.is_mark ? "DataMark " : "Data ") << v.epoch;
          for (const StreamSeq& ss : v.streams) o << " (" << ss.stream << "," << ss.seq << ")";
          for (uint64_t session : v.sessions) o << " " << session;
        } else if constexpr (std::is_same_v<T, PeerSubscriptionCheck>) {
          o << (v.is_reply ? "SubscriptionSeen " : "SubscriptionCheck ") << v.ticket;
        } else if constexpr (std::is_same_v<T, PeerRaft>) {
          const raft::Message& r = v.message;
          o << "Raft " << raft::MessageTypeName(r.type) << " " << r.from << "->" << r.to << " t"
            << r.term << " i" << r.index << " lt" << r.log_term << " c" << r.commit << " rej"
            << r.reject << " h" << r.hint_index << "/" << r.hint_term << " ctx" << r.context;
          for (const raft::Entry& e : r.entries) {
            o << " (" << e.term << "," << e.index << "," << e.data.size() << "B:" << e.data << ")";
          }
          o << " snap(" << r.snapshot.index << "," << r.snapshot.term << ","
            << r.snapshot.data.size() << "B)";
        } else if constexpr (std::is_same_v<T, PeerNameCall>) {
          o << "NameCall " << v.id << " " << int(v.op) << " '" << v.data << "'";
        } else if constexpr (std::is_same_v<T, PeerRegistryStatus>) {
          o << (v.is_reply ? "RegistryStatus " : "RegistryStatusRequest ") << v.id;
          for (const RaftMemberInfo& m : v.members) {
            o << " (" << m.node << "," << m.voter << "," << m.alive << "," << m.match << ","
              << m.replication << "," << m.active << ")";
          }
        } else if constexpr (std::is_same_v<T, PeerNameAnswer>) {
          o << "NameAnswer " << v.id << " " << D(v.status) << " "
            << (v.holder ? v.holder->ToString() : "-") << " '" << v.metadata << "'";
          for (const Record& rec : v.records) o << " " << D(rec);
        } else {
          static_assert(sizeof(T) == 0, "describe every peer message type");
        }
      },
      m);
  return o.str();
}

// ---- samples: at least one of every message kind ---------------------------

const std::string kMaxScope(kMaxScopeBytes, 's');
const std::string kMaxGroup(kMaxGroupBytes, 'g');
const MemberId kM1{"n1", 0x5f3a9c, 17};
const MemberId kM2{"node-2", UINT64_MAX, 0};
const MemberId kM3{std::string(kMaxNodeNameBytes, 'z'), UINT64_MAX, UINT64_MAX};

std::vector<ClientRequest> ClientRequestSamples() {
  return {
      Hello{1, kProtocolVersion, "orders-service"},
      Hello{UINT64_MAX, UINT32_MAX, ""},
      Hello{2, 7, std::string(255, 'c')},
      Bye{3},
      SessionHeartbeat{77, 0xfeedfacecafebeefull},
      Join{4, "orders", "emitters"},
      Join{5, kMaxScope, kMaxGroup},
      Join{6, "commandes-\xc3\xa9t\xc3\xa9", "a b:$all"},
      Leave{7, "orders", "emitters"},
      Members{8, "orders", "emitters", false},
      Members{9, "orders", "emitters", true},
      WhichGroups{10, "", false},
      WhichGroups{11, "orders", true},
      Monitor{12, "orders", std::string("emitters")},
      Monitor{13, "orders", std::nullopt},
      Demonitor{14, 12345},
      Nodes{15},
      Stats{0},
      JoinMany{16, "orders", {"a", "b", "a"}},
      Subscribe{17, "", false},
      Subscribe{18, "orders.eu", true},
      Subscribe{19, std::string(kMaxTopicBytes, 't'), false},
      Publish{0, "orders.eu.created"},
      Publish{20, std::string(kMaxTopicBytes, 't')},
      Broadcast{21, "orders", "emitters"},
      Publish{22, "t", 1},
      Publish{23, "t", kMaxCastPayloads},
      Broadcast{24, "orders", "emitters", 64},
      Dispatch{22, kMaxScope, kMaxGroup},
      Dispatch{23, "orders", "workers", 1},
      Dispatch{24, "orders", "workers", kMaxCastPayloads},
      Request{23, "orders", "workers", 1},
      Request{24, "orders", "workers", UINT32_MAX},
      Respond{25, "n1.5f3a9c.99"},
      Send{26, kM1},
      Send{27, kM3},
      Credit{77, 0xfeedfacecafebeefull, 0},
      Credit{UINT64_MAX, 1, UINT64_MAX},
      Register{28, "orders-leader", ""},
      Register{29, std::string(kMaxRegistryNameBytes, 'n'),
               std::string(kMaxNameMetadataBytes, '\xff')},
      Unregister{30, "orders-leader"},
      Whereis{31, "orders-leader", false},
      Whereis{32, "caf\xc3\xa9", true},
      ListNames{33, ""},
      ListNames{34, "orders-"},
      MonitorNames{35, ""},
      MonitorNames{36, std::string(kMaxRegistryNameBytes, 'p')},
      Leader{37},
      SendName{38, "orders-leader"},
      PutRecord{39, "store/orders/sub/$all", "{\"pool\":1}", RecordMode::kPut},
      PutRecord{40, std::string(kMaxRegistryNameBytes, 'k'), std::string(1000, '\xff'),
                RecordMode::kCreate},
      PutRecord{41, "k", "", RecordMode::kPut},
      DeleteRecord{42, "store/orders/sub/$all"},
      ListRecords{43, "", false, false},
      ListRecords{44, "store/", true, false},
      ListRecords{45, "store/orders/sub/$all", true, true},
      ListRecords{46, "caf\xc3\xa9", false, true},
  };
}

std::vector<ClientInbound> ClientInboundSamples() {
  std::vector<ClientInbound> out = {
      Reply{1, Status::Ok(), Empty{}},
      Reply{2, Status::NotJoined("n1.5f3a9c.17 is not a member of s/g"), Empty{}},
      Reply{3, Status::Ok(), WelcomeBody{"n1", 0x18a3f5b2c9d4e, 17, 0xabcdef, 250, 5000, 1, 2}},
      Reply{4, Status::Ok(), MembersBody{}},
      Reply{5, Status::Ok(), MembersBody{{kM1, kM1, kM2, kM3}}},
      Reply{6, Status::Ok(), GroupsBody{}},
      Reply{7, Status::Ok(),
            GroupsBody{{{"orders", "emitters", 3}, {kMaxScope, kMaxGroup, UINT64_MAX}}}},
      Reply{8, Status::Ok(), MonitorBody{99, {}}},
      Reply{9, Status::Ok(),
            MonitorBody{100, {{"orders", "emitters", {kM1, kM2}}, {"orders", "empty", {}}}}},
      Reply{10, Status::Ok(), NodesBody{}},
      Reply{11, Status::Ok(),
            NodesBody{{{"n1", 1, "alive", "tcp://127.0.0.1:7001", 0, true},
                       {"n2", UINT64_MAX, "suspect", "tcp://10.0.0.2:7001", 1234, false},
                       {"n3", 3, "dead", "", UINT64_MAX, false}}}},
      Reply{12, Status::Ok(), StatsBody{}},
      Reply{13, Status::Ok(), StatsBody{{{"deliveries", 10}, {"dropped", 0}, {"", UINT64_MAX}}}},
      Event{1, EventKind::kJoin, "orders", "emitters", {kM1}},
      Event{UINT64_MAX, EventKind::kLeave, kMaxScope, kMaxGroup, {kM1, kM1, kM3}},
      Event{2, EventKind::kLeave, "s", "g", {}},
      Gap{0},
      Gap{UINT64_MAX},
      MessageBatch{1},
      MessageBatch{kMaxMessageBatch},
      Reply{14, Status::Ok(), DeliveredBody{kM1}},
      Reply{15, Status::Ok(), ResponseBody{kM3}},
      Reply{16, Status::Ok(), WelcomeBody{"n1", 5, 6, 7, 100, 1500, 1u << 20, 16u << 20}},
      Message{MessageKind::kPublish, kM1, "orders.eu", "", "", ""},
      Message{MessageKind::kPublish, kM3, std::string(kMaxTopicBytes, 't'), "", "", ""},
      Message{MessageKind::kBroadcast, kM2, "", "orders", "emitters", ""},
      Message{MessageKind::kDispatch, kM1, "", kMaxScope, kMaxGroup, ""},
      Message{MessageKind::kRequest, kM1, "", "orders", "workers", "n2.ab.12"},
      Message{MessageKind::kDirect, kM2, "", "", "", ""},
      Reply{17, Status::Ok(), NameInfo{"orders-leader", kM1, "{\"port\":7}"}},
      Reply{18, Status::Taken("held by n1.5f3a9c.17"), NameInfo{"x", kM3, ""}},
      Reply{19, Status::Ok(), NamesBody{}},
      Reply{20, Status::Ok(), NamesBody{7, {{"a", kM1, ""}, {"b", kM2, std::string(10, '\0')}}}},
      Reply{21, Status::Ok(), LeaderBody{"n1", "", "none", 0, 0, 0, "", {}}},
      Reply{22, Status::Ok(),
            LeaderBody{
                "n2",
                "n1",
                "follower",
                UINT64_MAX,
                41,
                40,
                "voter set differs from n4's",
                {{"n1", true, true, 41, "replicate", true}, {"n4", false, false, 0, "", false}}}},
      NameEvent{1, NameEventKind::kRegistered, {"orders-leader", kM1, "m"}},
      NameEvent{UINT64_MAX, NameEventKind::kUnregistered, {"x", kM3, ""}},
      Reply{23, Status::Ok(), RecordsBody{}},
      Reply{
          24, Status::Ok(),
          RecordsBody{{{"a", ""}, {"b", std::string("\0\xff", 2)}, {"c", std::string(3000, 'v')}}}},
      Reply{25, Status::Exists("record 'a' exists"), Empty{}},
      Reply{26, Status::Ok(), DispatchedBody{}},
      Reply{27, Status::Ok(),
            DispatchedBody{{{Status::Ok(), kM1},
                            {Status::NoMembers("no members in group 'g' of scope 's'"), {}},
                            {Status::Unavailable(""), {}},
                            {Status::Ok(), kM3}}}},
  };
  // An error reply with every code, with and without a message.
  for (int c = 0; c <= int(kLastCode); ++c) {
    out.push_back(Reply{uint64_t(100 + c), Status(static_cast<Code>(c), "why " + std::to_string(c)),
                        Empty{}});
    out.push_back(Reply{uint64_t(200 + c), Status(static_cast<Code>(c), ""), Empty{}});
  }
  return out;
}

Snapshot SampleSnapshot() {
  return Snapshot{42,
                  {{"orders", "emitters", 17, 1},
                   {"orders", "emitters", 18, 2},
                   {kMaxScope, kMaxGroup, UINT64_MAX, UINT32_MAX}}};
}

raft::Message RaftSample() {
  raft::Message m;
  m.type = raft::MessageType::kAppend;
  m.from = "n1";
  m.to = "node-2";
  m.term = 9;
  m.index = 41;
  m.log_term = 8;
  m.commit = 40;
  m.reject = true;
  m.hint_index = UINT64_MAX;
  m.hint_term = 3;
  m.context = 77;
  m.entries = {{9, 42, std::string("reg\0ister", 9)}, {9, 43, ""}, {9, 44, std::string(1000, 'x')}};
  m.snapshot = {40, 8, std::string("\x00\xff\x01", 3)};
  return m;
}

std::vector<PeerMessage> PeerMessageSamples() {
  const PeerId from{"n1", 0x18a3f5b2c9d4e};
  return {
      PeerHeartbeat{from, 0, "tcp://127.0.0.1:7001"},
      PeerHeartbeat{{"n-2_x", UINT64_MAX}, UINT64_MAX, "ipc:///tmp/n2.calls"},
      PeerDelta{from, 1, {}},
      PeerDelta{from,
                2,
                {{DeltaOpKind::kJoin, "orders", "emitters", 17},
                 {DeltaOpKind::kLeave, "orders", "emitters", 17},
                 {DeltaOpKind::kJoin, kMaxScope, kMaxGroup, UINT64_MAX}}},
      PeerBye{from},
      PeerHello{from,
                false,
                kProtocolVersion,
                {"tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002", "tcp://127.0.0.1:7003"},
                {"tcp://127.0.0.1:8001", "tcp://127.0.0.1:9001"},
                SampleSnapshot()},
      PeerHello{from, true, 3, {"inproc://c", "inproc://p", "inproc://d"}, {}, Snapshot{}},
      PeerHello{from,
                true,
                kProtocolVersion,
                {"ipc:///tmp/a", "ipc:///tmp/b", "ipc:///tmp/c"},
                {"ipc:///tmp/x"},
                SampleSnapshot(),
                {"n1", "n2", "n3"},
                UINT64_MAX},
      PeerSyncRequest{from, 0x18a3f5b2c9d4e},
      PeerSyncReply{from, Snapshot{}},
      PeerSyncReply{from, SampleSnapshot()},
      PeerProbe{from, 0, false},
      PeerProbe{from, UINT64_MAX, true},
      PeerForward{from, 1, MessageKind::kDispatch, 17, "orders", "emitters", kM1, 0},
      PeerForward{from, UINT64_MAX, MessageKind::kRequest, 0, kMaxScope, kMaxGroup, kM3,
                  UINT32_MAX},
      PeerForward{from, 2, MessageKind::kDirect, 5, "", "", kM2, 0},
      PeerForwardAck{from, 1, Status::Ok()},
      PeerForwardAck{from, 2, Status::Unavailable("the queue of n2.1.5 is full")},
      PeerResponse{from, 3, Status::Ok(), kM1},
      PeerResponse{from, 4, Status::Unavailable("the responder ended"), kM2},
      PeerCallBatch{from, 2},
      PeerCallBatch{from, kMaxMessageBatch},
      PeerForwardRun{from, MessageKind::kDispatch, "orders", "emitters", kM1, 0, {{1, 17}}},
      PeerForwardRun{from, MessageKind::kRequest, kMaxScope, kMaxGroup, kM3, UINT32_MAX,
                     std::vector<PeerForwardRun::Call>(kMaxMessageBatch, {UINT64_MAX, 0})},
      PeerForwardRun{from, MessageKind::kDirect, "", "", kM2, 0, {{2, 5}, {3, 5}}},
      PeerAckRun{from, {1}},
      PeerAckRun{from, std::vector<uint64_t>(kMaxMessageBatch, UINT64_MAX)},
      PeerData{from, 1, {{"", 1}}, {17}, false},
      PeerData{from, UINT64_MAX, {{"Porders", UINT64_MAX}, {"P", 3}}, {UINT64_MAX}, false},
      PeerData{from, 5, {{"Pt", 9}}, std::vector<uint64_t>(kMaxDataBatch, 3), false},
      PeerData{from, 2, {{"Pt", 40}}, {}, true},
      PeerRaft{from, RaftSample()},
      PeerSubscriptionCheck{from, "Zn1.7", false},
      PeerSubscriptionCheck{from, "Zn1.8", true},
      PeerRaft{from, raft::Message{raft::MessageType::kVoteReply, "n1", "n2", 7}},
      PeerNameCall{from, 1, NameCallOp::kWrite, std::string("\x94\x01\x00", 3)},
      PeerNameCall{from, UINT64_MAX, NameCallOp::kConsistentRead, "orders-leader"},
      PeerNameCall{from, 2, NameCallOp::kConsistentRecords, ""},
      PeerNameCall{from, 3, NameCallOp::kConsistentRecords, "store/"},
      PeerNameCall{from, 4, NameCallOp::kConsistentRecord, "store/orders"},
      PeerNameAnswer{from, 1, Status::Ok(), std::nullopt, ""},
      PeerNameAnswer{from, 2, Status::Taken("held"), kM1, std::string(100, 'm')},
      PeerNameAnswer{from, 3, Status::Ok(), std::nullopt, "", {{"a", "1"}, {"b", ""}}},
      PeerNameAnswer{from, 4, Status::NotFound("no record 'x'"), std::nullopt, "", {}},
      PeerRegistryStatus{from, 3, false, {}},
      PeerRegistryStatus{from, UINT64_MAX, true, {}},
      PeerRegistryStatus{
          from,
          4,
          true,
          {{"n1", true, true, 9, "replicate", true}, {"n4", false, false, 0, "", false}}},
  };
}

// Encodings of every sample of every kind, with the decoder that reads them.
enum class Dec { kRequest, kInbound, kPeer };

Status DecodeWith(Dec dec, std::string_view frame) {
  switch (dec) {
    case Dec::kRequest:
      return DecodeClientRequest(frame).status();
    case Dec::kInbound:
      return DecodeClientInbound(frame).status();
    case Dec::kPeer:
      return DecodePeerMessage(frame).status();
  }
  return Status::Internal("unreachable");
}

std::string DecodedText(Dec dec, std::string_view frame) {
  switch (dec) {
    case Dec::kRequest: {
      auto r = DecodeClientRequest(frame);
      return r.ok() ? D(*r) : "error " + r.status().ToString();
    }
    case Dec::kInbound: {
      auto r = DecodeClientInbound(frame);
      return r.ok() ? D(*r) : "error " + r.status().ToString();
    }
    case Dec::kPeer: {
      auto r = DecodePeerMessage(frame);
      return r.ok() ? D(*r) : "error " + r.status().ToString();
    }
  }
  return "";
}

struct Encoded {
  Dec dec;
  std::string text;   // D() of the message
  std::string frame;  // its encoding
};

std::vector<Encoded> AllEncodedSamples() {
  std::vector<Encoded> out;
  for (const ClientRequest& m : ClientRequestSamples())
    out.push_back({Dec::kRequest, D(m), Encode(m)});
  for (const ClientInbound& m : ClientInboundSamples())
    out.push_back({Dec::kInbound, D(m), Encode(m)});
  for (const PeerMessage& m : PeerMessageSamples()) out.push_back({Dec::kPeer, D(m), Encode(m)});
  return out;
}

// ---- round trips -----------------------------------------------------------

TEST(WireTest, ClientRequestRoundTrip) {
  std::vector<ClientRequest> samples = ClientRequestSamples();
  // Every alternative of the variant is covered.
  std::vector<bool> seen(std::variant_size_v<ClientRequest>);
  for (const ClientRequest& m : samples) {
    seen[m.index()] = true;
    std::string frame = Encode(m);
    uint64_t req = 999;
    Result<ClientRequest> back = DecodeClientRequest(frame, &req);
    ASSERT_TRUE(back.ok()) << D(m) << ": " << back.status().ToString();
    EXPECT_EQ(back->index(), m.index()) << D(m);
    EXPECT_EQ(D(*back), D(m));
    EXPECT_EQ(Encode(*back), frame) << D(m);
    // The req id is reported on success too; a heartbeat has none.
    uint64_t want_req = std::visit(
        [](const auto& v) -> uint64_t {
          if constexpr (requires { v.req; }) {
            return v.req;
          } else {
            return 0;
          }
        },
        m);
    EXPECT_EQ(req, want_req) << D(m);
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "alternative " << i;
}

TEST(WireTest, ClientInboundRoundTrip) {
  std::vector<ClientInbound> samples = ClientInboundSamples();
  std::vector<bool> seen(std::variant_size_v<ClientInbound>);
  std::vector<bool> seen_body(std::variant_size_v<ReplyBody>);
  for (const ClientInbound& m : samples) {
    seen[m.index()] = true;
    if (const Reply* r = std::get_if<Reply>(&m)) seen_body[r->body.index()] = true;
    std::string frame = Encode(m);
    Result<ClientInbound> back = DecodeClientInbound(frame);
    ASSERT_TRUE(back.ok()) << D(m) << ": " << back.status().ToString();
    EXPECT_EQ(back->index(), m.index()) << D(m);
    EXPECT_EQ(D(*back), D(m));
    EXPECT_EQ(Encode(*back), frame) << D(m);
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "alternative " << i;
  for (size_t i = 0; i < seen_body.size(); ++i) EXPECT_TRUE(seen_body[i]) << "body tag " << i;
}

TEST(WireTest, MessageBatchEntries) {
  std::string frame;
  AppendBatchEntry(&frame, "hd", false, "p1");
  AppendBatchEntry(&frame, "hd", true, "");
  AppendBatchEntry(&frame, "xyz", false, "q");
  EXPECT_EQ(frame, std::string("\x02\0\0\0hd\x02\0\0\0p1"
                               "\0\0\0\0\0\0\0\0"
                               "\x03\0\0\0xyz\x01\0\0\0q",
                               32));
  std::vector<BatchEntry> entries;
  ASSERT_TRUE(SplitMessageBatch(frame, 3, &entries).ok());
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].header, "hd");
  EXPECT_EQ(entries[0].payload, "p1");
  EXPECT_EQ(entries[1].header, "hd");
  EXPECT_EQ(entries[1].header.data(), entries[0].header.data()) << "a repeat is the same bytes";
  EXPECT_EQ(entries[1].payload, "");
  EXPECT_EQ(entries[2].header, "xyz");
  EXPECT_EQ(entries[2].payload, "q");

  const struct {
    std::string label, frame;
    uint32_t count;
    std::string says;
  } kBad[] = {
      {"fewer entries than counted", frame, 4, "cut off before its header"},
      {"more entries than counted", frame, 2, "after the last"},
      {"no entries", "", 1, "cut off before its header"},
      {"a count of 0", "", 0, "1 to"},
      {"a count over the maximum", frame, kMaxMessageBatch + 1, "1 to"},
      {"the first repeats a header", std::string("\0\0\0\0\0\0\0\0", 8), 1, "repeats a header"},
      {"a header past the end", std::string("\xff\0\0\0hd", 6), 1, "past the frame's end"},
      {"a payload past the end", std::string("\x02\0\0\0hd\x09\0\0\0p", 11), 1,
       "past the frame's end"},
      {"a huge length", std::string("\xff\xff\xff\xff", 4), 1, "past the frame's end"},
      {"cut before the payload length", std::string("\x02\0\0\0hd\x01", 7), 1,
       "before its payload"},
  };
  for (const auto& c : kBad) {
    Status s = SplitMessageBatch(c.frame, c.count, &entries);
    EXPECT_EQ(s.code(), Code::kBadMessage) << c.label;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << c.label << ": " << s.message();
  }
  // Every truncation of a good frame fails.
  for (size_t n = 0; n < frame.size(); ++n) {
    EXPECT_FALSE(SplitMessageBatch(frame.substr(0, n), 3, &entries).ok()) << n << " bytes";
  }
}

// A data batch's payloads frame: sized payloads back to back, exactly as
// many as the header's sessions.
TEST(WireTest, SizedPayloads) {
  std::string frame;
  for (std::string_view p : {"ab", "", "xyz"}) AppendSized(&frame, p);
  EXPECT_EQ(frame, std::string("\x02\0\0\0ab\0\0\0\0\x03\0\0\0xyz", 17));
  std::vector<std::string_view> out;
  ASSERT_TRUE(SplitSized(frame, 3, &out).ok());
  EXPECT_EQ(out, (std::vector<std::string_view>{"ab", "", "xyz"}));
  const struct {
    const char* label;
    std::string frame;
    size_t count;
    const char* says;
  } kBad[] = {
      {"fewer than counted", frame, 4, "past the frame's end"},
      {"more than counted", frame, 2, "after the last"},
      {"a length past the end", std::string("\x09\0\0\0ab", 6), 1, "past the frame's end"},
      {"a cut length", std::string("\x02\0", 2), 1, "past the frame's end"},
      {"bytes and no count", "x", 0, "after the last"},
  };
  for (const auto& c : kBad) {
    Status st = SplitSized(c.frame, c.count, &out);
    EXPECT_EQ(st.code(), Code::kBadMessage) << c.label;
    EXPECT_NE(st.message().find(c.says), std::string::npos) << c.label << ": " << st.message();
  }
  for (size_t n = 0; n < frame.size(); ++n) {
    EXPECT_FALSE(SplitSized(frame.substr(0, n), 3, &out).ok()) << n << " bytes";
  }
}

TEST(WireTest, ReplyStatusRoundTripsCodeAndMessage) {
  Reply r{5, Status::NotFound("no monitor 7"), Empty{}};
  Result<ClientInbound> back = DecodeClientInbound(Encode(ClientInbound{r}));
  ASSERT_TRUE(back.ok());
  const Reply& got = std::get<Reply>(*back);
  EXPECT_EQ(got.req, 5u);
  EXPECT_EQ(got.status.code(), Code::kNotFound);
  EXPECT_EQ(got.status.message(), "no monitor 7");
  EXPECT_TRUE(std::holds_alternative<Empty>(got.body));
}

TEST(WireTest, PeerMessageRoundTrip) {
  std::vector<PeerMessage> samples = PeerMessageSamples();
  std::vector<bool> seen(std::variant_size_v<PeerMessage>);
  bool seen_hello = false, seen_welcome = false, seen_probe = false, seen_probe_reply = false;
  for (const PeerMessage& m : samples) {
    seen[m.index()] = true;
    if (auto* h = std::get_if<PeerHello>(&m)) (h->is_welcome ? seen_welcome : seen_hello) = true;
    if (auto* p = std::get_if<PeerProbe>(&m)) (p->is_reply ? seen_probe_reply : seen_probe) = true;
    std::string frame = Encode(m);
    Result<PeerMessage> back = DecodePeerMessage(frame);
    ASSERT_TRUE(back.ok()) << D(m) << ": " << back.status().ToString();
    EXPECT_EQ(back->index(), m.index()) << D(m);
    EXPECT_EQ(D(*back), D(m));
    EXPECT_EQ(Encode(*back), frame) << D(m);
    EXPECT_EQ(SenderOf(*back), SenderOf(m));
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "alternative " << i;
  EXPECT_TRUE(seen_hello && seen_welcome && seen_probe && seen_probe_reply);
}

TEST(WireTest, DeltaOpsAndSnapshotsKeepEveryField) {
  PeerDelta d{{"n9", 9}, 12, {{DeltaOpKind::kLeave, "sc", "gr", 33}}};
  Result<PeerMessage> back = DecodePeerMessage(Encode(PeerMessage{d}));
  ASSERT_TRUE(back.ok());
  const PeerDelta& got = std::get<PeerDelta>(*back);
  EXPECT_EQ(got.from, (PeerId{"n9", 9}));
  EXPECT_EQ(got.seq, 12u);
  ASSERT_EQ(got.ops.size(), 1u);
  EXPECT_EQ(got.ops[0], (DeltaOp{DeltaOpKind::kLeave, "sc", "gr", 33}));

  PeerSyncReply s{{"n9", 9}, SampleSnapshot()};
  Result<PeerMessage> sback = DecodePeerMessage(Encode(PeerMessage{s}));
  ASSERT_TRUE(sback.ok());
  const PeerSyncReply& sgot = std::get<PeerSyncReply>(*sback);
  EXPECT_EQ(sgot.snapshot.seq, 42u);
  EXPECT_EQ(sgot.snapshot.entries, SampleSnapshot().entries);
}

// The bytes are exactly the arrays documented at the top of wire.h.
TEST(WireTest, LayoutMatchesDocumentation) {
  const V from = A({S("n1"), U(5)});
  const struct {
    std::string frame;
    V want;
  } kCases[] = {
      {Encode(ClientRequest{Hello{1, 1, "c"}}), A({U(1), U(1), U(1), S("c")})},
      {Encode(ClientRequest{Bye{2}}), A({U(2), U(2)})},
      {Encode(ClientRequest{SessionHeartbeat{3, 4}}), A({U(3), U(3), U(4)})},
      {Encode(ClientRequest{Join{5, "s", "g"}}), A({U(10), U(5), S("s"), S("g")})},
      {Encode(ClientRequest{Leave{6, "s", "g"}}), A({U(11), U(6), S("s"), S("g")})},
      {Encode(ClientRequest{Members{7, "s", "g", true}}),
       A({U(12), U(7), S("s"), S("g"), B(true)})},
      {Encode(ClientRequest{WhichGroups{8, "", false}}), A({U(13), U(8), S(""), B(false)})},
      {Encode(ClientRequest{Monitor{9, "s", std::nullopt}}), A({U(14), U(9), S("s"), Nil()})},
      {Encode(ClientRequest{Monitor{9, "s", "g"}}), A({U(14), U(9), S("s"), S("g")})},
      {Encode(ClientRequest{Demonitor{10, 11}}), A({U(15), U(10), U(11)})},
      {Encode(ClientRequest{Nodes{12}}), A({U(16), U(12)})},
      {Encode(ClientRequest{Stats{13}}), A({U(17), U(13)})},
      {Encode(ClientRequest{JoinMany{14, "s", {"g", "h"}}}),
       A({U(18), U(14), S("s"), A({S("g"), S("h")})})},
      {Encode(ClientInbound{Reply{1, Status::NotJoined("x"), Empty{}}}),
       A({U(100), U(1), U(2), S("x"), U(0)})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), WelcomeBody{"n1", 2, 3, 4, 5, 6, 7, 8}}}),
       A({U(100), U(1), U(0), S(""), U(1), S("n1"), U(2), U(3), U(4), U(5), U(6), U(7), U(8)})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), DeliveredBody{kM1}}}),
       A({U(100), U(1), U(0), S(""), U(7), S("n1.5f3a9c.17")})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), ResponseBody{kM1}}}),
       A({U(100), U(1), U(0), S(""), U(8), S("n1.5f3a9c.17")})},
      {Encode(ClientInbound{Message{MessageKind::kRequest, kM1, "", "s", "g", "n2.a.3"}}),
       A({U(103), U(4), S("n1.5f3a9c.17"), S(""), S("s"), S("g"), S("n2.a.3")})},
      {Encode(ClientRequest{Subscribe{2, "t", false}}), A({U(20), U(2), S("t")})},
      {Encode(ClientRequest{Subscribe{2, "t", true}}), A({U(21), U(2), S("t")})},
      {Encode(ClientRequest{Publish{0, "t"}}), A({U(22), U(0), S("t"), U(0)})},
      {Encode(ClientRequest{Broadcast{3, "s", "g"}}), A({U(23), U(3), S("s"), S("g"), U(0)})},
      {Encode(ClientRequest{Publish{0, "t", 7}}), A({U(22), U(0), S("t"), U(7)})},
      {Encode(ClientRequest{Broadcast{3, "s", "g", 2}}), A({U(23), U(3), S("s"), S("g"), U(2)})},
      {Encode(ClientRequest{Dispatch{3, "s", "g"}}), A({U(24), U(3), S("s"), S("g"), U(0)})},
      {Encode(ClientRequest{Dispatch{3, "s", "g", 9}}), A({U(24), U(3), S("s"), S("g"), U(9)})},
      {Encode(ClientInbound{Reply{
           1, Status::Ok(), DispatchedBody{{{Status::Ok(), kM1}, {Status::NoMembers("x"), {}}}}}}),
       A({U(100), U(1), U(0), S(""), U(13), A({S("n1.5f3a9c.17")}),
          Bin(std::string("\x00\x00\xff\xff", 4)),
          A({A({U(uint64_t(Code::kNoMembers)), S("x")})})})},
      // Each member listed once, in the order of its first payload.
      {Encode(ClientInbound{Reply{1, Status::Ok(),
                                  DispatchedBody{{{Status::Ok(), kM3},
                                                  {Status::Ok(), kM1},
                                                  {Status::Unavailable(""), {}},
                                                  {Status::Ok(), kM3}}}}}),
       A({U(100), U(1), U(0), S(""), U(13), A({S(kM3.ToString()), S("n1.5f3a9c.17")}),
          Bin(std::string("\x00\x00\x01\x00\xff\xff\x00\x00", 8)),
          A({A({U(uint64_t(Code::kUnavailable)), S("")})})})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), DispatchedBody{}}}),
       A({U(100), U(1), U(0), S(""), U(13), A({}), Bin(""), A({})})},
      {Encode(ClientRequest{Request{3, "s", "g", 50}}), A({U(25), U(3), S("s"), S("g"), U(50)})},
      {Encode(ClientRequest{Respond{3, "n2.a.3"}}), A({U(26), U(3), S("n2.a.3")})},
      {Encode(ClientRequest{Send{3, kM1}}), A({U(27), U(3), S("n1.5f3a9c.17")})},
      {Encode(ClientRequest{Credit{4, 5, 6}}), A({U(28), U(4), U(5), U(6)})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), MembersBody{{kM1}}}}),
       A({U(100), U(1), U(0), S(""), U(2), A({S("n1.5f3a9c.17")})})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), GroupsBody{{{"s", "g", 2}}}}}),
       A({U(100), U(1), U(0), S(""), U(3), A({A({S("s"), S("g"), U(2)})})})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), MonitorBody{7, {{"s", "g", {kM1}}}}}}),
       A({U(100), U(1), U(0), S(""), U(4), U(7),
          A({A({S("s"), S("g"), A({S("n1.5f3a9c.17")})})})})},
      {Encode(ClientInbound{
           Reply{1, Status::Ok(), NodesBody{{{"n1", 2, "alive", "tcp://h:1", 3, true}}}}}),
       A({U(100), U(1), U(0), S(""), U(5),
          A({A({S("n1"), U(2), S("alive"), S("tcp://h:1"), U(3), B(true)})})})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), StatsBody{{{"c", 9}}}}}),
       A({U(100), U(1), U(0), S(""), U(6), A({A({S("c"), U(9)})})})},
      {Encode(ClientInbound{Event{3, EventKind::kLeave, "s", "g", {kM1}}}),
       A({U(101), U(3), U(2), S("s"), S("g"), A({S("n1.5f3a9c.17")})})},
      {Encode(ClientInbound{Gap{4}}), A({U(102), U(4)})},
      {Encode(ClientInbound{MessageBatch{3}}), A({U(105), U(3)})},
      {Encode(PeerMessage{PeerHeartbeat{{"n1", 5}, 6, "tcp://h:1"}}),
       A({U(200), from, U(6), S("tcp://h:1")})},
      {Encode(PeerMessage{PeerDelta{{"n1", 5}, 7, {{DeltaOpKind::kLeave, "s", "g", 8}}}}),
       A({U(201), from, U(7), A({A({U(2), S("s"), S("g"), U(8)})})})},
      {Encode(PeerMessage{PeerBye{{"n1", 5}}}), A({U(202), from})},
      {Encode(PeerMessage{PeerCallBatch{{"n1", 5}, 3}}), A({U(223), from, U(3)})},
      {Encode(PeerMessage{PeerForwardRun{
           {"n1", 5}, MessageKind::kDispatch, "s", "g", kM1, 0, {{7, 17}, {8, 18}}}}),
       A({U(224), from, U(3), S("s"), S("g"), S("n1.5f3a9c.17"), U(0),
          A({U(7), U(17), U(8), U(18)})})},
      {Encode(PeerMessage{PeerAckRun{{"n1", 5}, {7, 0x0102030405060708}}}),
       A({U(225), from,
          Bin(std::string("\x07\x00\x00\x00\x00\x00\x00\x00\x08\x07\x06\x05\x04\x03\x02\x01",
                          16))})},
      {Encode(PeerMessage{
           PeerHello{{"n1", 5},
                     false,
                     1,
                     {"tcp://c:1", "tcp://p:1", "tcp://d:1"},
                     {"tcp://k:1"},
                     Snapshot{9, {{"s", "g", 10, 2}}},
                     {"n1", "n2"},
                     5}}),
       A({U(210), from, U(1), A({S("tcp://c:1"), S("tcp://p:1"), S("tcp://d:1")}),
          A({S("tcp://k:1")}), A({U(9), A({A({S("s"), S("g"), U(10), U(2)})})}),
          A({S("n1"), S("n2")}), U(5)})},
      {Encode(PeerMessage{
           PeerHello{{"n1", 5}, true, 1, {"tcp://c:1", "tcp://p:1", "tcp://d:1"}, {}, Snapshot{}}}),
       A({U(211), from, U(1), A({S("tcp://c:1"), S("tcp://p:1"), S("tcp://d:1")}), A({}),
          A({U(0), A({})}), A({}), U(0)})},
      {Encode(PeerMessage{PeerNameCall{{"n1", 5}, 3, NameCallOp::kConsistentRead, "x"}}),
       A({U(241), from, U(3), U(2), Bin("x")})},
      {Encode(PeerMessage{
           PeerNameAnswer{{"n1", 5}, 3, Status::Taken("t"), MemberId{"n2", 1, 2}, "m"}}),
       A({U(242), from, U(3), U(12), S("t"), S("n2.1.2"), Bin("m"), A({})})},
      {Encode(
           PeerMessage{PeerNameAnswer{{"n1", 5}, 4, Status::Ok(), std::nullopt, "", {{"k", "v"}}}}),
       A({U(242), from, U(4), U(0), S(""), S(""), Bin(""), A({A({S("k"), Bin("v")})})})},
      {Encode(PeerMessage{PeerNameCall{{"n1", 5}, 3, NameCallOp::kConsistentRecords, "p"}}),
       A({U(241), from, U(3), U(3), Bin("p")})},
      {Encode(PeerMessage{PeerNameCall{{"n1", 5}, 3, NameCallOp::kConsistentRecord, "k"}}),
       A({U(241), from, U(3), U(4), Bin("k")})},
      {Encode(ClientRequest{PutRecord{4, "k", "v", RecordMode::kCreate}}),
       A({U(37), U(4), S("k"), Bin("v"), U(1)})},
      {Encode(ClientRequest{DeleteRecord{4, "k"}}), A({U(38), U(4), S("k")})},
      {Encode(ClientRequest{ListRecords{4, "p", true, false}}),
       A({U(39), U(4), S("p"), B(true), B(false)})},
      {Encode(ClientInbound{Reply{1, Status::Ok(), RecordsBody{{{"k", "v"}}}}}),
       A({U(100), U(1), U(0), S(""), U(12), A({A({S("k"), Bin("v")})})})},
      {Encode(ClientInbound{Reply{1, Status::Exists("e"), Empty{}}}),
       A({U(100), U(1), U(16), S("e"), U(0)})},
      {Encode(ClientRequest{Register{4, "x", "m"}}), A({U(30), U(4), S("x"), Bin("m")})},
      {Encode(ClientRequest{Whereis{4, "x", true}}), A({U(32), U(4), S("x"), B(true)})},
      {Encode(ClientInbound{NameEvent{5, NameEventKind::kUnregistered, {"x", {"n2", 1, 2}, "m"}}}),
       A({U(104), U(5), U(2), S("x"), S("n2.1.2"), Bin("m")})},
      {Encode(PeerMessage{PeerSyncRequest{{"n1", 5}, 11}}), A({U(212), from, U(11)})},
      {Encode(PeerMessage{PeerSyncReply{{"n1", 5}, Snapshot{12, {}}}}),
       A({U(213), from, A({U(12), A({})})})},
      {Encode(PeerMessage{PeerProbe{{"n1", 5}, 13, false}}), A({U(214), from, U(13)})},
      {Encode(PeerMessage{PeerProbe{{"n1", 5}, 14, true}}), A({U(215), from, U(14)})},
  };
  for (const auto& c : kCases) EXPECT_EQ(Hex(c.frame), Hex(Pack(c.want)));
}

// A newer peer may append fields: extra trailing elements are accepted.
TEST(WireTest, ExtraTrailingElementsAreAccepted) {
  for (const Encoded& e : AllEncodedSamples()) {
    V v = Unpacked(e.frame);
    v.a.push_back(S("a field from the future"));
    v.a.push_back(A({U(1), U(2)}));
    EXPECT_EQ(DecodedText(e.dec, Pack(v)), e.text);
  }
}

// ---- bad input -------------------------------------------------------------

void ExpectBad(Dec dec, std::string_view frame, const std::string& label,
               const std::string& want_in_message = "") {
  Status st = DecodeWith(dec, frame);
  EXPECT_FALSE(st.ok()) << label << ": decoded as " << DecodedText(dec, frame);
  if (st.ok()) return;
  EXPECT_EQ(st.code(), Code::kBadMessage) << label << ": " << st.ToString();
  EXPECT_FALSE(st.message().empty()) << label;
  if (!want_in_message.empty()) {
    EXPECT_NE(st.message().find(want_in_message), std::string::npos)
        << label << ": '" << st.message() << "' does not mention '" << want_in_message << "'";
  }
}

constexpr Dec kAllDecoders[] = {Dec::kRequest, Dec::kInbound, Dec::kPeer};

TEST(WireBadInputTest, EmptyFrame) {
  for (Dec dec : kAllDecoders) ExpectBad(dec, "", "empty", "empty frame");
  uint64_t req = 5;
  EXPECT_FALSE(DecodeClientRequest("", &req).ok());
  EXPECT_EQ(req, 0u);
}

TEST(WireBadInputTest, FixedGarbage) {
  const std::string kGarbage[] = {
      std::string("\xc1", 1),                  // never used in msgpack
      std::string("\xc1\x92\x02\x05", 4),      // a valid Bye after a bad byte
      "hello, broker",                         // a positive fixint, then junk
      std::string("\xff\xff\xff\xff", 4),      // negative fixints
      std::string("\x00", 1),                  // a bare zero
      std::string("\xd4\x01\x02", 3),          // fixext: ext is refused
      std::string("\x93\xc1\xc1\xc1", 4),      // an array of invalid bytes
      std::string("\xdd", 1),                  // array32 header cut short
      std::string("\xdb\xff\xff\xff\xff", 5),  // str32 claiming 4 GiB
      std::string("\xc6\x7f\xff\xff\xff", 5),  // bin32 claiming 2 GiB
  };
  for (Dec dec : kAllDecoders) {
    for (const std::string& g : kGarbage) ExpectBad(dec, g, "garbage");
  }
}

// Random bytes, and valid messages with random bytes changed: never a crash,
// and every rejection is a BadMessage.
TEST(WireBadInputTest, RandomGarbageNeverCrashes) {
  std::mt19937_64 rng(20240611);
  std::vector<Encoded> samples = AllEncodedSamples();
  int rejected = 0, total = 0;
  auto check = [&](Dec dec, const std::string& frame) {
    ++total;
    Status st = DecodeWith(dec, frame);
    if (!st.ok()) {
      ++rejected;
      EXPECT_EQ(st.code(), Code::kBadMessage) << st.ToString();
    }
  };
  for (int i = 0; i < 3000; ++i) {
    std::string frame(1 + rng() % 96, '\0');
    for (char& c : frame) c = static_cast<char>(rng());
    for (Dec dec : kAllDecoders) check(dec, frame);
  }
  for (int i = 0; i < 6000; ++i) {
    const Encoded& e = samples[rng() % samples.size()];
    std::string frame = e.frame;
    int flips = 1 + int(rng() % 3);
    for (int f = 0; f < flips; ++f) frame[rng() % frame.size()] = static_cast<char>(rng());
    check(e.dec, frame);
  }
  EXPECT_GT(rejected, total / 2);  // most mutations break something
}

TEST(WireBadInputTest, EveryPrefixOfAValidMessageFails) {
  for (const Encoded& e : AllEncodedSamples()) {
    for (size_t len = 0; len < e.frame.size(); ++len) {
      ExpectBad(e.dec, std::string_view(e.frame).substr(0, len),
                e.text + " cut to " + std::to_string(len) + " bytes");
    }
    EXPECT_TRUE(DecodeWith(e.dec, e.frame).ok()) << e.text;
  }
}

TEST(WireBadInputTest, TrailingBytes) {
  for (const Encoded& e : AllEncodedSamples()) {
    ExpectBad(e.dec, e.frame + std::string(1, '\0'), e.text + " + NUL", "trailing bytes");
    ExpectBad(e.dec, e.frame + "x", e.text + " + x", "trailing bytes");
    ExpectBad(e.dec, e.frame + e.frame, e.text + " twice", "trailing bytes");
    ExpectBad(e.dec, e.frame + "\xc1", e.text + " + invalid byte");
  }
}

TEST(WireBadInputTest, NotAnArray) {
  const V kValues[] = {U(10), I(-1),   S("join"), Bin("\x92\x02\x05"),
                       Nil(), B(true), F(2.5),    EmptyMap()};
  for (Dec dec : kAllDecoders) {
    for (const V& v : kValues) ExpectBad(dec, Pack(v), "non-array", "not an array");
  }
  // A map with content is refused by the unpacker's limits.
  std::string map1("\x81\x01\x02", 3);
  for (Dec dec : kAllDecoders) ExpectBad(dec, map1, "map {1: 2}");
}

TEST(WireBadInputTest, EmptyArrayOrTypeOfWrongKind) {
  for (Dec dec : kAllDecoders) {
    ExpectBad(dec, Pack(A({})), "[]", "missing field 'type'");
    ExpectBad(dec, Pack(A({S("10"), U(1)})), "string type", "'type'");
    ExpectBad(dec, Pack(A({I(-10), U(1)})), "negative type", "'type'");
    ExpectBad(dec, Pack(A({F(10.0), U(1)})), "float type", "'type'");
  }
}

TEST(WireBadInputTest, UnknownTypeNumbers) {
  // Each message is shaped like a valid message of the type that the number
  // would alias when truncated to 16 bits, so a decoder that narrows the type
  // before checking it would accept it.
  const V from = A({S("n1"), U(1)});
  const struct {
    Dec dec;
    V msg;
  } kCases[] = {
      {Dec::kRequest, A({U(0), U(7)})},
      {Dec::kRequest, A({U(4), U(7)})},
      {Dec::kRequest, A({U(9), U(7)})},
      {Dec::kRequest, A({U(19), U(7)})},
      {Dec::kRequest, A({U(100), U(7), U(0), S(""), U(0)})},  // a reply is not a request
      {Dec::kRequest, A({U(200), U(7)})},
      {Dec::kRequest, A({U(65535), U(7)})},
      {Dec::kRequest, A({U(65536 + 10), U(7), S("s"), S("g")})},  // would be Join
      {Dec::kRequest, A({U((1ull << 32) + 2), U(7)})},            // would be Bye
      {Dec::kRequest, A({U(UINT64_MAX), U(7)})},
      {Dec::kInbound, A({U(0), U(7)})},
      {Dec::kInbound, A({U(1), U(7), U(1), S("c")})},  // a request is not a reply
      {Dec::kInbound, A({U(99), U(7)})},
      {Dec::kInbound, A({U(106), U(7)})},
      {Dec::kInbound, A({U(201), from, U(1), A({})})},
      {Dec::kInbound, A({U(65536 + 102), U(7)})},  // would be Gap
      {Dec::kInbound, A({U(UINT64_MAX), U(7)})},
      {Dec::kPeer, A({U(0), from})},
      {Dec::kPeer, A({U(3), from})},
      {Dec::kPeer, A({U(102), U(1)})},
      {Dec::kPeer, A({U(199), from})},
      {Dec::kPeer, A({U(203), from})},
      {Dec::kPeer, A({U(209), from})},
      {Dec::kPeer, A({U(218), from, U(1)})},
      {Dec::kPeer, A({U(65536 + 214), from, U(9)})},   // would be Probe
      {Dec::kPeer, A({U((1ull << 48) + 202), from})},  // would be Bye
      {Dec::kPeer, A({U(UINT64_MAX), from})},
  };
  for (const auto& c : kCases) {
    std::string frame = Pack(c.msg);
    ExpectBad(c.dec, frame, "type " + std::to_string(c.msg.a[0].u), "unknown");
  }
}

// Every field of every sample, replaced by a value of each wrong type.
TEST(WireBadInputTest, WrongFieldTypeInEachPosition) {
  int checked = 0;
  for (const Encoded& e : AllEncodedSamples()) {
    const V original = Unpacked(e.frame);
    std::vector<std::vector<size_t>> paths;
    std::vector<size_t> prefix;
    CollectPaths(original, prefix, &paths);
    for (const std::vector<size_t>& path : paths) {
      V probe = original;
      for (const V& wrong : WrongTypesFor(At(probe, path))) {
        // The places where a second type is valid: Monitor's group may be
        // nil (the whole scope), and a DispatchMany's outcome is a member's
        // index or a failure's array.
        bool monitor_group = e.dec == Dec::kRequest &&
                             original.a[0].u == uint64_t(Type::kMonitor) &&
                             path == std::vector<size_t>{3};
        if (monitor_group && wrong.k == V::K::kNil) continue;
        bool dispatch_outcome = e.dec == Dec::kInbound &&
                                original.a[0].u == uint64_t(Type::kReply) &&
                                original.a[4].u == 13 && path.size() == 2 && path[0] == 6;
        if (dispatch_outcome && wrong.k == V::K::kUint) continue;
        V bad = original;
        At(bad, path) = wrong;
        ExpectBad(e.dec, Pack(bad),
                  e.text + " with " + PathString(path) + " of msgpack kind " +
                      std::to_string(int(wrong.k)));
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

// Every required top-level field, removed from the end: "is missing field".
TEST(WireBadInputTest, MissingFields) {
  for (const Encoded& e : AllEncodedSamples()) {
    V v = Unpacked(e.frame);
    while (v.a.size() > 1) {
      v.a.pop_back();
      // A name answer without its records is an older peer's, and valid.
      if (e.dec == Dec::kPeer && v.a[0].u == uint64_t(Type::kPeerNameAnswer) && v.a.size() == 7) {
        EXPECT_TRUE(DecodeWith(e.dec, Pack(v)).ok()) << e.text;
        continue;
      }
      ExpectBad(e.dec, Pack(v), e.text + " with " + std::to_string(v.a.size()) + " fields",
                "missing field");
    }
  }
  // Inside nested arrays too.
  const V from1 = A({S("n1")});
  ExpectBad(Dec::kPeer, Pack(A({U(202), from1})), "from without incarnation",
            "missing field 'incarnation'");
  ExpectBad(Dec::kPeer, Pack(A({U(201), A({S("n1"), U(1)}), U(1), A({A({U(1), S("s"), S("g")})})})),
            "op without session", "missing field 'session'");
  ExpectBad(Dec::kPeer,
            Pack(A({U(213), A({S("n1"), U(1)}), A({U(1), A({A({S("s"), S("g"), U(1)})})})})),
            "entry without count", "missing field 'count'");
  ExpectBad(Dec::kPeer,
            Pack(A({U(210), A({S("n1"), U(1)}), U(1), A({S("tcp://a:1"), S("tcp://b:1")}), A({}),
                    A({U(0), A({})})})),
            "two endpoints", "missing field 'data'");
  // A client's batch holds 1 to kMaxMessageBatch messages.
  ExpectBad(Dec::kInbound, Pack(A({U(105), U(0)})), "an empty batch", "1 to");
  ExpectBad(Dec::kInbound, Pack(A({U(105), U(kMaxMessageBatch + 1)})), "too big a batch", "1 to");
  // A publish or broadcast packs up to kMaxCastPayloads payloads.
  ExpectBad(Dec::kRequest, Pack(A({U(22), U(1), S("t"), U(kMaxCastPayloads + 1)})),
            "a publish of too many", "0 to");
  ExpectBad(Dec::kRequest, Pack(A({U(23), U(1), S("s"), S("g"), U(kMaxCastPayloads + 1)})),
            "a broadcast of too many", "0 to");
  ExpectBad(Dec::kRequest, Pack(A({U(22), U(1), S("t"), S("x")})), "a count that is text", "count");
  ExpectBad(Dec::kRequest, Pack(A({U(24), U(1), S("s"), S("g"), U(kMaxCastPayloads + 1)})),
            "a dispatch of too many", "0 to");
  ExpectBad(Dec::kRequest, Pack(A({U(24), U(1), S("s"), S("g")})), "a dispatch without a count",
            "missing field 'count'");
  // A DispatchMany's outcomes: a listed member's index (2 bytes) for each
  // payload, or 0xFFFF and a failure's [code, message] in the list after.
  auto dispatched = [](V members, std::string indices, V failures) {
    return Pack(A({U(100), U(1), U(0), S(""), U(13), members, Bin(indices), failures}));
  };
  const V one = A({S("n1.5f3a9c.17")});
  const std::string first("\x00\x00", 2), second("\x01\x00", 2), failed("\xff\xff", 2);
  ExpectBad(Dec::kInbound, dispatched(one, second, A({})), "an index past the members",
            "names member 1 of 1");
  ExpectBad(Dec::kInbound, dispatched(A({}), first, A({})), "an index and no members",
            "names member 0 of 0");
  ExpectBad(Dec::kInbound, dispatched(one, failed, A({A({U(0), S("")})})), "a failure with code ok",
            "not a failure's");
  ExpectBad(Dec::kInbound, dispatched(one, failed, A({A({U(uint64_t(kLastCode) + 1), S("")})})),
            "an unknown code", "not a failure's");
  ExpectBad(Dec::kInbound, dispatched(one, failed, A({A({U(uint64_t(Code::kNoMembers))})})),
            "a failure without a message", "missing field 'message'");
  ExpectBad(
      Dec::kInbound,
      dispatched(one, failed, A({A({U(uint64_t(Code::kNoMembers)), S("x"), S("n1.5f3a9c.17")})})),
      "a failure that names a member", "unexpected trailing");
  ExpectBad(Dec::kInbound, dispatched(one, failed, A({})), "a failure not in the list",
            "fewer failures");
  ExpectBad(Dec::kInbound, dispatched(one, first, A({A({U(uint64_t(Code::kNoMembers)), S("x")})})),
            "a failure no outcome names", "more failures");
  ExpectBad(Dec::kInbound, dispatched(A({S("n1")}), first, A({})), "a malformed member",
            "malformed member id");
  ExpectBad(Dec::kInbound, dispatched(one, std::string(3, '\0'), A({})), "half an index",
            "not 2 per outcome");
  ExpectBad(Dec::kInbound, Pack(A({U(100), U(1), U(0), S(""), U(13), one, A({U(0)}), A({})})),
            "indices as a list", "'outcomes' is not binary");
  ExpectBad(Dec::kInbound, Pack(A({U(100), U(1), U(0), S(""), U(13), one})),
            "members without outcomes", "missing field 'outcomes'");
  ExpectBad(Dec::kInbound, Pack(A({U(100), U(1), U(0), S(""), U(13), one, Bin(first)})),
            "outcomes without failures", "missing field 'failures'");
  {
    ExpectBad(Dec::kInbound, dispatched(one, std::string(2 * (kMaxCastPayloads + 1), '\0'), A({})),
              "too many outcomes", "longer than");
    std::vector<V> members(kMaxCastPayloads + 1, S("n1.5f3a9c.17"));
    ExpectBad(Dec::kInbound, dispatched(A(members), first, A({})), "too many members", "more than");
  }
  // A call batch holds 2 to kMaxMessageBatch calls.
  ExpectBad(Dec::kPeer, Pack(A({U(223), A({S("n1"), U(1)}), U(1)})), "a call batch of one", "2 to");
  ExpectBad(Dec::kPeer, Pack(A({U(223), A({S("n1"), U(1)}), U(kMaxMessageBatch + 1)})),
            "too big a call batch", "2 to");
  // A forward run holds 1 to kMaxMessageBatch [id, session] pairs, of a
  // forward's kind, with a forward's scope and group.
  auto run = [](V kind, V scope, V calls) {
    return Pack(
        A({U(224), A({S("n1"), U(1)}), kind, scope, S("g"), S("n1.5f3a9c.17"), U(0), calls}));
  };
  ExpectBad(Dec::kPeer, run(U(3), S("s"), A({})), "an empty forward run", "1 to");
  ExpectBad(Dec::kPeer, run(U(3), S("s"), A({U(1)})), "a forward run's id without its session",
            "pairs");
  ExpectBad(Dec::kPeer, run(U(3), S("s"), A(std::vector<V>(2 * kMaxMessageBatch + 2, U(1)))),
            "too long a forward run", "1 to");
  ExpectBad(Dec::kPeer, run(U(3), S("s"), A({U(1), S("x")})), "a forward run's session as text",
            "'session' is not an unsigned integer");
  ExpectBad(Dec::kPeer, run(U(1), S("s"), A({U(1), U(2)})), "a forward run of publishes",
            "has kind 1");
  ExpectBad(Dec::kPeer, run(U(3), S(""), A({U(1), U(2)})), "a dispatch run with no scope",
            "field 'scope'");
  ExpectBad(Dec::kPeer, Pack(A({U(225), A({S("n1"), U(1)}), Bin("")})), "an empty ack run", "1 to");
  ExpectBad(
      Dec::kPeer,
      Pack(A({U(225), A({S("n1"), U(1)}), Bin(std::string(8 * (kMaxMessageBatch + 1), 'x'))})),
      "too long an ack run", "longer than");
  ExpectBad(Dec::kPeer, Pack(A({U(225), A({S("n1"), U(1)}), Bin(std::string(12, 'x'))})),
            "an ack run with part of an id", "1 to");
  ExpectBad(Dec::kPeer, Pack(A({U(225), A({S("n1"), U(1)}), A({U(1)})})),
            "an ack run's ids as a list", "'ids' is not binary");
  EXPECT_TRUE(BatchesAsCall(PeerForwardRun{}));
  EXPECT_TRUE(BatchesAsCall(PeerAckRun{}));
  EXPECT_TRUE(CarriesPayload(PeerMessage{PeerForwardRun{}}));
  EXPECT_FALSE(CarriesPayload(PeerMessage{PeerAckRun{}}));
  EXPECT_TRUE(BatchesAsCall(PeerForwardAck{}));
  EXPECT_TRUE(BatchesAsCall(PeerForward{}));
  EXPECT_TRUE(BatchesAsCall(PeerResponse{}));
  EXPECT_FALSE(BatchesAsCall(PeerCallBatch{}));
  EXPECT_FALSE(BatchesAsCall(PeerHello{}));
  EXPECT_FALSE(BatchesAsCall(PeerRaft{}));
  // A data batch carries 1 to kMaxDataBatch payloads.
  const V data_streams = A({A({S(""), U(1)})});
  ExpectBad(Dec::kPeer, Pack(A({U(230), A({S("n1"), U(1)}), U(1), data_streams, A({})})),
            "data with no session", "sessions");
  ExpectBad(Dec::kPeer,
            Pack(A({U(230), A({S("n1"), U(1)}), U(1), data_streams,
                    A(std::vector<V>(kMaxDataBatch + 1, U(1)))})),
            "data with too many sessions", "sessions");
  ExpectBad(Dec::kInbound,
            Pack(A({U(100), U(1), U(0), S(""), U(5), A({A({S("n1"), U(1), S("alive")})})})),
            "node info cut", "missing field 'calls_endpoint'");
}

struct BadCase {
  std::string label;
  Dec dec;
  V msg;
  std::string want_in_message;  // part of the error message
};

void RunBadCases(const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) ExpectBad(c.dec, Pack(c.msg), c.label, c.want_in_message);
}

// Builders of valid messages with one part given by the caller.
const V kFrom = A({S("n1"), U(1)});
V JoinV(V scope, V group) {
  return A({U(10), U(7), std::move(scope), std::move(group)});
}
V LeaveV(V scope, V group) {
  return A({U(11), U(7), std::move(scope), std::move(group)});
}
V MembersV(V scope, V group) {
  return A({U(12), U(7), std::move(scope), std::move(group), B(false)});
}
V WhichGroupsV(V scope) {
  return A({U(13), U(7), std::move(scope), B(false)});
}
V MonitorV(V scope, V group) {
  return A({U(14), U(7), std::move(scope), std::move(group)});
}
V HelloV(V name) {
  return A({U(1), U(7), U(1), std::move(name)});
}
V ReplyV(uint64_t code, V message, uint64_t tag, std::vector<V> body) {
  std::vector<V> items = {U(100), U(7), U(code), std::move(message), U(tag)};
  for (V& b : body) items.push_back(std::move(b));
  return A(std::move(items));
}
V WelcomeV(V node, V heartbeat_ms = U(250)) {
  return ReplyV(0, S(""), 1,
                {std::move(node), U(1), U(2), U(3), std::move(heartbeat_ms), U(5000), U(1), U(2)});
}
V MembersBodyV(std::vector<V> members) {
  return ReplyV(0, S(""), 2, {A(std::move(members))});
}
V GroupsBodyV(V scope, V group) {
  return ReplyV(0, S(""), 3, {A({A({std::move(scope), std::move(group), U(1)})})});
}
V MonitorBodyV(V scope, V group, std::vector<V> members) {
  return ReplyV(0, S(""), 4,
                {U(9), A({A({std::move(scope), std::move(group), A(std::move(members))})})});
}
V NodesBodyV(V name, V state, V ep) {
  return ReplyV(0, S(""), 5,
                {A({A({std::move(name), U(1), std::move(state), std::move(ep), U(0), B(false)})})});
}
V StatsBodyV(V name) {
  return ReplyV(0, S(""), 6, {A({A({std::move(name), U(1)})})});
}
V EventV(uint64_t kind, V scope, V group, std::vector<V> members) {
  return A({U(101), U(3), U(kind), std::move(scope), std::move(group), A(std::move(members))});
}
V FromV(V node) {
  return A({std::move(node), U(1)});
}
V PeerHeartbeatV(V from, V ep) {
  return A({U(200), std::move(from), U(3), std::move(ep)});
}
V DeltaV(uint64_t op, V scope, V group) {
  return A({U(201), kFrom, U(2), A({A({U(op), std::move(scope), std::move(group), U(17)})})});
}
V SnapshotV(std::vector<V> entries) {
  return A({U(5), A(std::move(entries))});
}
V EntryV(V scope, V group, uint64_t count) {
  return A({std::move(scope), std::move(group), U(17), U(count)});
}
V PeerHelloV(uint64_t type, V control_ep, std::vector<V> known, V snapshot, V version = U(1)) {
  return A({U(type), kFrom, std::move(version),
            A({S("tcp://a:1"), std::move(control_ep), S("tcp://c:1")}), A(std::move(known)),
            std::move(snapshot), A({}), U(0)});
}
V SyncReplyV(V snapshot) {
  return A({U(213), kFrom, std::move(snapshot)});
}

TEST(WireBadInputTest, BuildersMakeValidMessages) {
  // The builders used below are valid with ordinary arguments, so each bad
  // case fails for the one thing it changes.
  const struct {
    Dec dec;
    V msg;
  } kCases[] = {
      {Dec::kRequest, JoinV(S("s"), S("g"))},
      {Dec::kRequest, LeaveV(S("s"), S("g"))},
      {Dec::kRequest, MembersV(S("s"), S("g"))},
      {Dec::kRequest, WhichGroupsV(S(""))},
      {Dec::kRequest, MonitorV(S("s"), Nil())},
      {Dec::kRequest, HelloV(S("c"))},
      {Dec::kInbound, WelcomeV(S("n1"))},
      {Dec::kInbound, MembersBodyV({S("n1.5f.17")})},
      {Dec::kInbound, GroupsBodyV(S("s"), S("g"))},
      {Dec::kInbound, MonitorBodyV(S("s"), S("g"), {S("n1.5f.17")})},
      {Dec::kInbound, NodesBodyV(S("n1"), S("alive"), S("tcp://a:1"))},
      {Dec::kInbound, StatsBodyV(S("c"))},
      {Dec::kInbound, EventV(1, S("s"), S("g"), {S("n1.5f.17")})},
      {Dec::kPeer, PeerHeartbeatV(FromV(S("n1")), S("tcp://a:1"))},
      {Dec::kPeer, DeltaV(2, S("s"), S("g"))},
      {Dec::kPeer,
       PeerHelloV(210, S("tcp://b:1"), {S("tcp://k:1")}, SnapshotV({EntryV(S("s"), S("g"), 1)}))},
      {Dec::kPeer, PeerHelloV(211, S("tcp://b:1"), {}, SnapshotV({}))},
      {Dec::kPeer, SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 2)}))},
  };
  for (const auto& c : kCases) {
    Status st = DecodeWith(c.dec, Pack(c.msg));
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
}

TEST(WireBadInputTest, OverLengthStrings) {
  const std::string s256(256, 's');
  const std::string node65(kMaxNodeNameBytes + 1, 'n');
  const std::string ep256 = "tcp://" + std::string(250, 'h');
  const std::vector<BadCase> kCases = {
      {"join scope", Dec::kRequest, JoinV(S(s256), S("g")), "scope"},
      {"join group", Dec::kRequest, JoinV(S("s"), S(s256)), "group"},
      {"leave scope", Dec::kRequest, LeaveV(S(s256), S("g")), "scope"},
      {"members group", Dec::kRequest, MembersV(S("s"), S(s256)), "group"},
      {"which_groups scope", Dec::kRequest, WhichGroupsV(S(s256)), "scope"},
      {"monitor scope", Dec::kRequest, MonitorV(S(s256), Nil()), "scope"},
      {"monitor group", Dec::kRequest, MonitorV(S("s"), S(s256)), "group"},
      {"hello client_name", Dec::kRequest, HelloV(S(s256)), "client_name"},
      {"a 1 MiB scope", Dec::kRequest, JoinV(S(std::string(1 << 20, 's')), S("g")), "scope"},
      {"reply message", Dec::kInbound, ReplyV(1, S(std::string((1 << 16) + 1, 'm')), 0, {}),
       "message"},
      {"welcome node", Dec::kInbound, WelcomeV(S(node65)), "node"},
      {"member id", Dec::kInbound, MembersBodyV({S(std::string(200, '1'))}), "member"},
      {"groups scope", Dec::kInbound, GroupsBodyV(S(s256), S("g")), "scope"},
      {"monitor body group", Dec::kInbound, MonitorBodyV(S("s"), S(s256), {}), "group"},
      {"node name", Dec::kInbound, NodesBodyV(S(node65), S("alive"), S("tcp://a:1")), "name"},
      {"node state", Dec::kInbound, NodesBodyV(S("n1"), S(std::string(17, 'a')), S("tcp://a:1")),
       "state"},
      {"node calls_endpoint", Dec::kInbound, NodesBodyV(S("n1"), S("alive"), S(ep256)),
       "calls_endpoint"},
      {"stats name", Dec::kInbound, StatsBodyV(S(s256)), "name"},
      {"event scope", Dec::kInbound, EventV(1, S(s256), S("g"), {}), "scope"},
      {"event group", Dec::kInbound, EventV(2, S("s"), S(s256), {}), "group"},
      {"from node", Dec::kPeer, PeerHeartbeatV(FromV(S(node65)), S("tcp://a:1")), "node"},
      {"heartbeat calls_endpoint", Dec::kPeer, PeerHeartbeatV(kFrom, S(ep256)), "calls_endpoint"},
      {"delta scope", Dec::kPeer, DeltaV(1, S(s256), S("g")), "scope"},
      {"delta group", Dec::kPeer, DeltaV(1, S("s"), S(s256)), "group"},
      {"hello control endpoint", Dec::kPeer, PeerHelloV(210, S(ep256), {}, SnapshotV({})),
       "control"},
      {"hello known peer", Dec::kPeer,
       PeerHelloV(210, S("tcp://b:1"), {S("tcp://k:1"), S(ep256)}, SnapshotV({})), "peer"},
      {"snapshot scope", Dec::kPeer, SyncReplyV(SnapshotV({EntryV(S(s256), S("g"), 1)})), "scope"},
      {"snapshot group", Dec::kPeer,
       PeerHelloV(211, S("tcp://b:1"), {}, SnapshotV({EntryV(S("s"), S(s256), 1)})), "group"},
  };
  RunBadCases(kCases);
}

TEST(WireBadInputTest, InvalidNames) {
  const std::vector<BadCase> kCases = {
      {"join empty scope", Dec::kRequest, JoinV(S(""), S("g")), "scope"},
      {"join empty group", Dec::kRequest, JoinV(S("s"), S("")), "group"},
      {"join control scope", Dec::kRequest, JoinV(S("a\nb"), S("g")), "scope"},
      {"join control group", Dec::kRequest, JoinV(S("s"), S("g\x01")), "group"},
      {"join NUL group", Dec::kRequest, JoinV(S("s"), S(std::string("g\0h", 3))), "group"},
      {"leave empty scope", Dec::kRequest, LeaveV(S(""), S("g")), "scope"},
      {"leave DEL group", Dec::kRequest, LeaveV(S("s"), S("\x7f")), "group"},
      {"members empty group", Dec::kRequest, MembersV(S("s"), S("")), "group"},
      {"members control scope", Dec::kRequest, MembersV(S("\t"), S("g")), "scope"},
      {"which_groups control scope", Dec::kRequest, WhichGroupsV(S("s\r")), "scope"},
      {"monitor empty scope", Dec::kRequest, MonitorV(S(""), Nil()), "scope"},
      {"monitor empty group (not nil)", Dec::kRequest, MonitorV(S("s"), S("")), "group"},
      {"monitor control group", Dec::kRequest, MonitorV(S("s"), S("\x1b")), "group"},
      {"welcome node with a dot", Dec::kInbound, WelcomeV(S("n.1")), "node"},
      {"welcome empty node", Dec::kInbound, WelcomeV(S("")), "node"},
      {"groups empty scope", Dec::kInbound, GroupsBodyV(S(""), S("g")), "scope"},
      {"groups control group", Dec::kInbound, GroupsBodyV(S("s"), S("\n")), "group"},
      {"monitor body control scope", Dec::kInbound, MonitorBodyV(S("\x02"), S("g"), {}), "scope"},
      {"monitor body empty group", Dec::kInbound, MonitorBodyV(S("s"), S(""), {}), "group"},
      {"node name with a space", Dec::kInbound, NodesBodyV(S("n 1"), S("alive"), S("")), "name"},
      {"event empty scope", Dec::kInbound, EventV(1, S(""), S("g"), {}), "scope"},
      {"event control group", Dec::kInbound, EventV(2, S("s"), S("g\n"), {}), "group"},
      {"from empty node", Dec::kPeer, PeerHeartbeatV(FromV(S("")), S("tcp://a:1")), "node"},
      {"from node with a slash", Dec::kPeer, PeerHeartbeatV(FromV(S("n/1")), S("tcp://a:1")),
       "node"},
      {"heartbeat http endpoint", Dec::kPeer, PeerHeartbeatV(kFrom, S("http://a:1")),
       "calls_endpoint"},
      {"heartbeat empty endpoint", Dec::kPeer, PeerHeartbeatV(kFrom, S("")), "calls_endpoint"},
      {"delta empty scope", Dec::kPeer, DeltaV(1, S(""), S("g")), "scope"},
      {"delta control group", Dec::kPeer, DeltaV(2, S("s"), S("\x7f")), "group"},
      {"hello bad control endpoint", Dec::kPeer, PeerHelloV(210, S("tcp://"), {}, SnapshotV({})),
       "control"},
      {"hello bad known peer", Dec::kPeer,
       PeerHelloV(211, S("tcp://b:1"), {S("tcp://k:1"), S("udp://k:2")}, SnapshotV({})), "peer"},
      {"snapshot empty scope", Dec::kPeer, SyncReplyV(SnapshotV({EntryV(S(""), S("g"), 1)})),
       "scope"},
      {"snapshot control group", Dec::kPeer,
       SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 1), EntryV(S("s"), S("\x03"), 1)})), "group"},
  };
  RunBadCases(kCases);
}

TEST(WireBadInputTest, InvalidMemberIdInAList) {
  const V good = S("n1.5f3a9c.17");
  const std::vector<BadCase> kCases = {
      {"members: missing parts", Dec::kInbound, MembersBodyV({good, S("n1.5f")}),
       "malformed member id"},
      {"members: extra dot", Dec::kInbound, MembersBodyV({S("n1.5f.17."), good}),
       "malformed member id"},
      {"members: non-hex incarnation", Dec::kInbound, MembersBodyV({S("n1.xyz.17")}),
       "malformed member id"},
      {"members: trailing junk", Dec::kInbound, MembersBodyV({good, good, S("n1.5f.17z")}),
       "malformed member id"},
      {"members: bad node", Dec::kInbound, MembersBodyV({S("n:1.5f.17")}), "malformed member id"},
      {"members: empty", Dec::kInbound, MembersBodyV({S("")}), "malformed member id"},
      {"event: empty session", Dec::kInbound, EventV(1, S("s"), S("g"), {good, S("n1.5f.")}),
       "malformed member id"},
      {"monitor body: decimal letters", Dec::kInbound,
       MonitorBodyV(S("s"), S("g"), {S("n1.5f.1e3")}), "malformed member id"},
  };
  RunBadCases(kCases);
}

TEST(WireBadInputTest, OutOfRangeValues) {
  const std::vector<BadCase> kCases = {
      {"hello version over 32 bits", Dec::kRequest, A({U(1), U(7), U(1ull << 32), S("c")}),
       "version"},
      {"reply code past the last", Dec::kInbound,
       ReplyV(static_cast<uint64_t>(kLastCode) + 1, S(""), 0, {}), "code"},
      {"reply code 255", Dec::kInbound, ReplyV(255, S(""), 0, {}), "code"},
      {"reply body tag 200", Dec::kInbound, ReplyV(0, S(""), 200, {}), "body tag"},
      {"reply body tag huge", Dec::kInbound, ReplyV(0, S(""), UINT64_MAX, {}), "body tag"},
      {"welcome heartbeat over 32 bits", Dec::kInbound, WelcomeV(S("n1"), U(1ull << 32)),
       "heartbeat_ms"},
      {"event kind 0", Dec::kInbound, EventV(0, S("s"), S("g"), {}), "kind"},
      {"event kind 3", Dec::kInbound, EventV(3, S("s"), S("g"), {}), "kind"},
      {"delta op 0", Dec::kPeer, DeltaV(0, S("s"), S("g")), "op"},
      {"delta op 3", Dec::kPeer, DeltaV(3, S("s"), S("g")), "op"},
      {"hello version over 32 bits", Dec::kPeer,
       PeerHelloV(210, S("tcp://b:1"), {}, SnapshotV({}), U(1ull << 32)), "version"},
      {"snapshot count over 32 bits", Dec::kPeer,
       SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 1ull << 32)})), "count"},
  };
  RunBadCases(kCases);
}

TEST(WireBadInputTest, SnapshotEntryWithCountZero) {
  const std::vector<BadCase> kCases = {
      {"sync reply, only entry", Dec::kPeer, SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 0)})),
       "count 0"},
      {"sync reply, second entry", Dec::kPeer,
       SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 3), EntryV(S("s"), S("h"), 0)})), "count 0"},
      {"hello", Dec::kPeer,
       PeerHelloV(210, S("tcp://b:1"), {}, SnapshotV({EntryV(S("s"), S("g"), 0)})), "count 0"},
      {"welcome", Dec::kPeer,
       PeerHelloV(211, S("tcp://b:1"), {}, SnapshotV({EntryV(S("s"), S("g"), 0)})), "count 0"},
  };
  RunBadCases(kCases);
}

V RaftV(V type, V to, V entries = A({A({U(1), U(3), Bin("x")})})) {
  V from = A({S("n1"), U(5)});
  return A({U(240), from,
            A({type, to, U(1), U(2), U(3), U(4), B(false), U(0), U(0), U(0), entries,
               A({U(0), U(0), Bin("")})})});
}

TEST(WireBadInputTest, RaftMessages) {
  std::vector<V> many;
  for (size_t i = 0; i <= kMaxRaftEntries; ++i) many.push_back(A({U(1), U(i + 1), Bin("")}));
  const std::vector<BadCase> kCases = {
      {"unknown raft type", Dec::kPeer, RaftV(U(9), S("n2")), "raft type"},
      {"bad destination", Dec::kPeer, RaftV(U(4), S("n.2")), "to"},
      {"entry data as a string", Dec::kPeer, RaftV(U(4), S("n2"), A({A({U(1), U(3), S("x")})})),
       "binary"},
      {"too many entries", Dec::kPeer, RaftV(U(4), S("n2"), A(many)), "entries"},
  };
  RunBadCases(kCases);
  // The valid shape decodes, and the message's sender is the peer's node.
  Result<PeerMessage> ok = DecodePeerMessage(Pack(RaftV(U(4), S("n2"))));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  const PeerRaft& r = std::get<PeerRaft>(*ok);
  EXPECT_EQ(r.message.from, "n1");
  EXPECT_EQ(r.message.entries.size(), 1u);
  EXPECT_EQ(r.message.entries[0].data, "x");
}

TEST(WireBadInputTest, HugeDeclaredArrayLength) {
  const uint32_t kClaims[] = {
      1u << 31, UINT32_MAX, uint32_t(kMaxListItems) + 1, uint32_t(kMaxListItems), 1'000'000, 3};
  for (uint32_t claim : kClaims) {
    const std::string label = "claims " + std::to_string(claim) + " elements";
    // The whole message.
    for (Dec dec : kAllDecoders) {
      ExpectBad(dec, Pack(ClaimedArray(claim, {U(2), U(7)})), "message " + label);
    }
    // A list inside a valid prefix.
    V members = MembersBodyV({S("n1.5f.17")});
    members.a[5].claimed_size = claim;
    ExpectBad(Dec::kInbound, Pack(members), "members " + label);
    V delta = DeltaV(1, S("s"), S("g"));
    delta.a[3].claimed_size = claim;
    ExpectBad(Dec::kPeer, Pack(delta), "delta ops " + label);
    V sync = SyncReplyV(SnapshotV({EntryV(S("s"), S("g"), 1)}));
    sync.a[2].a[1].claimed_size = claim;
    ExpectBad(Dec::kPeer, Pack(sync), "snapshot entries " + label);
  }
  // Raw bytes: array32 of 2^31 elements, then a few bytes of data.
  ExpectBad(Dec::kRequest, std::string("\xdd\x80\x00\x00\x00\x02\x07", 7), "raw 2^31");
  ExpectBad(Dec::kPeer, std::string("\xdd\x80\x00\x00\x00", 5), "raw 2^31, no data");
}

TEST(WireBadInputTest, DeeplyNestedArrays) {
  V v = A({});
  for (int i = 0; i < 100; ++i) v = A({std::move(v)});
  for (Dec dec : kAllDecoders) ExpectBad(dec, Pack(v), "100 nested arrays");
  // A valid Join with a trailing element nested 9 deep (10 with the message).
  V nested = U(1);
  for (int i = 0; i < 9; ++i) nested = A({std::move(nested)});
  V deep = A({U(10), U(7), S("s"), S("g"), std::move(nested)});
  ExpectBad(Dec::kRequest, Pack(deep), "too deep in a trailing element");
}

// ---- registry records -------------------------------------------------------

V PutRecordV(V key, V value, V mode = U(0)) {
  return A({U(37), U(7), std::move(key), std::move(value), std::move(mode)});
}
V ListRecordsV(V prefix, bool exact) {
  return A({U(39), U(7), std::move(prefix), B(false), B(exact)});
}
V RecordsBodyV(V key, V value) {
  return ReplyV(0, S(""), 12, {A({A({std::move(key), std::move(value)})})});
}
V NameCallV(uint64_t op, V data) {
  return A({U(241), kFrom, U(3), U(op), std::move(data)});
}
V NameAnswerV(V records) {
  return A({U(242), kFrom, U(3), U(0), S(""), S(""), Bin(""), std::move(records)});
}

TEST(WireBadInputTest, Records) {
  const std::string s256(256, 'k');
  const std::string kBiggest(kMaxRecordValueBytes, '\xff');
  const std::string kTooBig(kMaxRecordValueBytes + 1, 'v');
  // The limits are inclusive.
  for (const auto& [dec, msg] : std::vector<std::pair<Dec, V>>{
           {Dec::kRequest, PutRecordV(S(std::string(255, 'k')), Bin(kBiggest), U(1))},
           {Dec::kRequest, ListRecordsV(S(""), false)},
           {Dec::kRequest, ListRecordsV(S(std::string(255, 'p')), true)},
           {Dec::kInbound, RecordsBodyV(S("k"), Bin(kBiggest))},
           {Dec::kPeer, NameCallV(3, Bin(""))},
           {Dec::kPeer, NameCallV(1, Bin(std::string(kMaxNameCallDataBytes, 'c')))},
           {Dec::kPeer, NameAnswerV(A({A({S("k"), Bin(kBiggest)})}))},
       }) {
    Status st = DecodeWith(dec, Pack(msg));
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  const std::vector<BadCase> kCases = {
      {"put: empty key", Dec::kRequest, PutRecordV(S(""), Bin("v")), "record key is empty"},
      {"put: key over 255 bytes", Dec::kRequest, PutRecordV(S(s256), Bin("v")), "longer than 255"},
      {"put: control character in key", Dec::kRequest, PutRecordV(S("a\nb"), Bin("v")),
       "control character"},
      {"put: value as a string", Dec::kRequest, PutRecordV(S("k"), S("v")), "not binary"},
      {"put: mode 2", Dec::kRequest, PutRecordV(S("k"), Bin("v"), U(2)), "unknown mode 2"},
      {"put: mode as a boolean", Dec::kRequest, PutRecordV(S("k"), Bin("v"), B(true)), "mode"},
      {"delete: empty key", Dec::kRequest, A({U(38), U(7), S("")}), "record key is empty"},
      {"records: prefix over 255 bytes", Dec::kRequest, ListRecordsV(S(s256), false),
       "longer than 255"},
      {"records: control character in prefix", Dec::kRequest, ListRecordsV(S("\x7f"), false),
       "control character"},
      {"records: exact with an empty key", Dec::kRequest, ListRecordsV(S(""), true),
       "record key is empty"},
      {"records body: empty key", Dec::kInbound, RecordsBodyV(S(""), Bin("v")), "key"},
      {"records body: value over the limit", Dec::kInbound, RecordsBodyV(S("k"), Bin(kTooBig)),
       "'value' is longer than 65536"},
      {"records body: value as a string", Dec::kInbound, RecordsBodyV(S("k"), S("v")),
       "not binary"},
      {"records body: record without value", Dec::kInbound,
       ReplyV(0, S(""), 12, {A({A({S("k")})})}), "missing field 'value'"},
      {"name call: op 0", Dec::kPeer, NameCallV(0, Bin("x")), "unknown op 0"},
      {"name call: op 5", Dec::kPeer, NameCallV(5, Bin("x")), "unknown op 5"},
      {"name call: record get of an empty key", Dec::kPeer, NameCallV(4, Bin("")),
       "record key is empty"},
      {"name call: records of a control prefix", Dec::kPeer, NameCallV(3, Bin("a\tb")),
       "control character"},
      {"name call: write over the limit", Dec::kPeer,
       NameCallV(1, Bin(std::string(kMaxNameCallDataBytes + 1, 'c'))), "longer than"},
      {"name answer: records not an array", Dec::kPeer, NameAnswerV(Nil()), "not an array"},
      {"name answer: a bad key", Dec::kPeer, NameAnswerV(A({A({S("a\nb"), Bin("")})})),
       "control character"},
      {"name answer: value over the limit", Dec::kPeer, NameAnswerV(A({A({S("k"), Bin(kTooBig)})})),
       "longer than 65536"},
  };
  RunBadCases(kCases);
  // An oversized value in a request is too_large, not a malformed message:
  // the client gets a reply that says what to fix.
  uint64_t req = 0;
  Result<ClientRequest> big = DecodeClientRequest(Pack(PutRecordV(S("k"), Bin(kTooBig))), &req);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), Code::kTooLarge) << big.status().ToString();
  EXPECT_NE(big.status().message().find("65536"), std::string::npos);
  EXPECT_EQ(req, 7u);
}

// ---- the req id of a request that fails to decode --------------------------

TEST(WireBadInputTest, DecodeClientRequestReportsReqId) {
  const struct {
    std::string label;
    std::string frame;
    bool ok;
    uint64_t want_req;
  } kCases[] = {
      {"valid join", Pack(JoinV(S("s"), S("g"))), true, 7},
      {"join with an empty scope", Pack(JoinV(S(""), S("g"))), false, 7},
      {"join with a non-string group", Pack(JoinV(S("s"), U(3))), false, 7},
      {"join missing its group", Pack(A({U(10), U(99), S("s")})), false, 99},
      {"members missing local_only", Pack(A({U(12), U(42), S("s"), S("g")})), false, 42},
      {"hello with a 33-bit version", Pack(A({U(1), U(1234), U(1ull << 32), S("c")})), false, 1234},
      {"unknown type with a req", Pack(A({U(99), U(5555)})), false, 5555},
      {"type over 16 bits with a req", Pack(A({U(65536 + 10), U(77), S("s"), S("g")})), false, 77},
      {"max req", Pack(A({U(11), U(UINT64_MAX), S("s"), S("")})), false, UINT64_MAX},
      {"valid heartbeat: no req", Pack(A({U(3), U(8), U(9)})), true, 0},
      {"bad heartbeat: no req", Pack(A({U(3), U(8)})), false, 0},
      {"missing req", Pack(A({U(10)})), false, 0},
      {"req is a string", Pack(A({U(10), S("7"), S("s"), S("g")})), false, 0},
      {"req is negative", Pack(A({U(10), I(-7), S("s"), S("g")})), false, 0},
      {"type is a string", Pack(A({S("10"), U(7), S("s"), S("g")})), false, 0},
      {"not an array", Pack(U(7)), false, 0},
      {"garbage", std::string("\xc1\x07", 2), false, 0},
      {"truncated join", Pack(JoinV(S("s"), S("g"))).substr(0, 4), false, 0},
      {"join with trailing bytes", Pack(JoinV(S("s"), S("g"))) + "x", false, 0},
  };
  for (const auto& c : kCases) {
    uint64_t req = 0xdeadbeef;  // overwritten in every case
    Result<ClientRequest> r = DecodeClientRequest(c.frame, &req);
    EXPECT_EQ(r.ok(), c.ok) << c.label << ": " << r.status().ToString();
    EXPECT_EQ(req, c.want_req) << c.label;
    EXPECT_EQ(DecodeClientRequest(c.frame).ok(), c.ok) << c.label << " without req out";
  }
}

// With `rest`, what follows the request in its frame is handed back (a
// payload in the request's frame); without, it is an error.
TEST(WireBadInputTest, DecodeClientRequestHandsBackWhatFollows) {
  const std::string publish = Encode(ClientRequest(Publish{4, "t"}));
  const struct {
    std::string label;
    std::string frame;
    bool ok;
    std::string rest;
  } kCases[] = {
      {"publish alone", publish, true, ""},
      {"publish and a payload", publish + "payload", true, "payload"},
      {"publish and bytes that look like msgpack", publish + publish, true, publish},
      {"publish and a NUL", publish + std::string(1, '\0'), true, std::string(1, '\0')},
      {"a truncated publish", publish.substr(0, publish.size() - 1), false, ""},
      {"garbage", std::string("\xc1\x07", 2), false, ""},
  };
  for (const auto& c : kCases) {
    std::string_view rest = "overwritten";
    uint64_t req = 0;
    Result<ClientRequest> r = DecodeClientRequest(c.frame, &req, &rest);
    EXPECT_EQ(r.ok(), c.ok) << c.label << ": " << r.status().ToString();
    EXPECT_EQ(rest, c.rest) << c.label;
    if (r.ok()) EXPECT_EQ(std::get<Publish>(*r).topic, "t") << c.label;
    EXPECT_EQ(DecodeClientRequest(c.frame).ok(), c.ok && c.rest.empty())
        << c.label << " without rest";
  }
}

}  // namespace
}  // namespace meshbus::wire
