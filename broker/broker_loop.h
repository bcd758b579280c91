// BrokerLoop: the inside of a Broker (private to broker/). One thread runs
// Run(); it owns every socket and every piece of state below, and nothing
// else touches them. Other threads reach it only through Post(), which queues
// a function and wakes the loop through an eventfd (cheaper to poll than a
// ZeroMQ pipe, and the queue needs a lock either way).
//
// The code is split by concern: broker.cc (sockets, the poll loop, timers,
// lifecycle), clients.cc (SDK sessions and their requests), peers.cc (the
// mesh: hello, heartbeats, deltas, resync, failure detection), messaging.cc
// (publish/subscribe, broadcast, dispatch, request/reply and direct sends),
// naming.cc (the name registry: its consensus, client calls, releases).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "broker/data_streams.h"
#include "broker/failure_detector.h"
#include "broker/group_table.h"
#include "broker/input_poller.h"
#include "broker/log.h"
#include "broker/options.h"
#include "broker/origin_tracker.h"
#include "broker/raft.h"
#include "broker/raft_storage.h"
#include "broker/registry.h"
#include "broker/slot_table.h"
#include "broker/topic_index.h"
#include "topics/wire.h"

namespace meshbus {

// A ZeroMQ message that takes `bytes` over without a copy, and frees them
// once sent: how the loop hands over the frames it packs.
inline zmq::message_t MessageOwning(std::string&& bytes) {
  auto owned = std::make_unique<std::string>(std::move(bytes));
  zmq::message_t m(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned.get());
  owned.release();  // the message owns it now
  return m;
}

// Counters reported by Stats(); every dropped or refused message is in one.
struct BrokerCounters {
  uint64_t client_messages_in = 0;
  uint64_t client_messages_out = 0;
  uint64_t client_batches_out = 0;  // ZeroMQ messages that carried several of them
  uint64_t client_bad_messages = 0;
  uint64_t client_deliveries_lost = 0;  // client queue full or client gone
  uint64_t client_replies_delayed = 0;  // replies that waited in a backlog
  uint64_t sessions_opened = 0;
  uint64_t sessions_ended = 0;
  uint64_t sessions_timed_out = 0;
  uint64_t peer_messages_in = 0;
  uint64_t peer_bad_messages = 0;
  uint64_t peer_stale_messages = 0;    // from an old incarnation
  uint64_t peer_unknown_messages = 0;  // from a node we have not met
  uint64_t peer_blocked_messages = 0;  // test partitions
  uint64_t peer_sends_failed = 0;
  uint64_t deltas_sent = 0;
  uint64_t deltas_dropped_on_purpose = 0;
  uint64_t deltas_applied = 0;
  uint64_t delta_gaps = 0;
  uint64_t delta_inconsistencies = 0;  // a leave of a member we do not have
  uint64_t resyncs_requested = 0;
  uint64_t snapshots_served = 0;
  uint64_t snapshots_applied = 0;
  uint64_t peers_met = 0;
  uint64_t peers_purged = 0;
  uint64_t links_refused = 0;  // links not opened: the cap, or ZeroMQ said no
  uint64_t loop_stalls = 0;    // turns that came late: timers were moved on
  uint64_t probes_sent = 0;
  // Messaging. "in" counts what clients sent, "out" what reached a client.
  uint64_t client_bytes_in = 0;
  uint64_t client_bytes_out = 0;
  uint64_t publishes_in = 0;
  uint64_t broadcasts_in = 0;
  uint64_t dispatches_in = 0;
  uint64_t requests_in = 0;
  uint64_t responses_in = 0;
  uint64_t sends_in = 0;
  uint64_t messages_delivered = 0;  // publishes, broadcasts, ... handed to a client
  uint64_t messages_too_large = 0;
  uint64_t slow_consumers = 0;     // times a session began to lose deliveries
  uint64_t data_messages_out = 0;  // publishes and broadcasts sent to peers
  uint64_t data_batches_out = 0;   // the ZeroMQ messages that carried them
  uint64_t data_bytes_out = 0;
  uint64_t data_messages_in = 0;
  uint64_t data_batches_in = 0;
  uint64_t data_bytes_in = 0;
  uint64_t data_marks_out = 0;
  uint64_t data_gaps = 0;           // losses found in a peer's data streams
  uint64_t data_messages_lost = 0;  // how many messages those gaps held
  uint64_t data_duplicates = 0;
  uint64_t data_undeliverable = 0;  // for a topic or group with no local taker left
  uint64_t forwards_sent = 0;
  uint64_t call_batches_out = 0;  // ZeroMQ messages that carried several calls to a peer
  uint64_t call_batches_in = 0;
  uint64_t call_runs_out = 0;  // runs of forwards or acks sent under one header
  uint64_t call_runs_in = 0;
  uint64_t forwards_received = 0;
  uint64_t forwards_refused = 0;  // a member here could not take one
  uint64_t redispatches = 0;
  uint64_t dispatch_failures = 0;  // dispatches and sends answered with an error
  uint64_t request_timeouts = 0;
  uint64_t request_failures = 0;     // no responder left, or it died before answering
  uint64_t responses_unclaimed = 0;  // came after the request timed out or its requester left
  uint64_t data_dropped_on_purpose = 0;
  uint64_t subscriptions_unconfirmed = 0;  // a peer did not confirm within a second
  // The name registry.
  uint64_t name_calls = 0;            // registry writes and consistent reads from clients
  uint64_t name_calls_forwarded = 0;  // sent to the leader on another node
  uint64_t name_calls_served = 0;     // as the leader, for this or another broker
  uint64_t name_no_leader = 0;        // answered no_leader
  uint64_t name_timeouts = 0;         // no answer from the leader in time: outcome unknown
  uint64_t name_releases = 0;         // releases proposed for ended sessions and dead nodes
  uint64_t name_bad_calls = 0;        // a peer's call it had no right to make, or garbled
  uint64_t name_answers_stale = 0;    // after the call timed out or went to another leader
  uint64_t raft_messages_in = 0;
  uint64_t raft_messages_out = 0;
  uint64_t raft_bad_messages = 0;
  uint64_t raft_foreign_messages =
      0;                          // from a broker with another voter set, or before ours is known
  uint64_t raft_bad_entries = 0;  // committed entries that are not registry commands
  uint64_t raft_snapshots_taken = 0;
  uint64_t raft_snapshots_installed = 0;  // from the leader: this broker was too far behind
};

class BrokerLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // Binds every socket; an error here leaves nothing running.
  static Result<std::unique_ptr<BrokerLoop>> Create(BrokerOptions options);
  ~BrokerLoop();

