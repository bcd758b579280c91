// Client: a process's session with its local meshbus broker, and the whole
// API of the mesh: process groups (pg-style) and monitors, publish/subscribe,
// group broadcast, dispatch to one random member, request/reply, direct
// sends to a member, the name registry (names and records), and a view of the nodes. Create it with
// Client::Connect; it is a move-only owner of its sockets and of one background thread that keeps
// the session alive with heartbeats, so a process that is busy for a while does not lose its
// memberships. Its session (and so its memberships and monitors) ends when the Client is destroyed
// or Close()d, or when the process dies.
//
// Calls are synchronous, each with a deadline; the *Async variants return a
// ticket at once and their Outcome comes later, so many can be in flight.
// Deliveries (messages, monitor events, gap notices, outcomes) come on the
// same ordered channel as replies and are read, in the order the broker sent
// them, with Receive(). Messages from one sender arrive in the order sent.
// The broker keeps at most a bounded number of bytes of deliveries unread by
// this client; beyond that it drops them and says how many (GapNotice).
//
// Not thread-safe: use one Client from one thread at a time, like a ZeroMQ
// socket; give each thread its own Client if several need the mesh.
// No exception leaves a Client: every error is a Status.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "topics/names.h"
#include "topics/status.h"
#include "topics/wire.h"

namespace meshbus {

struct ClientOptions {
  // The broker's client endpoint; empty: ipc:///tmp/meshbus-<hostname>.ipc,
  // the default of a meshbusd started without --node (see DefaultBrokerEndpoint).
  std::string endpoint;
  std::string name = "client";  // shown by the broker in its logs
  std::chrono::milliseconds call_timeout{3000};
  std::chrono::milliseconds connect_timeout{3000};
};

// The default broker endpoint: $MESHBUS_BROKER if set, else the default
// client endpoint of a broker named after this host.
std::string DefaultBrokerEndpoint();

using GroupMembers = wire::GroupMembers;
using GroupCount = wire::GroupCount;
using NodeInfo = wire::NodeInfo;
using EventKind = wire::EventKind;

// A change in a monitored scope or group: members that joined or left
// (a member twice when it joined twice). Leaves are reported for explicit
// leaves, ended sessions, purged nodes and resyncs alike.
struct MonitorEvent {
  uint64_t ref = 0;
  EventKind kind = EventKind::kJoin;
  std::string scope, group;
  std::vector<MemberId> members;
};
// The broker could not queue `lost` deliveries for this client (it was too
// slow to read them); they are gone, and this says how many.
struct GapNotice {
  uint64_t lost = 0;
};
using MessageKind = wire::MessageKind;
// A message for this member: a publish it subscribed to, a broadcast or
// dispatch to a group it is in, a request to answer with Reply(), or a
// direct Send() to it.
struct Message {
  MessageKind kind = MessageKind::kPublish;
  MemberId from;             // the sender
  std::string topic;         // publish
  std::string scope, group;  // broadcast, dispatch, request
  std::string reply_to;      // request: what Reply() answers
  std::string payload;
};
// The outcome of an *Async call, with the ticket it returned; or, with
// ticket 0, an error the broker found in a Publish or Broadcast after it was
// sent (such as a message over its maximum size).
struct Outcome {
  uint64_t ticket = 0;
  Status status;
  MemberId member;      // who got it (dispatch, send) or answered (request)
  std::string payload;  // request: the response
  // DispatchManyAsync: each payload's outcome, in order (all failed with
  // `status` when the broker refused the call whole).
  std::vector<Result<MemberId>> dispatched;
};
// A registered name: its holder and the metadata it registered with.
using NameInfo = wire::NameInfo;
using NameEventKind = wire::NameEventKind;
// A change among the names a MonitorNames watches.
struct NameEvent {
  uint64_t ref = 0;
  NameEventKind kind = NameEventKind::kRegistered;
  NameInfo entry;
};
using Delivery = std::variant<MonitorEvent, GapNotice, Message, Outcome, NameEvent>;

// What a name monitor starts from: its ref, and the matching names then.
struct NamesMonitorStart {
  uint64_t ref = 0;
  std::vector<NameInfo> names;
};
// A registry record: a replicated key/value entry that no member owns.
using Record = wire::Record;
// The registry's consensus as the local broker sees it (see `meshbus leader`).
using LeaderInfo = wire::LeaderBody;

// What a monitor starts from: its ref, and the members at that moment.
struct MonitorStart {
  uint64_t ref = 0;
  std::vector<GroupMembers> groups;
};

class Client {
 public:
  static Result<Client> Connect(ClientOptions options = {});
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Ends the session: memberships are left and monitors removed everywhere.
  // A session the broker ended already is closed at once (kUnavailable).
  Status Close();

