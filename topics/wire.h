// The wire formats of meshbus and their msgpack codec. Pure: no sockets, no
// threads; every function is thread-safe.
//
// Every message is one msgpack array in one ZeroMQ frame (later message kinds
// add an opaque payload frame after it). The first element is the message
// type; the layouts, one per line, are:
//
// Client -> broker (clients ROUTER; `req` is chosen by the client and echoed):
//   [1  Hello,       req, version, client_name]
//   [2  Bye,         req]
//   [3  Heartbeat,   session, token]                      (no reply)
//   [10 Join,        req, scope, group]
//   [11 Leave,       req, scope, group]
//   [12 Members,     req, scope, group, local_only]
//   [13 WhichGroups, req, scope ("" = every scope), local_only]
//   [14 Monitor,     req, scope, group or nil (nil = the whole scope)]
//   [15 Demonitor,   req, ref]
//   [16 Nodes,       req]
//   [17 Stats,       req]
//   [18 JoinMany,    req, scope, [group...]]    all or nothing: one bad name joins none
//   [20 Subscribe,   req, prefix]                ("" = every topic)
//   [21 Unsubscribe, req, prefix]
//   [22 Publish,     req, topic, count]          + payload; answered only on error
//   [23 Broadcast,   req, scope, group, count]   + payload; answered only on error
//   [24 Dispatch,    req, scope, group, count]   + payload; answered by `delivered`,
//                    or with a count, by `dispatched` (one outcome per payload)
//   [25 Request,     req, scope, group, timeout_ms]  + payload; answered by `response`
//   [26 Respond,     req, reply_to]              + payload; reply_to as the request had it
//   [27 Send,        req, member_id]             + payload; answered by `delivered`
//   [28 Credit,      session, token, bytes]      bytes of deliveries consumed (no reply)
//   [30 Register,    req, name, metadata (bin)]  answered ok, or taken with the holder (body 9)
//   [31 Unregister,  req, name]
//   [32 Whereis,     req, name, consistent]      body 9; consistent: answered by the leader
//   [33 Names,       req, prefix]                body 10 (ref 0), from the local copy
//   [34 MonitorNames, req, prefix]               body 10 with a ref; then NameEvents
//   [35 Leader,      req]                        body 11
//   [36 SendName,    req, name]                  + payload; answered by `delivered`
//   [37 PutRecord,   req, key, value (bin), mode]   mode 0 put (create or replace), 1 create
//                                                   if absent: answered ok or `exists`
//   [38 DeleteRecord, req, key]                  answered ok or not_found
//   [39 Records,     req, prefix, consistent, exact]  body 12; consistent: answered by the
//                    leader after it confirmed its leadership; exact: only the record whose
//                    key is `prefix` (then a valid key; not_found when there is none)
// "+ payload": the opaque payload, forwarded as it is: the bytes after the
//   request's array in the same frame (what the SDK sends: one ZeroMQ frame,
//   not two), or a second frame, after a frame that ends with the array.
//   One frame that ends with the array carries an empty payload.
// count 0: the payload frame is the payload; 1 to kMaxCastPayloads:
//   it holds that many (AppendSized), each its own message to the same topic
//   or group, in order (PublishMany, BroadcastMany, DispatchMany).
// Broker -> client:
//   [100 Reply, req, code, message, body_tag, body...]    body by tag:
//        0 empty            -
//        1 welcome          node, incarnation, session, token, heartbeat_ms, session_timeout_ms,
//                           max_message_bytes, client_queue_bytes
//        2 members          [member_id...]
//        3 groups           [[scope, group, count]...]
//        4 monitor          ref, [[scope, group, [member_id...]]...]
//        5 nodes            [[name, incarnation, state, calls_ep, last_heard_ms_ago, is_self]...]
//        6 stats            [[name, value]...]
//        7 delivered        member_id                   (the member that has it now)
//        8 response         member_id                   + payload (the responder's)
//        9 name             name, holder, metadata (bin)
//        10 names           ref, [[name, holder, metadata]...]
//        11 leader          node, leader, role, term, commit, applied, problem,
//                           [[node, voter, alive, match, replication, active]...]
//        12 records         [[key, value (bin)]...]   sorted by key
//        13 dispatched      [member_id...], outcomes (bin), [[code, message]...]
//                           a DispatchMany's outcomes: 2 bytes (little-endian) per payload
//                           in order, the index of the member that has it in the list
//                           before, or 0xFFFF when it failed; then each failure in order
//                           (code not 0). Each member is listed once, however many
//                           payloads it took.
//   [101 Event, ref, kind (1 join, 2 leave), scope, group, [member_id...]]
//   [102 Gap,   lost]    deliveries lost for this client since the last one it got
//   [103 Message, kind, from, topic, scope, group, reply_to]  + payload
//        kind 1 publish (topic), 2 broadcast, 3 dispatch, 4 request (scope, group;
//        a request has reply_to), 5 direct (sent to this member by id)
//   [104 NameEvent, ref, kind (1 registered, 2 unregistered), name, holder, metadata]
//   [105 Messages,  count]  + one frame of `count` entries (AppendBatchEntry):
//        publishes, broadcasts and dispatches handed over together, 1 to
//        kMaxMessageBatch of them, in the order they came
//
// Broker <-> broker. `from` is [node, incarnation] in every message.
//   control PUB/SUB:
//   [200 Heartbeat, from, seq, calls_ep]           seq = latest delta sequence of `from`
//   [201 Delta,     from, seq, [[op, scope, group, session]...]]   op 1 join, 2 leave
//   [202 Bye,       from]                          graceful stop: purge `from` now
//   calls DEALER -> ROUTER, and the answers back:
//   [210 Hello,     from, version, [calls_ep, control_ep, data_ep], [known calls_ep...], snapshot,
//                   [voter...], registry_epoch]   the registry's voter set as this broker has it
//                   ([] unknown); epoch: see PeerHello
//   [211 Welcome,   same fields as Hello]          the answer to a Hello
//   [212 SyncRequest, from, target_incarnation]
//   [213 SyncReply,   from, snapshot]
//   [214 Probe,       from, nonce]
//   [215 ProbeReply,  from, nonce]
//   [216 SubscriptionCheck, from, ticket]   has your data XPUB seen `ticket` subscribed?
//   [217 SubscriptionSeen,  from, ticket]   yes (answered when it has)
//   [220 Forward,    from, id, kind, session, scope, group, sender, timeout_ms]  + payload
//        a dispatch (3), request (4) or direct send (5) for member `session` of the receiver
//   [221 ForwardAck, from, id, code, message]   the member has it (ok), or why not
//   [222 Response,   from, id, code, message, responder]  + payload: the answer to request `id`
//   [223 CallBatch,  from, count]  + one frame of `count` entries (AppendBatchEntry), each a
//        Forward, ForwardAck, Response, ForwardRun or AckRun with its payload (an ack's is
//        empty): a turn's calls to one peer, 2 to kMaxMessageBatch entries, in the order
//        they were made
//   [224 ForwardRun, from, kind, scope, group, sender, timeout_ms, [id, session, id, ...]]
//        + one frame of one payload per call (AppendSized): consecutive Forwards that
//        differ only in id, session and payload, 1 to kMaxMessageBatch of them
//   [225 AckRun,     from, ids (bin)]   consecutive ok ForwardAcks, 1 to kMaxMessageBatch
//        ids of 8 bytes each, little-endian
//   [240 Raft,       from, [type, to, term, index, log_term, commit, reject,
//                      hint_index, hint_term, context, [[term, index, data]...],
//                      [snapshot_index, snapshot_term, snapshot_data]]]
//        the registry's consensus (topics/raft_types.h); data are msgpack bin
//   [241 NameCall,   from, id, op, data]   to the registry's leader: op 1 a write (data: a
//        registry command, broker/registry.h), 2 a linearizable whereis (data: the name),
//        3 a linearizable records listing (data: the key prefix), 4 a linearizable get of
//        one record (data: the key)
//   [242 NameAnswer, from, id, code, message, holder ("" none), metadata (bin),
//                    [[key, value (bin)]...]]   the records of op 3 and 4 answers ([] else;
//                    absent from older peers)
//   [243 RegistryStatusRequest, from, id]     to the leader: its view of replication
//   [244 RegistryStatus, from, id, [[node, voter, alive, match, replication, active]...]]
//   snapshot = [seq, [[scope, group, session, count]...]]
//   data PUB/SUB: [data topic][header] + payloads, the data topic first so that
//   ZeroMQ filters on it (see PublishDataTopic and BroadcastDataTopic):
//   [230 Data,      from, epoch, [[stream, seq]...], [session...]]  + one frame holding
//        one payload per session (AppendSized)
//        a batch: consecutive messages of one data topic, sent in one loop turn;
//        seq numbers the first, payload i has seq + i in every stream; session i
//        is the sending member's session of payload i
//   [231 DataMark,  from, epoch, [[stream, seq]]]   seq: the last one sent in the stream
//   A stream is one subscription (a data-topic prefix) that some peer holds;
//   the origin learns them from its XPUB socket, and numbers every message
//   in each stream it belongs to. "" names the data topic itself. epoch
//   changes when the origin forgets its counters, which restart at 1.
//
// Decoding validates every field (types, lengths, names, counts) and ignores
// nothing silently: a message that fails gets a Status naming the problem.
// Trailing extra array elements are accepted, so a newer peer may append fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "topics/names.h"
#include "topics/raft_types.h"
#include "topics/status.h"