  void StartThread();
  void Stop(bool graceful);
  // Runs `fn` on the loop thread, soon. Safe from any thread.
  void Post(std::function<void()> fn);
  // Runs `fn` on the loop thread and waits for it. Not from the loop thread.
  void RunAndWait(std::function<void()> fn);

  const std::string& node() const { return self_.node; }
  uint64_t incarnation() const { return self_.incarnation; }
  const std::string& client_endpoint() const { return client_endpoint_; }
  const std::string& calls_endpoint() const { return endpoints_.calls; }

  // ---- loop-thread only ----
  std::map<std::string, uint64_t> CounterMap() const;
  void SetBlockedPeers(std::vector<std::string> nodes);
  void DropNextDeltas(int n) { drop_next_deltas_ += n; }
  void DropNextData(int n) { drop_next_data_ += n; }
  void FailNextCallSends(int n) { fail_next_call_sends_ += n; }
  void FailNextDeliveryFlushes(int n) { fail_next_delivery_flushes_ += n; }
  // Bytes sent to clients and not yet consumed, and waiting in backlogs.
  uint64_t QueuedClientBytes() const;
  void ForceResync();

 private:
  // One message to a client: its header and, for some, a payload frame.
  struct Frame {
    std::string body;
    std::optional<zmq::message_t> payload;
  };
  // A dispatch waiting in a member's batch. It is confirmed once the batch
  // is handed to ZeroMQ, or goes to another member if it cannot be: to the
  // broker it came from (an ack for its forward `id`), or, from a sender
  // here (`from` is this broker), by its pending id.
  struct BatchedDispatch {
    wire::PeerId from;
    uint64_t id = 0;
  };
  struct Session {
    uint64_t id = 0;
    uint64_t token = 0;
    std::string routing_id;
    std::string name;
    TimePoint last_heard;
    std::map<std::pair<std::string, std::string>, uint32_t> joins;
    std::set<uint64_t> monitors;
    uint64_t lost = 0;          // deliveries lost since the last gap notice
    std::deque<Frame> backlog;  // replies (and gap notices) not yet queued
    // Publishes, broadcasts and dispatches for it this turn, handed to
    // ZeroMQ as one message at the end of the turn, or before anything else
    // for it: the frame of a Messages batch (wire::AppendBatchEntry), with
    // the header of its last entry, the bytes the client will count, and
    // the dispatches among them.
    std::string batch_frame, batch_header;
    uint32_t batch_count = 0;
    uint64_t batch_bytes = 0;
    std::vector<BatchedDispatch> batch_dispatches;
    // The last batch's sizes: the next is made with room for as much (up to
    // kBatchReserveCap; past it a batch grows in a few steps anyway), so that
    // it does not grow (and copy itself) step by step.
    size_t last_batch_frame = 0, last_batch_dispatches = 0;
    uint64_t outstanding_bytes = 0;  // sent to the client and not yet consumed
    size_t pending = 0;              // its dispatches, requests and sends awaiting an outcome
    std::set<std::string> serving;   // reply_to of requests it was handed and has not answered
    std::set<uint64_t> name_monitors;
    bool registered = false;  // made a register call: its names are released when it ends
  };
  struct MonitorReg {
    uint64_t ref = 0;
    uint64_t session = 0;
    std::string scope;
    std::optional<std::string> group;
  };
  // One DEALER to one peer's calls ROUTER, with a monitor of its connection.
  struct Link {
    std::string endpoint;
    zmq::socket_t dealer;
    zmq::socket_t monitor;
    PolledSocket dealer_input, monitor_input;
    std::string node;  // known once a welcome came back on it
    TimePoint last_hello{};
    int unanswered_hellos = 0;
    bool is_seed = false;  // never given up on
  };
  struct Peer {
    wire::PeerId id;
    wire::PeerEndpoints endpoints;
    OriginTracker tracker;
    TimePoint met_at;
    int resync_requests = 0;  // since the last snapshot applied: for backoff
  };
  // A dispatch, request or direct send that this broker answers for, from
  // the moment a local client made it until it has an outcome. The payload
  // is kept until a member has it, so that it can go to another member.
  struct Pending {
    uint64_t id = 0;
    wire::MessageKind kind = wire::MessageKind::kDispatch;
    uint64_t requester = 0;  // session
    uint64_t req = 0;
    // What the payloads of one DispatchMany share: its frame (one allocation
    // for them all, freed when the last has an outcome) and its header.
    struct Shared {
      zmq::message_t frame;
      std::string scope, group;
      MemberId sender;
    };
    std::string scope, group;     // unless `shared` has them
    MemberId sender;              // the same
    MemberId target;              // the member it went to last
    bool routed = false;          // target is set: it went to a member, or was addressed to one
    bool handed = false;          // the target's broker confirmed the member has it
    std::vector<MemberId> tried;  // the members before target, each once (mostly none)
    // The frame its payload is in, at offset: the request's, or its payload
    // frame; shared by the payloads of a DispatchMany.
    zmq::message_t payload;
    std::shared_ptr<const Shared> shared;
    uint32_t offset = 0, size = 0;
    uint32_t timeout_ms = 0;
    TimePoint deadline;
    uint64_t batch = 0;  // its DispatchMany's, if it is one payload of one
    uint32_t index = 0;  // which payload

    std::string_view Payload() const {
      return (shared ? shared->frame : payload).to_string_view().substr(offset, size);
    }
    const std::string& Scope() const { return shared ? shared->scope : scope; }
    const std::string& Group() const { return shared ? shared->group : group; }
    const MemberId& Sender() const { return shared ? shared->sender : sender; }
  };
  // A request handed to a local member, until it answers.
  struct Serving {
    uint64_t session = 0;
    TimePoint deadline;
  };
  struct DeadPeer {
    uint64_t incarnation = 0;
    std::string calls_endpoint;
    TimePoint died_at;
    std::string reason;
    bool left = false;  // said bye: its incarnation never comes back
  };

  // A registry write or consistent read this broker answers for: a client's,
  // or a release of its own (session 0). It goes to the leader, or waits
  // for one to be known.
  struct NameCall {
    uint64_t id = 0;
    uint64_t session = 0, req = 0;
    wire::NameCallOp op = wire::NameCallOp::kWrite;
    std::string data;     // an encoded registry command, or the name or key to read
    std::string name;     // for replies (a record's key, or a key prefix)
    std::string sent_to;  // the leader it went to; "" while it waits for one
    // false: unregister, create and delete of a record, whose retry could answer wrongly
    bool retry_if_leader_dies = true;
    bool maybe_done = false;  // a leader that died had it: giving up is "unknown"
    TimePoint waiting_since;  // without a leader for kLeaderWait: no_leader
    TimePoint give_up;        // then: no_leader, or unknown if it may have been done
  };
  // A call the leader took on: answered when its entry (or read) comes out.
  struct CallOrigin {
    wire::PeerId from;  // self_ for our own calls
    uint64_t id = 0;
    uint64_t term = 0;  // proposals: the term the entry was proposed in
    wire::NameCallOp op = wire::NameCallOp::kWrite;  // reads: what to read
    std::string name;                                // reads: the name, key or key prefix
  };
  struct NameMonitor {
    uint64_t session = 0;
    std::string prefix;
  };

  explicit BrokerLoop(BrokerOptions options);
  Status Bind();
  void Run();

  // broker.cc
  void PollOnce();
  void DrainPosted();
  template <typename Handler>
  bool Drain(zmq::socket_t& socket, Handler&& handle);
  void OnTimers(TimePoint now);
  TimePoint NextTimer() const;
  void FlushDeltas();
  void NotifyMonitors(const GroupChanges& changes);
  // Where to collect a change in `scope`: nowhere when nobody monitors it.
  GroupChanges* ChangesFor(const std::string& scope, GroupChanges* changes) const {
    return monitors_by_scope_.count(scope) ? changes : nullptr;
  }
  bool SendFrames(zmq::socket_ref socket, const std::string& routing_id, const std::string& body,
                  zmq::message_t* payload = nullptr);

  // clients.cc
  void OnClientMessage(std::vector<zmq::message_t>& frames, TimePoint now);
  // A request's payload: `bytes`, all of a payload frame or the end of the
  // request's own frame. A call that keeps it takes `frame` whole.
  struct RequestPayload {
    zmq::message_t& frame;
    std::string_view bytes;
  };
  void HandleRequest(const std::string& rid, wire::ClientRequest& request, RequestPayload* payload,
                     TimePoint now);
  void Reply(const std::string& rid, uint64_t req, Status status, wire::ReplyBody body = {});
  // A batched delivery of `bytes` would not fit the session's batch.
  bool BatchIsFull(const Session& session, uint64_t bytes) const;
  // Queues one message for a session, in order; false when it was lost (and
  // counted). `payload`, if given, is consumed.
  bool Deliver(Session& session, const wire::ClientInbound& message,
               zmq::message_t* payload = nullptr);
  // The same with the message encoded: `batchable` for a publish, broadcast
  // or dispatch (`dispatch` says which one it is), whose payload is then
  // only read (copied into the session's batch), never sent or kept.
  // `refusable`: a message whose sender is told when it does not fit (a
  // dispatch, request or send), so it is not counted lost.
  bool DeliverEncoded(Session& session, const std::string& body, bool is_reply, bool batchable,
                      zmq::message_t* payload, const BatchedDispatch* dispatch = nullptr,
                      bool refusable = false);
  // Sends now if the client's queue has room (bytes and ZeroMQ's); a
  // batchable message joins the session's batch.
  bool SendToClient(Session& session, const std::string& body, zmq::message_t* payload,
                    bool batchable = false, const BatchedDispatch* dispatch = nullptr);
  // Hands a session's batch to ZeroMQ. If its queue is full, the publishes
  // and broadcasts in it are lost, counted and owed to the client as a gap,
  // and its dispatches go to other members.
  void FlushDeliveries(Session& session);
  void FlushAllDeliveries();
  // Confirms the dispatches that were in a member's batch, or (`why` not
  // ok) has them routed to other members.
  void SettleDispatches(uint64_t session, std::span<const BatchedDispatch> dispatches,
                        const Status& why);
  void SettleAll();  // what FlushDeliveries and ended sessions left in unsettled_
  // The end of a turn: every batch (data, deliveries, calls) handed over.
  void FlushTurn(TimePoint now);
  void Backlog(Session& session, std::string body, zmq::message_t* payload = nullptr);
  void FlushBacklogs();
  // A session that lost deliveries is told how many as soon as it has room.
  void SendOwedGap(Session& session);
  Session* SessionByRoute(const std::string& rid);
  void EndSession(uint64_t session_id, const std::string& why);
  void CheckSessions(TimePoint now);
  wire::MonitorBody MonitorSnapshot(const MonitorReg& reg) const;

  // messaging.cc
  void OnMessagingRequest(Session& session, wire::ClientRequest& request, RequestPayload& payload,
                          TimePoint now);
  void OnCast(Session& session, const wire::ClientRequest& request,
              std::span<const std::string_view> payloads);
  // Answers once every live peer's XPUB has the subscription (or a second
  // has passed), so that what is published after it returns is not missed.
  void OnSubscribe(Session& session, const wire::Subscribe& sub, TimePoint now);
  void OnSubscriptionCheck(const wire::PeerSubscriptionCheck& check, TimePoint now);
  // A peer confirmed a ticket, or will not: done when none is left waiting.
  void SubscriptionConfirmed(const std::string& ticket, const std::string& node);
  void FinishSubscribe(const std::string& ticket, bool reply);
  void OnRespond(Session& session, const wire::Respond& respond, zmq::message_t& payload);
  // Hands a message to a local session; false when its queue is full. A
  // dispatch (`dispatch` given) waits in the session's batch: see
  // SettleDispatches.
  bool DeliverMessage(Session& session, const wire::Message& message, const zmq::message_t& payload,
                      const BatchedDispatch* dispatch = nullptr);
  // Numbers a message for the peers that want it and adds it to the turn's
  // batch (a copy of the payload); FlushData sends the batch.
  void PublishData(const std::string& data_topic, uint64_t session, std::string_view payload);
  void FlushData();
  void OnDataMessage(std::vector<zmq::message_t>& frames, TimePoint now);
  // A peer's (un)subscription, as our data XPUB reports it.
  void OnDataSubscription(std::vector<zmq::message_t>& frames);
  // True when a local client holds the subscription that `stream` is.
  bool WantsStream(const std::string& stream) const;
  // The local sessions a stream's losses concern.
  void StreamTargets(const std::string& stream, std::vector<uint64_t>* sessions) const;
  // The local sessions a data topic reaches.
  void DataTargets(const std::string& data_topic, std::vector<uint64_t>* sessions) const;
  // The same for a broadcast to (scope, group), with nothing to parse.
  void GroupTargets(const std::string& scope, const std::string& group,
                    std::vector<uint64_t>* sessions) const;
  void SendDataMarks();
  // Tries members until one has the pending message or none is left.
  // `why_not`: why the member tried last could not take it, if one was.
  void Route(uint64_t pending_id, TimePoint now, Status why_not = Status::Ok());
  void Resolve(uint64_t pending_id, Status status, wire::ReplyBody body = {},
               zmq::message_t* payload = nullptr);
  // What the forwards of one run share, worked out once for them all: the
  // message header (reply_to aside, theirs is the same), and whether each
  // of its few target sessions is in the group.
  struct ForwardRunMemo {
    std::optional<wire::Message> message;
    std::vector<std::pair<uint64_t, bool>> joined;  // session -> in the group
  };
  void OnForward(const wire::PeerForward& forward, zmq::message_t& payload, TimePoint now,
                 ForwardRunMemo* memo = nullptr);
  void OnForwardAck(const wire::PeerId& from, uint64_t id, const Status& status, TimePoint now);
  void OnResponse(const wire::PeerResponse& response, zmq::message_t& payload);
  // A response to a request this broker made (pending_id) or relayed.
  void AnswerRequester(const MemberId& reply_to, Status status, const MemberId& responder,
                       zmq::message_t& payload);
  void StopServing(const std::string& reply_to, const Status& why);
  // Drops a served request from serving_ and from its session's index.
  std::map<std::string, Serving>::iterator ForgetServing(
      std::map<std::string, Serving>::iterator it);
  void OnPeerGoneMessaging(const std::string& node);
  void OnSessionGoneMessaging(Session& session);
  void AddLocalGroup(const std::string& scope, const std::string& group);
  void RemoveLocalGroup(const std::string& scope, const std::string& group);
  void MessagingTimers(TimePoint now);

  // naming.cc
  // Opens the registry's storage and, when the voters are known, its Raft.
  Status StartRegistry();
  Status CreateRaft();
  void OnNameRequest(Session& session, const std::string& rid, wire::ClientRequest& request,
                     TimePoint now);
  void OnSendName(Session& session, wire::SendName& send, RequestPayload& payload, TimePoint now);
  void StartNameCall(NameCall call, TimePoint now);
  // Sends a call to the leader (or takes it on, as the leader), or leaves it waiting.
  void RouteNameCall(NameCall& call, TimePoint now);
  void FinishNameCall(uint64_t id, Status status, std::optional<MemberId> holder = std::nullopt,
                      std::string metadata = {}, std::vector<wire::Record> records = {});
  // As the leader: proposes a write, or starts a linearizable read.
  void TakeNameCall(const wire::PeerId& from, uint64_t id, wire::NameCallOp op,
                    const std::string& data);
  void AnswerNameCall(const CallOrigin& origin, Status status,
                      std::optional<MemberId> holder = std::nullopt, std::string metadata = {},
                      std::vector<wire::Record> records = {});
  // A consistent read the leader confirmed: answered from the registry now.
  void AnswerRead(const CallOrigin& origin);
  void OnPeerNameCall(const wire::PeerNameCall& call);
  // The leader's answer to call `id` (our own when `from` is us).
  void OnNameAnswer(const std::string& from, uint64_t id, Status status,
                    std::optional<MemberId> holder, std::string metadata,
                    std::vector<wire::Record> records, TimePoint now);
  void OnPeerRaft(const wire::PeerRaft& message, TimePoint now);
  void SendRaft(const raft::Message& m);
  void HandleRaftReady(TimePoint now);
  void ApplyEntry(const raft::Entry& entry);
  void RestoreRegistry(const raft::Snapshot& snapshot);
  void NotifyNameMonitors(const std::vector<registry::Change>& changes);
  void MaybeCompact();
  // The leader to send calls to: "" when none is known or it went quiet.
  std::string KnownLeader(TimePoint now) const;
  // A peer announced its voter set (at hello).
  void OnPeerVoters(const std::string& node, const std::vector<std::string>& voters,
                    uint64_t epoch);
  // Non-zero when this broker votes and keeps the registry in memory.
  uint64_t RegistryEpoch() const;
  void RestartRegistryCopy(const std::string& voter);
  void OnPeerGoneNaming(const std::string& node, TimePoint now);
  void OnSessionGoneNaming(Session& session);
  void ReleaseNames(registry::Command command, TimePoint now);
  void SweepReleases(TimePoint now);
  void NamingTimers(TimePoint now);
  wire::LeaderBody LeaderStatus() const;
  void OnRegistryStatus(const wire::PeerRegistryStatus& status);
  // Why this broker takes no part in the registry, or "".
  std::string RegistryProblem() const;

  // peers.cc
  void OnControlMessage(zmq::message_t& frame, TimePoint now);
  void OnCallsMessage(std::vector<zmq::message_t>& frames, TimePoint now);
  void OnLinkMessage(Link& link, zmq::message_t& frame, TimePoint now);
  // Returns whether the monitor may have more events (it stopped at its budget).
  bool OnLinkEvent(Link& link, TimePoint now);
  // Decodes and screens a peer message; nullopt when it was dropped (counted).
  std::optional<wire::PeerMessage> DecodePeer(const zmq::message_t& frame);
  // True when `from` is a live peer of that incarnation (and notes liveness).
  bool FromLivePeer(const wire::PeerId& from, TimePoint now);
  void MeetPeer(const wire::PeerHello& hello, TimePoint now);
  void ApplySnapshot(Peer& peer, const wire::Snapshot& snapshot, TimePoint now);
  void ApplyOps(Peer& peer, const std::vector<wire::DeltaOp>& ops, TimePoint now);
  // A gap in `peer`'s deltas was found (`seen` says how): resync.
  void OnGap(Peer& peer, const std::string& seen, TimePoint now);
  void RequestSync(Peer& peer, TimePoint now);
  void DeclareDead(const std::string& node, const std::string& reason, TimePoint now);
  // The link to a calls endpoint, opened if need be; nullptr when it cannot
  // be (too many links, or ZeroMQ refused), counted in links_refused.
  Link* EnsureLink(const std::string& endpoint);
  void SendHello(Link& link, TimePoint now);
  // `payload`, if given, is consumed when the send succeeds. What waits in
  // the peer's call batch goes first.
  bool SendToPeer(const std::string& node, const wire::PeerMessage& message,
                  zmq::message_t* payload = nullptr);
  // The link to `node`'s calls socket; nullptr when it is not a live peer,
  // is blocked (a test's partition), or has no link (a failed send, counted
  // unless the caller counts its failure itself).
  Link* CallLink(const std::string& node, bool count_unlinked = true);
  // An ack or response for the peer's call batch, sent at the end of the
  // turn (or when full, or before any other call to the peer). False when
  // the peer cannot be reached now.
  bool QueueCall(const std::string& node, const wire::PeerMessage& message,
                 std::string_view payload);
  // An ok ack of forward `id`, without building its message.
  bool QueueAck(const std::string& node, uint64_t id);
  // The same for a pending call forwarded to `target`, which is routed
  // elsewhere if the batch cannot be sent. Consecutive forwards that share
  // their header go as one run.
  bool QueueForward(const Pending& p, const MemberId& target);
  // The batch a call of `payload_bytes` joins (a full one is sent first);
  // nullptr when the node cannot be reached.
  struct CallBatch;
  CallBatch* CallBatchFor(const std::string& node, size_t payload_bytes);
  // `node` by value: callers pass the batch map's own key, which the flush erases.
  void FlushCalls(std::string node, TimePoint now);
  void FlushAllCalls(TimePoint now);
  // Appends the batch's open run as an entry (a run of one as a plain call).
  void CloseCallRun(CallBatch& b);
  void AppendCallEntry(CallBatch& b, const wire::PeerMessage& message, std::string_view payload);
  void OnCallBatch(const wire::PeerCallBatch& batch, const zmq::message_t& entries, TimePoint now);
  // `payloads`: one per forward of the run, split and checked.
  void OnForwardRun(const wire::PeerForwardRun& run, std::span<const std::string_view> payloads,
                    TimePoint now);
  void OnAckRun(const wire::PeerAckRun& run, TimePoint now);
  void PublishControl(const wire::PeerMessage& message);
  wire::PeerHello MakeHello(bool is_welcome);
  wire::Snapshot SelfSnapshot();
  void PeerTimers(TimePoint now);

  BrokerOptions options_;
  wire::PeerId self_;
  wire::PeerEndpoints endpoints_;
  std::string client_endpoint_;
  Logger log_;

  zmq::context_t context_;
  zmq::socket_t clients_;
  zmq::socket_t calls_;
  zmq::socket_t control_pub_, control_sub_;
  zmq::socket_t data_pub_, data_sub_;
  int wake_fd_ = -1;    // eventfd: Post() wakes the loop
  std::mutex post_mu_;  // guards posted_
  std::deque<std::function<void()>> posted_;

  std::thread thread_;
  bool stopping_ = false;
  bool graceful_stop_ = true;
  std::atomic<bool> running_{false};

  GroupTable table_;
  BrokerCounters counters_;
  uint64_t seq_ = 0;  // last delta number of our own state
  std::vector<wire::DeltaOp> pending_ops_;
  int drop_next_deltas_ = 0;
  int drop_next_data_ = 0;
  int fail_next_call_sends_ = 0;
  int fail_next_delivery_flushes_ = 0;

  uint64_t next_session_ = 1;
  std::unordered_map<uint64_t, Session> sessions_;
  std::unordered_map<std::string, uint64_t> session_by_route_;
  std::set<uint64_t> backlogged_;   // sessions with a non-empty backlog
  std::vector<uint64_t> batching_;  // sessions that may have a batch
  static constexpr size_t kMaxClientBatchBytes = 256 << 10;
  static constexpr size_t kMaxBacklog = 10000;
  uint64_t next_monitor_ = 1;
  std::unordered_map<uint64_t, MonitorReg> monitors_;
  std::unordered_map<std::string, std::set<uint64_t>> monitors_by_scope_;

  std::map<std::string, std::unique_ptr<Link>> links_;  // by calls endpoint
  std::map<std::string, Peer> peers_;                   // live peers by node
  std::map<std::string, DeadPeer> dead_;
  std::unordered_set<std::string> blocked_;
  FailureDetector detector_;
  uint64_t next_nonce_ = 1;
  int next_monitor_socket_ = 0;

  // Messaging state (messaging.cc).
  TopicIndex topics_;                                       // local subscriptions
  std::unordered_map<std::string, uint32_t> local_groups_;  // broadcast data topic -> sessions
  OutboundStreams outbound_;
  InboundStreams inbound_;
  // Calls awaiting an outcome, by id (the id peers and reply_to echo back).
  using PendingTable = SlotTable<Pending>;
  PendingTable pending_;
  ForwardRunMemo forward_run_memo_;  // OnForwardRun's, kept for its capacity
  std::set<std::pair<TimePoint, uint64_t>> pending_deadlines_;  // requests' timeouts
  // Forwarded dispatches and sends awaiting their ack, in deadline order at
  // no allocation per forward: every wait is kForwardAckTimeout (or a
  // little more, to keep the order). An entry whose call was settled since,
  // or forwarded again, is dropped when it comes to the front, or when the
  // deque is compacted (it may not hold more than a few times the pending
  // calls: one unconfirmed forward must not keep millions behind it).
  std::deque<std::pair<TimePoint, uint64_t>> ack_deadlines_;
  // A DispatchMany: its payloads are pendings of their own, and its one
  // reply goes once every one has an outcome.
  struct DispatchBatch {
    uint64_t requester = 0;  // session
    uint64_t req = 0;
    size_t unresolved = 0;
    std::vector<wire::DispatchOutcome> outcomes;
  };
  std::unordered_map<uint64_t, DispatchBatch> dispatch_batches_;
  // Dispatches whose member's batch was sent (or could not be, or whose
  // member ended), to be confirmed or rerouted at the end of the turn.
  struct Unsettled {
    uint64_t session = 0;
    std::vector<BatchedDispatch> dispatches;
    Status why;
  };
  std::vector<Unsettled> unsettled_;
  uint64_t next_dispatch_batch_ = 1;
  std::map<std::string, Serving> serving_;  // by reply_to
  std::mt19937_64 rng_{std::random_device{}()};
  std::vector<uint64_t> targets_;  // reused per message
  // The last message DeliverMessage encoded: a stream from one sender to
  // many sessions, or in a batch, is encoded once.
  wire::Message last_message_;
  std::string last_message_body_;
  std::vector<std::pair<std::string, uint64_t>> streams_;  // reused per message
  bool forget_streams_ = false;  // a subscription went: drop streams nobody wants
  // Consecutive data messages of one data topic, sent as one when the topic
  // changes, the batch is full, or the turn ends: a ZeroMQ message per
  // publish cost more than the rest of the path (see the README).
  struct DataBatch {
    std::string data_topic;
    std::vector<std::pair<std::string, uint64_t>> streams;  // the first message's numbers
    std::vector<uint64_t> sessions;
    std::string payloads;  // wire::AppendSized, one per session
    size_t bytes = 0;      // of the payloads themselves
  };
  std::vector<std::string_view> data_payloads_;  // OnDataMessage's, kept for the capacity
  std::vector<std::string_view> cast_payloads_;  // OnMessagingRequest's, the same
  // The last publish or broadcast request decoded, and its bytes. A stream
  // of them repeats its request byte for byte (the SDK encodes it once),
  // and msgpack is self-delimiting: a frame that starts with these bytes
  // holds this request, checked already, and its payload after them.
  struct LastCast {
    std::string bytes;
    wire::ClientRequest request;
  };
  LastCast last_cast_;
  DataBatch data_batch_;
  // A turn's forwards, acks and responses to one peer (wire::PeerCallBatch).
  struct CallBatch {
    std::string entries;             // wire::AppendBatchEntry
    uint32_t count = 0;              // entries
    uint32_t calls = 0;              // forwards, acks and responses, each of a run counted
    uint32_t runs = 0;               // entries that are runs
    bool lone_has_payload = false;   // the first entry's: a batch of one goes as it is
    std::vector<uint64_t> forwards;  // their pending calls, to route elsewhere if it fails
    // The last entry, while it may still grow: forwards that share their
    // header, or ok acks (wire::PeerForwardRun, wire::PeerAckRun).
    std::optional<wire::PeerForwardRun> forward_run;
    uint64_t run_batch = 0;    // the DispatchMany that opened it: its payloads share the header
    std::string run_payloads;  // wire::AppendSized, one per forward of the run
    std::optional<wire::PeerAckRun> ack_run;
  };
  std::map<std::string, CallBatch> call_batches_;  // by node
  static constexpr size_t kMaxCallBatchBytes = 256 << 10;
  static constexpr size_t kBatchReserveCap = 32 << 10;
  static constexpr size_t kMaxDataBatchBytes = 256 << 10;
  // Subscriptions waiting for their peers' confirmation, by ticket.
  struct SubscribeCheck {
    uint64_t session = 0;
    uint64_t req = 0;
    std::set<std::string> waiting;  // peer nodes
    TimePoint deadline;
  };
  std::map<std::string, SubscribeCheck> subscribe_checks_;
  uint64_t next_ticket_ = 1;
  // The other side: tickets our XPUB has seen, and peers waiting for one.
  std::unordered_set<std::string> seen_tickets_;
  std::map<std::string, std::pair<std::string, TimePoint>> awaited_tickets_;
  static constexpr std::chrono::milliseconds kSubscribeConfirmTimeout{1000};
  TimePoint next_serving_sweep_{};
  // A forward not confirmed in this long is answered with a timeout: the
  // member may have it, so it is not sent elsewhere.
  static constexpr std::chrono::milliseconds kForwardAckTimeout{5000};
  static constexpr size_t kMaxMarksPerRound = 10000;
  static constexpr size_t kMaxPendingPerSession = 10000;