  // This session's member id, e.g. "n1.18a3f5b2c9d4e.17".
  const MemberId& self() const;
  const std::string& node() const { return self().node; }

  // ---- process groups ----
  // Joining twice counts twice; leave undoes one join.
  Status Join(const std::string& scope, const std::string& group);
  // Joins many groups of one scope in one call (one round trip, one delta
  // to the mesh). All or nothing: if any name is invalid, none is joined.
  // At most wire::kMaxJoinManyGroups (10,000) groups per call.
  Status JoinMany(const std::string& scope, const std::vector<std::string>& groups);
  // kNotJoined when this session is not a member.
  Status Leave(const std::string& scope, const std::string& group);
  Result<std::vector<MemberId>> Members(const std::string& scope, const std::string& group);
  Result<std::vector<MemberId>> LocalMembers(const std::string& scope, const std::string& group);
  Result<std::vector<std::string>> WhichGroups(const std::string& scope);
  Result<std::vector<std::string>> WhichLocalGroups(const std::string& scope);
  // Groups with their member counts; every scope when scope is empty.
  Result<std::vector<GroupCount>> Groups(const std::string& scope = "");

  // Monitors: the current members now, then MonitorEvents through Receive().
  Result<MonitorStart> MonitorScope(const std::string& scope);
  Result<MonitorStart> Monitor(const std::string& scope, const std::string& group);
  Status Demonitor(uint64_t ref);

  // ---- messaging ----
  // ZeroMQ prefix semantics: "" is every topic. A topic is 1..255 bytes
  // without control characters. Subscribing twice to a prefix is one
  // subscription; unsubscribing one not held is kNotFound. Subscribe returns
  // once every live node applies it: what is published anywhere after that
  // reaches this client (or is reported lost).
  // (Unlike ZeroMQ, there is no window in which a publish is silently missed.)
  Status Subscribe(const std::string& prefix);
  Status Unsubscribe(const std::string& prefix);
  // To every subscriber of a prefix of `topic`, on every node. Returns once
  // the local broker has it; it does not wait for the subscribers.
  Status Publish(const std::string& topic, std::string_view payload);
  // To every member of the group, on every node, once each.
  Status Broadcast(const std::string& scope, const std::string& group, std::string_view payload);
  // Each payload as its own Publish (or Broadcast), in order, but handed to
  // the broker wire::kMaxCastPayloads at a time: one ZeroMQ message and one
  // decode for many, which is how to publish fast. All or nothing up front:
  // if any payload is too large, none is sent (kTooLarge). Should sending
  // stop partway (kUnreachable), the message says how many went.
  Status PublishMany(const std::string& topic, std::span<const std::string_view> payloads);
  Status PublishMany(const std::string& topic, std::span<const std::string> payloads);
  Status BroadcastMany(const std::string& scope, const std::string& group,
                       std::span<const std::string_view> payloads);
  Status BroadcastMany(const std::string& scope, const std::string& group,
                       std::span<const std::string> payloads);
  // To one member chosen at random among the group's members anywhere;
  // returns the member once it has the message in its queue. If the chosen
  // member or its node dies first, another member gets it. kNoMembers when
  // the group is empty.
  Result<MemberId> Dispatch(const std::string& scope, const std::string& group,
                            std::string_view payload);
  // Each payload as its own Dispatch, to a member picked at random for each,
  // handed to the broker wire::kMaxCastPayloads at a time with several such
  // requests in flight: one ZeroMQ message and one reply for many, which is
  // how to dispatch fast. Returns each payload's outcome, in order, as
  // Dispatch would have (the member that has it, or kNoMembers,
  // kUnavailable, kTimeout...): a failed one was not delivered, unless it is
  // kTimeout, and may be sent again. Fails as a whole only up front, with
  // nothing sent (a bad name; kTooLarge names the payload).
  Result<std::vector<Result<MemberId>>> DispatchMany(const std::string& scope,
                                                     const std::string& group,
                                                     std::span<const std::string_view> payloads);
  Result<std::vector<Result<MemberId>>> DispatchMany(const std::string& scope,
                                                     const std::string& group,
                                                     std::span<const std::string> payloads);
  // To one random member, which answers with Reply(); its answer, or
  // kNoResponders (empty group), kTimeout, or kUnavailable (the responder
  // died before answering).
  Result<Message> Request(const std::string& scope, const std::string& group,
                          std::string_view payload, std::chrono::milliseconds timeout);
  // Answers a request this member received, and waits for the broker to
  // confirm (kNotFound: answered already, timed out, or not this member's).
  Status Reply(const Message& request, std::string_view payload);
  // The same without waiting, for a responder with many requests at once:
  // a refusal comes later as an Outcome with ticket 0.
  Status ReplyAsync(const Message& request, std::string_view payload);
  // Directly to one member; returns once its queue has it. kNotFound when
  // there is no such member.
  Status Send(const MemberId& member, std::string_view payload);
  // Pipelined forms: a ticket now, an Outcome with it through Receive().
  Result<uint64_t> DispatchAsync(const std::string& scope, const std::string& group,
                                 std::string_view payload);
  // One request of a DispatchMany: 1 to wire::kMaxCastPayloads payloads, 256
  // KiB in all at most (kInvalidArgument otherwise); its Outcome has each
  // payload's result in `dispatched`.
  Result<uint64_t> DispatchManyAsync(const std::string& scope, const std::string& group,
                                     std::span<const std::string_view> payloads);
  Result<uint64_t> RequestAsync(const std::string& scope, const std::string& group,
                                std::string_view payload, std::chrono::milliseconds timeout);
  Result<uint64_t> SendAsync(const MemberId& member, std::string_view payload);
  // The largest payload the broker accepts.
  uint64_t max_message_bytes() const;
  // True once the broker has said this session is gone (it restarted, or
  // timed the session out) or the Client was closed: every call fails from
  // then on, and a new Client is needed. A broker that is down says nothing:
  // calls then fail with kTimeout or kUnreachable.
  bool session_lost() const;