namespace meshbus::wire {

inline constexpr uint32_t kProtocolVersion = 8;
// Upper bounds on decoded collections: a peer or client cannot make us
// allocate without limit by sending a large count.
inline constexpr size_t kMaxListItems = 4'000'000;
inline constexpr size_t kMaxFrameBytes = 256u << 20;
inline constexpr size_t kMaxKnownPeers = 4096;
// A JoinMany names at most this many groups, and a delta carries at most this
// many ops (a busy turn sends several), so both stay far below kMaxFrameBytes.
inline constexpr size_t kMaxJoinManyGroups = 10000;
inline constexpr size_t kMaxOpsPerDelta = 10000;
// reply_to and other opaque handles.
inline constexpr size_t kMaxHandleBytes = 255;

enum class Type : uint16_t {
  kHello = 1,
  kBye = 2,
  kHeartbeat = 3,
  kJoin = 10,
  kLeave = 11,
  kMembers = 12,
  kWhichGroups = 13,
  kMonitor = 14,
  kDemonitor = 15,
  kNodes = 16,
  kStats = 17,
  kJoinMany = 18,
  kSubscribe = 20,
  kUnsubscribe = 21,
  kPublish = 22,
  kBroadcast = 23,
  kDispatch = 24,
  kRequest = 25,
  kRespond = 26,
  kSend = 27,
  kCredit = 28,
  kRegister = 30,
  kUnregister = 31,
  kWhereis = 32,
  kNames = 33,
  kMonitorNames = 34,
  kLeader = 35,
  kSendName = 36,
  kPutRecord = 37,
  kDeleteRecord = 38,
  kRecords = 39,
  kReply = 100,
  kEvent = 101,
  kGap = 102,
  kMessage = 103,
  kNameEvent = 104,
  kMessages = 105,
  kPeerHeartbeat = 200,
  kPeerDelta = 201,
  kPeerBye = 202,
  kPeerHello = 210,
  kPeerWelcome = 211,
  kPeerSyncRequest = 212,
  kPeerSyncReply = 213,
  kPeerProbe = 214,
  kPeerProbeReply = 215,
  kPeerSubscriptionCheck = 216,
  kPeerSubscriptionSeen = 217,
  kPeerForward = 220,
  kPeerForwardAck = 221,
  kPeerResponse = 222,
  kPeerCallBatch = 223,
  kPeerForwardRun = 224,
  kPeerAckRun = 225,
  kPeerData = 230,
  kPeerDataMark = 231,
  kPeerRaft = 240,
  kPeerNameCall = 241,
  kPeerNameAnswer = 242,
  kPeerRegistryStatusRequest = 243,
  kPeerRegistryStatus = 244,
};

// ---- client -> broker ------------------------------------------------------

struct Hello {
  uint64_t req = 0;
  uint32_t version = kProtocolVersion;
  std::string client_name;
};
struct Bye {
  uint64_t req = 0;
};
struct SessionHeartbeat {
  uint64_t session = 0;
  uint64_t token = 0;
};
struct Join {
  uint64_t req = 0;
  std::string scope, group;
};
struct Leave {
  uint64_t req = 0;
  std::string scope, group;
};
struct Members {
  uint64_t req = 0;
  std::string scope, group;
  bool local_only = false;
};
struct WhichGroups {
  uint64_t req = 0;
  std::string scope;
  bool local_only = false;
};
struct Monitor {
  uint64_t req = 0;
  std::string scope;
  std::optional<std::string> group;
};
struct Demonitor {
  uint64_t req = 0;
  uint64_t ref = 0;
};
struct Nodes {
  uint64_t req = 0;
};
struct Stats {
  uint64_t req = 0;
};
struct JoinMany {
  uint64_t req = 0;
  std::string scope;
  std::vector<std::string> groups;
};

struct Subscribe {
  uint64_t req = 0;
  std::string prefix;
  bool unsubscribe = false;
};
// count 0: the payload frame is the payload; n > 0: it holds n (AppendSized).
struct Publish {
  uint64_t req = 0;
  std::string topic;
  uint32_t count = 0;
};
struct Broadcast {
  uint64_t req = 0;
  std::string scope, group;
  uint32_t count = 0;
};
struct Dispatch {
  uint64_t req = 0;
  std::string scope, group;
  uint32_t count = 0;  // as a Publish's; n > 0 is answered by a DispatchedBody
};
struct Request {
  uint64_t req = 0;
  std::string scope, group;
  uint32_t timeout_ms = 0;
};
struct Respond {
  uint64_t req = 0;
  std::string reply_to;
};
struct Send {
  uint64_t req = 0;
  MemberId member;
};
struct Credit {
  uint64_t session = 0;
  uint64_t token = 0;
  uint64_t bytes = 0;
};

// The name registry (broker/registry.h).
struct Register {
  uint64_t req = 0;
  std::string name;
  std::string metadata;
};
struct Unregister {
  uint64_t req = 0;
  std::string name;
};
struct Whereis {
  uint64_t req = 0;
  std::string name;
  bool consistent = false;
};
struct ListNames {
  uint64_t req = 0;
  std::string prefix;  // "" = every name
};
struct MonitorNames {
  uint64_t req = 0;
  std::string prefix;
};
struct Leader {
  uint64_t req = 0;
};
struct SendName {
  uint64_t req = 0;
  std::string name;
};
// Registry records: key/value entries no member owns (broker/registry.h).
enum class RecordMode : uint8_t { kPut = 0, kCreate = 1 };
struct PutRecord {
  uint64_t req = 0;
  std::string key;
  std::string value;
  RecordMode mode = RecordMode::kPut;
};
struct DeleteRecord {
  uint64_t req = 0;
  std::string key;
};
struct ListRecords {
  uint64_t req = 0;
  std::string prefix;  // "" = every record, unless exact
  bool consistent = false;
  bool exact = false;  // only the record whose key is `prefix`
};

using ClientRequest =
    std::variant<Hello, Bye, SessionHeartbeat, Join, Leave, Members, WhichGroups, Monitor,
                 Demonitor, Nodes, Stats, JoinMany, Subscribe, Publish, Broadcast, Dispatch,
                 Request, Respond, Send, Credit, Register, Unregister, Whereis, ListNames,
                 MonitorNames, Leader, SendName, PutRecord, DeleteRecord, ListRecords>;
// True for the requests that carry a payload (in their frame or the next).
bool CarriesPayload(const ClientRequest& m);
// The most payloads one Publish or Broadcast may carry (its count).
inline constexpr size_t kMaxCastPayloads = 256;
// The request's `req`; 0 for the messages that have none (heartbeat, credit).
uint64_t RequestIdOf(const ClientRequest& m);

std::string Encode(const ClientRequest& m);
// On failure, *req (if given) holds the request id when it could be read, so
// the broker can address its error reply; 0 otherwise. With `rest`, the
// frame may go on after the request, and *rest is what follows (a payload
// in the request's frame); without, that is an error.
Result<ClientRequest> DecodeClientRequest(std::string_view frame, uint64_t* req = nullptr,
                                          std::string_view* rest = nullptr);

// ---- broker -> client ------------------------------------------------------

struct Empty {};
struct WelcomeBody {
  std::string node;
  uint64_t incarnation = 0, session = 0, token = 0;
  uint32_t heartbeat_ms = 0, session_timeout_ms = 0;
  uint64_t max_message_bytes = 0, client_queue_bytes = 0;
};
struct MembersBody {
  std::vector<MemberId> members;
};
struct GroupCount {
  std::string scope, group;
  uint64_t count = 0;
};
struct GroupsBody {
  std::vector<GroupCount> groups;
};
struct GroupMembers {
  std::string scope, group;
  std::vector<MemberId> members;
};
struct MonitorBody {
  uint64_t ref = 0;
  std::vector<GroupMembers> groups;
};
struct NodeInfo {
  std::string name;
  uint64_t incarnation = 0;
  std::string state;  // alive, suspect, dead
  std::string calls_endpoint;
  uint64_t last_heard_ms_ago = 0;
  bool is_self = false;
};
struct NodesBody {
  std::vector<NodeInfo> nodes;
};
struct StatsBody {
  std::vector<std::pair<std::string, uint64_t>> counters;
};
struct DeliveredBody {
  MemberId member;
};
struct ResponseBody {  // followed by the responder's payload frame
  MemberId member;
};
// What became of one payload of a DispatchMany: the member that has it, or why not.
struct DispatchOutcome {
  Status status;
  MemberId member;  // when status is ok
};
struct DispatchedBody {
  std::vector<DispatchOutcome> outcomes;  // one per payload, in order
};
// A registered name. As a reply body: the answer to whereis, or who holds
// the name when the answer is `taken` or `not_holder`.
struct NameInfo {
  std::string name;
  MemberId holder;
  std::string metadata;
  friend bool operator==(const NameInfo&, const NameInfo&) = default;
};
struct NamesBody {
  uint64_t ref = 0;  // a name monitor's; 0 for a plain listing
  std::vector<NameInfo> names;
};
// One member of the registry's consensus, as the answering broker sees it.
struct RaftMemberInfo {
  std::string node;
  bool voter = true;  // false: a learner, which follows the log without voting
  bool alive = false;
  // The leader's view (a follower asks the leader for it). replication is ""
  // when the answering broker could not get it: then match and active say nothing.
  uint64_t match = 0;       // the last entry known replicated there
  std::string replication;  // probe, replicate or snapshot
  bool active = false;      // heard from within an election timeout
};
struct LeaderBody {
  std::string node;    // the answering broker
  std::string leader;  // "" when none is known
  std::string role;    // leader, follower, pre-candidate, candidate, learner, or none
  uint64_t term = 0, commit = 0, applied = 0;
  std::string problem;  // why this broker takes no part, if it does not
  std::vector<RaftMemberInfo> members;
};
// A registry record.
struct Record {
  std::string key;
  std::string value;
  friend bool operator==(const Record&, const Record&) = default;
};
struct RecordsBody {
  std::vector<Record> records;  // sorted by key
};
// The variant's index is the body tag on the wire.
using ReplyBody = std::variant<Empty, WelcomeBody, MembersBody, GroupsBody, MonitorBody, NodesBody,
                               StatsBody, DeliveredBody, ResponseBody, NameInfo, NamesBody,
                               LeaderBody, RecordsBody, DispatchedBody>;

struct Reply {
  uint64_t req = 0;
  Status status;
  ReplyBody body;
};

enum class EventKind : uint8_t { kJoin = 1, kLeave = 2 };
std::string_view EventKindName(EventKind kind);
struct Event {
  uint64_t ref = 0;
  EventKind kind = EventKind::kJoin;
  std::string scope, group;
  std::vector<MemberId> members;
};
struct Gap {
  uint64_t lost = 0;
};

enum class MessageKind : uint8_t {
  kPublish = 1,
  kBroadcast = 2,
  kDispatch = 3,
  kRequest = 4,
  kDirect = 5,
};
std::string_view MessageKindName(MessageKind kind);
struct Message {  // followed by the payload frame
  MessageKind kind = MessageKind::kPublish;
  MemberId from;
  std::string topic;         // publish
  std::string scope, group;  // broadcast, dispatch, request
  std::string reply_to;      // request: "<node>.<incarnation hex>.<id>" of the requester's broker
  friend bool operator==(const Message&, const Message&) = default;
};

enum class NameEventKind : uint8_t { kRegistered = 1, kUnregistered = 2 };
std::string_view NameEventKindName(NameEventKind kind);
// kRegistered: the name is now held so (also when its holder re-registers it
// with other metadata). kUnregistered: it was held so, and is free now.
struct NameEvent {
  uint64_t ref = 0;
  NameEventKind kind = NameEventKind::kRegistered;
  NameInfo entry;
};

// The head of a batch of deliveries: `count` pairs of frames follow, each a
// Message and its payload (wire.h's comment at the top).
struct MessageBatch {
  uint32_t count = 0;
};
inline constexpr uint32_t kMaxMessageBatch = 256;
// The frame after a MessageBatch: its entries back to back, each
//   [header_len: u32][header][payload_len: u32][payload]   (little-endian)
// a header being a Message (103) as Encode makes it. header_len 0 repeats
// the entry before's header (a burst from one sender to one topic is decoded
// once); the first entry has one of its own. Nothing follows the last.
// One frame for many messages: ZeroMQ's cost is per frame, a copy of a small
// payload is far cheaper.
void AppendBatchEntry(std::string* frame, std::string_view header, bool same_header,
                      std::string_view payload);
// Payloads packed into one frame, each [len: u32 little-endian][bytes], as
// a data batch (230) carries them.
void AppendSized(std::string* frame, std::string_view bytes);
// Splits a frame of exactly `count` such payloads, checking every length.
Status SplitSized(std::string_view frame, size_t count, std::vector<std::string_view>* out);
struct BatchEntry {
  std::string_view header, payload;  // into the frame; a repeated header resolved
};
// Splits a batch frame of `count` entries, checking every length; the
// headers are left to DecodeClientInbound.
Status SplitMessageBatch(std::string_view frame, uint32_t count, std::vector<BatchEntry>* entries);

using ClientInbound = std::variant<Reply, Event, Gap, Message, NameEvent, MessageBatch>;
// True for the broker messages that are followed by a payload frame.
bool CarriesPayload(const ClientInbound& m);

std::string Encode(const ClientInbound& m);
Result<ClientInbound> DecodeClientInbound(std::string_view frame);

// ---- broker <-> broker -----------------------------------------------------

struct PeerId {
  std::string node;
  uint64_t incarnation = 0;
  friend bool operator==(const PeerId&, const PeerId&) = default;
};
struct PeerEndpoints {
  std::string calls, control, data;
};
struct MembershipEntry {
  std::string scope, group;
  uint64_t session = 0;
  uint32_t count = 0;  // joins of this session to this group (pg counts twice)
  friend bool operator==(const MembershipEntry&, const MembershipEntry&) = default;
};
struct Snapshot {
  uint64_t seq = 0;
  std::vector<MembershipEntry> entries;
};
enum class DeltaOpKind : uint8_t { kJoin = 1, kLeave = 2 };
struct DeltaOp {
  DeltaOpKind op = DeltaOpKind::kJoin;
  std::string scope, group;
  uint64_t session = 0;
  friend bool operator==(const DeltaOp&, const DeltaOp&) = default;
};

struct PeerHeartbeat {
  PeerId from;
  uint64_t seq = 0;
  std::string calls_endpoint;
};
struct PeerDelta {
  PeerId from;
  uint64_t seq = 0;
  std::vector<DeltaOp> ops;
};
struct PeerBye {
  PeerId from;
};
struct PeerHello {
  PeerId from;
  bool is_welcome = false;  // false: a Hello; true: the Welcome that answers one
  uint32_t version = kProtocolVersion;
  PeerEndpoints endpoints;
  std::vector<std::string> known_peers;  // calls endpoints
  Snapshot snapshot;
  std::vector<std::string> voters;  // the registry's voters, sorted; empty: not known yet
  // Non-zero: this broker is a voter that keeps the registry in memory (no
  // data dir), and this value changes when it restarts: followers then know
  // the registry restarted empty.
  uint64_t registry_epoch = 0;
};
struct PeerSyncRequest {
  PeerId from;
  uint64_t target_incarnation = 0;
};
struct PeerSyncReply {
  PeerId from;
  Snapshot snapshot;
};
struct PeerProbe {
  PeerId from;
  uint64_t nonce = 0;
  bool is_reply = false;
};

// A subscriber's broker subscribes a unique ticket right after a client's
// prefix, on the same connections: a peer whose XPUB has seen the ticket has
// seen the prefix too, so once every peer says so, the subscription holds
// everywhere.
struct PeerSubscriptionCheck {
  PeerId from;
  std::string ticket;  // a data-topic prefix starting with kTicketTopicMark
  bool is_reply = false;
};

// A dispatch, request or direct send for one member of the receiving broker.
struct PeerForward {  // + payload
  PeerId from;
  uint64_t id = 0;  // the sender's: echoed by the ack and the response
  MessageKind kind = MessageKind::kDispatch;
  uint64_t session = 0;  // the target member's session on the receiver
  std::string scope, group;
  MemberId sender;
  uint32_t timeout_ms = 0;  // requests: how long the requester waits
};
struct PeerForwardAck {
  PeerId from;
  uint64_t id = 0;
  Status status;
};
struct PeerResponse {  // + payload
  PeerId from;
  uint64_t id = 0;
  Status status;
  MemberId responder;
};
// + one frame of `count` entries (AppendBatchEntry): the forwards, acks and
// responses a broker's loop sent one peer in a turn, in order.
struct PeerCallBatch {
  PeerId from;
  uint32_t count = 0;
};
// A burst of forwards with one header: a DispatchMany's payloads for one
// node share everything but the id and the member. Decoding one header per
// forward was the largest cost of a dispatch between brokers.
struct PeerForwardRun {  // + one frame of one payload per call (AppendSized)
  PeerId from;
  MessageKind kind = MessageKind::kDispatch;
  std::string scope, group;
  MemberId sender;
  uint32_t timeout_ms = 0;
  struct Call {
    uint64_t id = 0, session = 0;
    friend bool operator==(const Call&, const Call&) = default;
  };
  std::vector<Call> calls;  // 1 to kMaxMessageBatch, in order
};
// Forwards that the member has, in the order they were acked.
struct PeerAckRun {
  PeerId from;
  std::vector<uint64_t> ids;  // 1 to kMaxMessageBatch
};

// A publish or broadcast on the data channel, after its data-topic frame.
struct StreamSeq {
  std::string stream;  // a subscribed data-topic prefix; "" = the data topic itself
  uint64_t seq = 0;
  friend bool operator==(const StreamSeq&, const StreamSeq&) = default;
};
struct PeerData {  // + one payload per session, unless a mark
  PeerId from;
  uint64_t epoch = 0;
  std::vector<StreamSeq> streams;  // at least one; the first payload's numbers
  std::vector<uint64_t> sessions;  // per payload: the sending member's session on `from`
  bool is_mark = false;            // no payload: "seq was the last in this stream"
};
// A data message names at most this many streams (subscriptions it matches).
inline constexpr size_t kMaxStreamsPerData = 1024;
// And carries at most this many payloads.
inline constexpr size_t kMaxDataBatch = 256;

// A message of the registry's consensus; message.from must be from.node
// (the broker checks it).
struct PeerRaft {
  PeerId from;
  raft::Message message;
};
// At most this many log entries in one Raft message.
inline constexpr size_t kMaxRaftEntries = 10000;
// At most this many voters (a registry wants 3 or 5).
inline constexpr size_t kMaxVoters = 15;

// A registry call forwarded to the leader by the broker whose client made it
// (or by a broker releasing its members' names).
enum class NameCallOp : uint8_t {
  kWrite = 1,
  kConsistentRead = 2,
  kConsistentRecords = 3,
  kConsistentRecord = 4,
};
// A write's data: a command is at most a record (key and value) or a name, a
// member and metadata, with a few bytes of framing.
inline constexpr size_t kMaxNameCallDataBytes =
    kMaxRecordValueBytes + 2 * (kMaxRegistryNameBytes + kMaxNameMetadataBytes);
struct PeerNameCall {
  PeerId from;
  uint64_t id = 0;  // the caller's: echoed by the answer
  NameCallOp op = NameCallOp::kWrite;
  // kWrite: an encoded registry command; kConsistentRead: the name;
  // kConsistentRecords: the key prefix; kConsistentRecord: the key.
  std::string data;
};
struct PeerNameAnswer {
  PeerId from;
  uint64_t id = 0;
  Status status;
  std::optional<MemberId> holder;  // whereis: the holder; taken, not_holder: who holds it
  std::string metadata;
  std::vector<Record> records;  // kConsistentRecords and kConsistentRecord
};

// `meshbus leader` on a follower: the leader's replication progress.
struct PeerRegistryStatus {
  PeerId from;
  uint64_t id = 0;
  bool is_reply = false;
  std::vector<RaftMemberInfo> members;  // the reply's
};

using PeerMessage =
    std::variant<PeerHeartbeat, PeerDelta, PeerBye, PeerHello, PeerSyncRequest, PeerSyncReply,
                 PeerProbe, PeerForward, PeerForwardAck, PeerResponse, PeerData, PeerRaft,
                 PeerSubscriptionCheck, PeerNameCall, PeerNameAnswer, PeerRegistryStatus,
                 PeerCallBatch, PeerForwardRun, PeerAckRun>;
bool CarriesPayload(const PeerMessage& m);
// What a PeerCallBatch may hold: forwards, acks, responses and their runs.
// An entry's payload is the message's (CarriesPayload), or empty.
bool BatchesAsCall(const PeerMessage& m);

std::string Encode(const PeerMessage& m);
Result<PeerMessage> DecodePeerMessage(std::string_view frame);
const PeerId& SenderOf(const PeerMessage& m);

}  // namespace meshbus::wire