  // The name registry (naming.cc). raft_ is empty until the voters are
  // known (a broker with seeds and no --voters learns them from a peer).
  std::vector<std::string> voters_;  // sorted
  std::unique_ptr<raft::RaftStorage> raft_storage_;
  raft::DurableState recovered_;  // until raft_ is created
  std::optional<raft::Raft> raft_;
  std::string raft_failure_;  // storage failed: this broker stopped taking part
  registry::Registry registry_;
  std::map<std::string, std::vector<std::string>> voter_conflicts_;  // peer -> its voter set
  std::map<std::string, uint64_t> voter_epochs_;  // in-memory voters: see PeerHello
  std::map<uint64_t, NameCall> name_calls_;
  uint64_t next_name_call_ = 1;
  std::map<uint64_t, CallOrigin> proposals_;  // leader: by log index
  std::map<uint64_t, CallOrigin> reads_;      // leader: by read request id
  uint64_t next_read_ = 1;
  std::unordered_map<uint64_t, NameMonitor> name_monitors_;
  // leader() calls on a follower, waiting for the leader's replication view.
  struct StatusCall {
    uint64_t session = 0, req = 0;
    std::string leader;
    TimePoint deadline;
  };
  std::map<uint64_t, StatusCall> status_calls_;
  static constexpr std::chrono::milliseconds kStatusTimeout{500};
  std::set<MemberId> releasing_members_;
  std::set<std::pair<std::string, uint64_t>> releasing_nodes_;
  std::set<std::pair<std::string, uint64_t>> readmitting_nodes_;
  TimePoint next_raft_tick_{};
  TimePoint next_release_sweep_{};
  TimePoint leader_heard_{};
  TimePoint became_leader_{};
  TimePoint started_{};
  // A call waits this long for a leader to be known before no_leader: about
  // one election, so that a call made during a failover succeeds.
  static constexpr std::chrono::milliseconds kLeaderWait{2000};
  // A call sent to the leader and not answered in this long: outcome unknown.
  static constexpr std::chrono::milliseconds kNameCallTimeout{5000};
  static constexpr std::chrono::milliseconds kReleaseSweep{500};
  // A leader releases the names of a node it has not seen for this long
  // since it leads (a node that died while no leader watched).
  static constexpr std::chrono::milliseconds kUnseenHolderGrace{10000};

  // The inbound sockets' input, as the poller sees it; set up by Bind.
  enum InputIndex {
    kClientsInput,
    kCallsInput,
    kControlInput,
    kDataInput,
    kSubscriptionsInput,  // data_pub_: the peers' subscriptions
    kInputCount
  };
  std::array<PolledSocket, kInputCount> inputs_;
  InputPoller poller_;
  // Reused by every turn of the loop, to spare allocations.
  std::vector<PolledSocket*> polled_;
  std::vector<Link*> poll_links_;
  std::vector<zmq::message_t> frames_;

  static constexpr std::chrono::milliseconds kStallThreshold{100};
  // Bounds on what peers can make us open (each link is three sockets).
  static constexpr size_t kMaxLinks = 200;
  static constexpr int kMaxDialsPerHello = 32;
  static constexpr int kHellosBeforeGivingUp = 20;
  static constexpr std::chrono::milliseconds kResyncRetry{500};
  TimePoint last_turn_{};
  TimePoint next_heartbeat_{};
  TimePoint next_hello_retry_{};
  TimePoint next_session_check_{};
};

}  // namespace meshbus