  // ---- the name registry ----
  // Names are unique in the mesh: 1..255 bytes without control characters.
  // Writes go through the registry's leader and are acknowledged only once a
  // majority of its voters has them, so a "yes" survives the leader's death.
  // A name is released when its holder unregisters it, or its session ends,
  // or its node dies.
  //
  // Takes `name` for this member, with opaque metadata (at most 4 KiB). Again
  // by this member: ok, metadata replaced. kTaken: another member holds it
  // (*holder, if given, says which). kNoLeader: no leader could be reached
  // (e.g. this node is in a minority partition); nothing was registered.
  // kTimeout or kUnavailable: the outcome is unknown; registering again is
  // safe, since it is idempotent.
  Status Register(const std::string& name, std::string_view metadata = {},
                  MemberId* holder = nullptr);
  // kNotRegistered, kNotHolder (another member holds it: *holder, if given,
  // says which), or kNoLeader.
  Status Unregister(const std::string& name, MemberId* holder = nullptr);
  // From the local broker's copy of the registry, which may lag the leader
  // by a replication round (milliseconds). kNotRegistered when not held.
  Result<NameInfo> Whereis(const std::string& name);
  // Linearizable: answered by the leader once it has confirmed it still
  // leads; sees every registration acknowledged before the call. kNoLeader
  // when no leader can be reached.
  Result<NameInfo> WhereisConsistent(const std::string& name);
  // Names starting with `prefix` (all when empty), sorted, from the local copy.
  Result<std::vector<NameInfo>> Names(const std::string& prefix = "");
  // The matching names now, then a NameEvent through Receive() for every
  // registration and release of a matching name. Demonitor(ref) ends it.
  Result<NamesMonitorStart> MonitorNames(const std::string& prefix = "");
  // The registry's leader, term, and voters with their replication state.
  Result<LeaderInfo> Leader();
  // Sends to the member holding `name` (looked up in the local copy), as
  // Send() does; returns that member. kNotRegistered when nobody holds it.
  Result<MemberId> SendByName(const std::string& name, std::string_view payload);

  // Records: replicated key/value entries kept by the registry's voters, owned by no member:
  // they stay until deleted, whoever wrote them and whatever dies. Writes are acknowledged
  // once a majority of voters has them (kNoLeader in a minority; kTimeout/kUnavailable: unknown).
  // Keys follow the rules of names (1..255 bytes, no control characters: kInvalidArgument);
  // values are opaque bytes, at most kMaxRecordValueBytes (64 KiB: kTooLarge).
  // consistent=false reads the local copy (it may lag by a replication round);
  // true asks the leader, which answers once it has confirmed it still leads.
  Status PutRecord(const std::string& key, std::string_view value);
  Status CreateRecord(const std::string& key,
                      std::string_view value);  // kExists when the key is there
  Status DeleteRecord(const std::string& key);  // kNotFound
  Result<std::string> GetRecord(const std::string& key, bool consistent = false);  // kNotFound
  // Records whose key starts with `prefix` (all when empty), sorted by key.
  Result<std::vector<Record>> Records(const std::string& prefix = "", bool consistent = false);

  // ---- the mesh ----
  Result<std::vector<NodeInfo>> Nodes();
  Result<std::map<std::string, uint64_t>> Stats();

  // The next delivery, waiting up to `timeout`; kTimeout when none came.
  Result<Delivery> Receive(std::chrono::milliseconds timeout);
  // Hands every delivery that arrives within `timeout` to `handler`, in
  // order, on this thread; returns how many it handled, or the error that
  // stopped it (kTimeout is not an error here).
  Result<size_t> Consume(const std::function<void(const Delivery&)>& handler,
                         std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshbus
