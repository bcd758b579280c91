// SDK sessions: hello, heartbeats, requests, monitors and deliveries.
#include <random>
#include <utility>

#include "broker/broker_loop.h"

namespace meshbus {
namespace {

uint64_t RandomToken() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t t = rng();
  return t == 0 ? 1 : t;
}

}  // namespace

BrokerLoop::Session* BrokerLoop::SessionByRoute(const std::string& rid) {
  auto it = session_by_route_.find(rid);
  if (it == session_by_route_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : &s->second;
}

void BrokerLoop::Reply(const std::string& rid, uint64_t req, Status status, wire::ReplyBody body) {
  // As the variant from the start: converting a Reply to it copies the body.
  const wire::ClientInbound reply(wire::Reply{req, std::move(status), std::move(body)});
  if (Session* s = SessionByRoute(rid)) {
    Deliver(*s, reply);
    return;
  }
  // No session (an error before hello): best effort, and counted if lost.
  if (SendFrames(clients_, rid, wire::Encode(reply))) {
    ++counters_.client_messages_out;
  } else {
    ++counters_.client_deliveries_lost;
  }
}

// Everything a session receives goes through here, in order. When the
// client's queue is full (its unconsumed bytes, or ZeroMQ's queue):
//  - a delivery is lost, counted, and reported by a gap notice with the
//    count, sent ahead of the next message that gets through (or as soon as
//    the client has room, if nothing else comes);
//  - a reply is never lost: the client is waiting for it, and losing it would
//    report a call that took effect as a timeout. It waits in the session's
//    backlog, which is sent before anything newer (deliveries meanwhile are
//    lost and counted, so none overtakes it).
bool BrokerLoop::Deliver(Session& session, const wire::ClientInbound& message,
                         zmq::message_t* payload) {
  const auto* m = std::get_if<wire::Message>(&message);
  const bool batchable = m != nullptr && (m->kind == wire::MessageKind::kPublish ||
                                          m->kind == wire::MessageKind::kBroadcast);
  return DeliverEncoded(session, wire::Encode(message),
                        std::holds_alternative<wire::Reply>(message), batchable, payload);
}

bool BrokerLoop::BatchIsFull(const Session& session, uint64_t bytes) const {
  return session.batch_count >= wire::kMaxMessageBatch ||
         (session.batch_count > 0 && session.batch_bytes + bytes > kMaxClientBatchBytes);
}

bool BrokerLoop::DeliverEncoded(Session& session, const std::string& body, bool is_reply,
                                bool batchable, zmq::message_t* payload,
                                const BatchedDispatch* dispatch, bool refusable) {
  // In order: what waits in the batch goes first (and if it is lost, the
  // loss is counted before a gap notice is made). A full batch goes before
  // this message starts the next, so that every message it holds was
  // counted delivered, and a notice of its loss comes before this one.
  const uint64_t bytes = body.size() + (payload ? payload->size() : 0);
  if (!batchable || session.lost > 0 || !session.backlog.empty() || BatchIsFull(session, bytes)) {
    FlushDeliveries(session);
  }
  auto lose = [&] {
    if (refusable) return false;  // not lost: the caller sends it elsewhere or fails it
    if (session.lost++ == 0) ++counters_.slow_consumers;
    ++counters_.client_deliveries_lost;
    log_.LogLimited(LogLevel::kWarn, "client-full-" + std::to_string(session.id),
                    "session " + std::to_string(session.id) + " (" + session.name +
                        ") is not reading: a delivery was lost and will be reported to it");
    return false;
  };
  if (!session.backlog.empty()) {
    if (!is_reply) return lose();
    if (session.lost > 0) {
      Backlog(session, wire::Encode(wire::ClientInbound(wire::Gap{session.lost})));
      session.lost = 0;
    }
    Backlog(session, body, payload);
    return true;
  }
  if (session.lost > 0) {
    std::string gap = wire::Encode(wire::ClientInbound(wire::Gap{session.lost}));
    // A notice sent ahead of a delivery that then does not fit would leave
    // one lost message owed again, and a slow reader would get a notice per
    // message: the notice goes only with what follows it.
    uint64_t both = gap.size() + body.size() + (payload ? payload->size() : 0);
    if (!is_reply && session.outstanding_bytes > 0 &&
        session.outstanding_bytes + both > options_.client_queue_bytes) {
      return lose();
    }
    if (!SendToClient(session, gap, nullptr)) {
      if (!is_reply) return lose();
      Backlog(session, std::move(gap));
      session.lost = 0;
      Backlog(session, body, payload);
      return true;
    }
    session.lost = 0;
  }
  if (SendToClient(session, body, payload, batchable, dispatch)) return true;
  if (!is_reply) return lose();
  Backlog(session, body, payload);
  return true;
}

bool BrokerLoop::SendToClient(Session& session, const std::string& body, zmq::message_t* payload,
                              bool batchable, const BatchedDispatch* dispatch) {
  uint64_t bytes = body.size() + (payload ? payload->size() : 0);
  // A message larger than the whole budget still goes to an idle client.
  uint64_t queued = session.outstanding_bytes + session.batch_bytes;
  if (queued > 0 && queued + bytes > options_.client_queue_bytes) return false;
  if (batchable && payload != nullptr) {
    // Not full: DeliverEncoded, the one caller with a batchable message,
    // sent a full batch (and any notice of what it lost) before this.
    if (session.batch_count == 0) {
      batching_.push_back(session.id);
      session.batch_frame.reserve(std::min<size_t>(session.last_batch_frame, kBatchReserveCap));
      session.batch_dispatches.reserve(session.last_batch_dispatches);
    }
    const bool same_header = session.batch_count > 0 && session.batch_header == body;
    if (!same_header) session.batch_header = body;
    wire::AppendBatchEntry(&session.batch_frame, body, same_header, payload->to_string_view());
    ++session.batch_count;
    session.batch_bytes += bytes;
    if (dispatch != nullptr) session.batch_dispatches.push_back(*dispatch);
    return true;
  }
  FlushDeliveries(session);
  if (!SendFrames(clients_, session.routing_id, body, payload)) return false;
  session.outstanding_bytes += bytes;
  ++counters_.client_messages_out;
  counters_.client_bytes_out += bytes;
  return true;
}

void BrokerLoop::FlushDeliveries(Session& session) {
  if (session.batch_count == 0) return;
  // Taken out first: settling its dispatches may deliver to this session again.
  const uint32_t n = session.batch_count;
  const uint64_t bytes = session.batch_bytes;
  std::string frame = std::exchange(session.batch_frame, std::string());
  std::vector<BatchedDispatch> dispatches = std::exchange(session.batch_dispatches, {});
  session.last_batch_frame = frame.size();
  session.last_batch_dispatches = dispatches.size();
  session.batch_count = 0;
  session.batch_bytes = 0;
  bool sent = false;
  // [routing id][Messages n][the entries]; ROUTER_MANDATORY refuses the
  // first frame when the client's queue is full, and then nothing is sent.
  const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
  std::string head = wire::Encode(wire::ClientInbound(wire::MessageBatch{n}));
  try {
    if (fail_next_delivery_flushes_ > 0) {
      --fail_next_delivery_flushes_;
    } else {
      sent = clients_.send(zmq::buffer(session.routing_id), more).has_value();
    }
    if (sent) {
      clients_.send(zmq::buffer(head), more);
      // Handed to ZeroMQ without a copy; it frees the string when sent.
      zmq::message_t entries = MessageOwning(std::move(frame));
      clients_.send(entries, zmq::send_flags::dontwait);
      if (n > 1) ++counters_.client_batches_out;
    }
  } catch (const zmq::error_t&) {
    sent = false;  // EHOSTUNREACH: the client is gone
  }
  if (sent) {
    session.outstanding_bytes += bytes;
    counters_.client_messages_out += n;
    counters_.client_bytes_out += bytes;
  } else {
    // The dispatches are not lost: they go to other members.
    const uint64_t lost = n - dispatches.size();
    counters_.messages_delivered -= std::min<uint64_t>(counters_.messages_delivered, n);
    if (lost > 0) {
      if (session.lost == 0) ++counters_.slow_consumers;
      session.lost += lost;
      counters_.client_deliveries_lost += lost;
    }
    log_.LogLimited(
        LogLevel::kWarn, "client-full-" + std::to_string(session.id),
        "session " + std::to_string(session.id) + " (" + session.name + ") is not reading: " +
            (lost > 0 ? std::to_string(lost) + " deliveries were lost and will be reported to it; "
                      : std::string()) +
            std::to_string(dispatches.size()) + " dispatches go to other members");
  }
  if (!dispatches.empty()) {
    // Settled at the end of the turn, not here: this may be called in the
    // middle of a delivery (DeliverEncoded), which a reroute must not reenter.
    unsettled_.push_back(
        {session.id, std::move(dispatches),
         sent ? Status::Ok()
              : Status::Unavailable("the queue of " +
                                    MemberId{self_.node, self_.incarnation, session.id}.ToString() +
                                    " is full")});
  }
}

void BrokerLoop::FlushAllDeliveries() {
  // By index: a flush may start batches for others (a full batch in the
  // middle of a delivery).
  for (size_t i = 0; i < batching_.size(); ++i) {
    auto s = sessions_.find(batching_[i]);
    if (s != sessions_.end()) FlushDeliveries(s->second);
  }
  batching_.clear();
}

void BrokerLoop::SettleDispatches(uint64_t session, std::span<const BatchedDispatch> dispatches,
                                  const Status& why) {
  const MemberId member{self_.node, self_.incarnation, session};
  const TimePoint now = Clock::now();
  // Mostly from one peer after another: its broker is looked up once.
  const wire::PeerId* from = nullptr;
  bool from_alive = false;
  for (const BatchedDispatch& d : dispatches) {
    if (d.from.node == self_.node) {
      const Pending* p = pending_.Find(d.id);
      if (p == nullptr || p->target != member) continue;  // settled meanwhile
      if (why.ok()) {
        Resolve(d.id, Status::Ok(), wire::DeliveredBody{member});
      } else {
        Route(d.id, now, why);
      }
      continue;
    }
    if (!why.ok()) ++counters_.forwards_refused;
    if (from == nullptr || *from != d.from) {
      auto peer = peers_.find(d.from.node);
      from = &d.from;
      from_alive = peer != peers_.end() && peer->second.id.incarnation == d.from.incarnation;
    }
    if (!from_alive) continue;  // its sender's broker died: nobody awaits the answer
    if (why.ok()) {
      QueueAck(d.from.node, d.id);
    } else {
      QueueCall(d.from.node, wire::PeerForwardAck{self_, d.id, why}, {});
    }
  }
}

void BrokerLoop::FlushTurn(TimePoint now) {
  FlushData();
  // Deliveries before calls, since a dispatch is confirmed once its
  // member's batch is sent. Either may route a dispatch to another member
  // and so start a batch: until none is left (each reroute tries a member
  // not tried before, so it ends).
  do {
    FlushAllDeliveries();
    SettleAll();
    FlushAllCalls(now);
  } while (!batching_.empty() || !call_batches_.empty() || !unsettled_.empty());
}

void BrokerLoop::SettleAll() {
  // By index: a reroute may end in a flush that adds to the list.
  for (size_t i = 0; i < unsettled_.size(); ++i) {
    Unsettled u = std::move(unsettled_[i]);
    SettleDispatches(u.session, u.dispatches, u.why);
  }
  unsettled_.clear();
}

void BrokerLoop::Backlog(Session& session, std::string body, zmq::message_t* payload) {
  Frame frame{std::move(body), std::nullopt};
  if (payload) frame.payload.emplace(std::move(*payload));
  session.backlog.push_back(std::move(frame));
  backlogged_.insert(session.id);
  ++counters_.client_replies_delayed;
}

void BrokerLoop::SendOwedGap(Session& session) {
  FlushDeliveries(session);
  if (session.lost == 0 || !session.backlog.empty()) return;
  if (SendToClient(session, wire::Encode(wire::ClientInbound(wire::Gap{session.lost})), nullptr)) {
    session.lost = 0;
  }
}

// Sends what waits in backlogs, oldest first, as far as each client's queue
// allows. A client with too long a backlog sends requests and never reads
// the answers: its session ends.
void BrokerLoop::FlushBacklogs() {
  for (auto it = backlogged_.begin(); it != backlogged_.end();) {
    auto s = sessions_.find(*it);
    if (s == sessions_.end()) {
      it = backlogged_.erase(it);
      continue;
    }
    Session& session = s->second;
    while (!session.backlog.empty()) {
      Frame& f = session.backlog.front();
      if (!SendToClient(session, f.body, f.payload ? &*f.payload : nullptr)) break;
      session.backlog.pop_front();
    }
    if (session.backlog.empty()) {
      it = backlogged_.erase(it);
    } else if (session.backlog.size() > kMaxBacklog) {
      uint64_t id = session.id;
      it = backlogged_.erase(it);
      EndSession(id, "sends requests but does not read the answers");
    } else {
      ++it;
    }
  }
}

void BrokerLoop::OnClientMessage(std::vector<zmq::message_t>& frames, TimePoint now) {
  ++counters_.client_messages_in;
  for (const zmq::message_t& f : frames) counters_.client_bytes_in += f.size();
  if (frames.size() < 2 || frames.size() > 3) {
    ++counters_.client_bad_messages;
    if (!frames.empty()) {
      Reply(frames[0].to_string(), 0,
            Status::BadMessage("expected a request frame and at most a payload frame, got " +
                               std::to_string(frames.size() - 1) + " frames"));
    }
    return;
  }
  std::string rid = frames[0].to_string();
  const std::string_view frame = frames[1].to_string_view();
  const bool payload_frame = frames.size() == 3;
  // The payload frame, or what follows the request (`rest`) in its own.
  auto payload_of = [&](std::string_view rest) {
    return payload_frame ? RequestPayload{frames[2], frames[2].to_string_view()}
                         : RequestPayload{frames[1], rest};
  };
  if (!last_cast_.bytes.empty() && frame.starts_with(last_cast_.bytes) &&
      (!payload_frame || frame.size() == last_cast_.bytes.size())) {
    RequestPayload payload = payload_of(frame.substr(last_cast_.bytes.size()));
    // A cast only reads its request.
    return HandleRequest(rid, last_cast_.request, &payload, now);
  }
  uint64_t req = 0;
  std::string_view rest;  // a payload in the request's frame
  Result<wire::ClientRequest> request = wire::DecodeClientRequest(frame, &req, &rest);
  Status bad = request.status();
  if (request.ok() && !wire::CarriesPayload(*request)) {
    if (payload_frame) bad = Status::BadMessage("this request takes no payload frame");
    if (!rest.empty()) bad = Status::BadMessage("trailing bytes after a request with no payload");
  } else if (request.ok() && payload_frame && !rest.empty()) {
    bad = Status::BadMessage("a payload in the request's frame and a payload frame too");
  }
  if (!bad.ok()) {
    ++counters_.client_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "client-bad", "bad client request: " + bad.message());
    Reply(rid, req, bad);
    return;
  }
  if (std::holds_alternative<wire::Publish>(*request) ||
      std::holds_alternative<wire::Broadcast>(*request)) {
    last_cast_.bytes.assign(frame.substr(0, frame.size() - rest.size()));
    last_cast_.request = *request;
  }
  RequestPayload payload = payload_of(rest);
  HandleRequest(rid, request.value(), wire::CarriesPayload(*request) ? &payload : nullptr, now);
}

void BrokerLoop::HandleRequest(const std::string& rid, wire::ClientRequest& request,
                               RequestPayload* payload, TimePoint now) {
  if (auto* credit = std::get_if<wire::Credit>(&request)) {
    auto s = sessions_.find(credit->session);
    if (s == sessions_.end() || s->second.token != credit->token) {
      ++counters_.client_bad_messages;
      return;  // no reply: the heartbeat reports a lost session
    }
    Session& session = s->second;
    session.outstanding_bytes -= std::min(session.outstanding_bytes, credit->bytes);
    session.last_heard = now;
    SendOwedGap(session);
    return;
  }
  if (auto* hb = std::get_if<wire::SessionHeartbeat>(&request)) {
    auto s = sessions_.find(hb->session);
    if (s != sessions_.end() && s->second.token == hb->token) {
      s->second.last_heard = now;
    } else {
      // A session that ended (timed out, or the broker restarted), or a
      // forged one: tell the sender, so its SDK reports the loss.
      ++counters_.client_bad_messages;
      Reply(rid, 0,
            Status::Unavailable("session " + std::to_string(hb->session) + " is not open here"));
    }
    return;
  }
  if (auto* hello = std::get_if<wire::Hello>(&request)) {
    if (hello->version != wire::kProtocolVersion) {
      Reply(rid, hello->req,
            Status::InvalidArgument("protocol version " + std::to_string(hello->version) +
                                    " is not supported; this broker speaks " +
                                    std::to_string(wire::kProtocolVersion)));
      return;
    }
    if (Session* old = SessionByRoute(rid)) EndSession(old->id, "said hello again");
    Session s;
    s.id = next_session_++;
    s.token = RandomToken();
    s.routing_id = rid;
    s.name = hello->client_name;
    s.last_heard = now;
    uint64_t id = s.id;
    std::string name = s.name;
    uint64_t token = s.token;
    sessions_.emplace(id, std::move(s));
    session_by_route_[rid] = id;
    ++counters_.sessions_opened;
    log_.Log(LogLevel::kDebug, "session " + std::to_string(id) + " opened by '" + name + "'");
    Reply(rid, hello->req, Status::Ok(),
          wire::WelcomeBody{self_.node, self_.incarnation, id, token,
                            static_cast<uint32_t>(options_.client_heartbeat_interval.count()),
                            static_cast<uint32_t>(options_.session_timeout.count()),
                            options_.max_message_bytes, options_.client_queue_bytes});
    return;
  }

  uint64_t req = wire::RequestIdOf(request);
  Session* session = SessionByRoute(rid);
  if (session == nullptr) {
    Reply(rid, req, Status::Unavailable("no session: say hello first (or the broker restarted)"));
    return;
  }
  session->last_heard = now;
  if (auto* send = std::get_if<wire::SendName>(&request)) {
    OnSendName(*session, *send, *payload, now);
    return;
  }
  if (std::holds_alternative<wire::Register>(request) ||
      std::holds_alternative<wire::Unregister>(request) ||
      std::holds_alternative<wire::Whereis>(request) ||
      std::holds_alternative<wire::ListNames>(request) ||
      std::holds_alternative<wire::MonitorNames>(request) ||
      std::holds_alternative<wire::Leader>(request) ||
      std::holds_alternative<wire::PutRecord>(request) ||
      std::holds_alternative<wire::DeleteRecord>(request) ||
      std::holds_alternative<wire::ListRecords>(request)) {
    OnNameRequest(*session, rid, request, now);
    return;
  }
  if (payload != nullptr) {
    OnMessagingRequest(*session, request, *payload, now);
    return;
  }
  MemberId me{self_.node, self_.incarnation, session->id};

  std::visit(
      [&](auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, wire::Bye>) {
          uint64_t id = session->id;
          Reply(rid, r.req, Status::Ok());
          EndSession(id, "said goodbye");
        } else if constexpr (std::is_same_v<T, wire::Join>) {
          GroupChanges changes;
          table_.Join(me, r.scope, r.group, ChangesFor(r.scope, &changes));
          if (++session->joins[{r.scope, r.group}] == 1) AddLocalGroup(r.scope, r.group);
          pending_ops_.push_back({wire::DeltaOpKind::kJoin, r.scope, r.group, session->id});
          Reply(rid, r.req, Status::Ok());
          NotifyMonitors(changes);
        } else if constexpr (std::is_same_v<T, wire::JoinMany>) {
          // Validated whole by the codec, so every join below happens.
          GroupChanges changes;
          GroupChanges* collect = ChangesFor(r.scope, &changes);
          for (const std::string& group : r.groups) {
            table_.Join(me, r.scope, group, collect);
            if (++session->joins[{r.scope, group}] == 1) AddLocalGroup(r.scope, group);
            pending_ops_.push_back({wire::DeltaOpKind::kJoin, r.scope, group, session->id});
          }
          Reply(rid, r.req, Status::Ok());
          NotifyMonitors(changes);
        } else if constexpr (std::is_same_v<T, wire::Leave>) {
          GroupChanges changes;
          Status s = table_.Leave(me, r.scope, r.group, ChangesFor(r.scope, &changes));
          if (s.ok()) {
            auto it = session->joins.find({r.scope, r.group});
            if (it != session->joins.end() && --it->second == 0) {
              session->joins.erase(it);
              RemoveLocalGroup(r.scope, r.group);
            }
            pending_ops_.push_back({wire::DeltaOpKind::kLeave, r.scope, r.group, session->id});
          }
          Reply(rid, r.req, s);
          NotifyMonitors(changes);
        } else if constexpr (std::is_same_v<T, wire::Members>) {
          wire::MembersBody body{r.local_only ? table_.LocalMembers(r.scope, r.group, self_.node)
                                              : table_.Members(r.scope, r.group)};
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::WhichGroups>) {
          wire::GroupsBody body{table_.WhichGroups(r.scope, r.local_only ? self_.node : "")};
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::Monitor>) {
          MonitorReg reg{next_monitor_++, session->id, r.scope, r.group};
          monitors_[reg.ref] = reg;
          monitors_by_scope_[reg.scope].insert(reg.ref);
          session->monitors.insert(reg.ref);
          Reply(rid, r.req, Status::Ok(), MonitorSnapshot(reg));
        } else if constexpr (std::is_same_v<T, wire::Demonitor>) {
          if (session->name_monitors.erase(r.ref)) {
            name_monitors_.erase(r.ref);
            Reply(rid, r.req, Status::Ok());
            return;
          }
          auto it = monitors_.find(r.ref);
          if (it == monitors_.end() || it->second.session != session->id) {
            Reply(rid, r.req,
                  Status::NotFound("no monitor " + std::to_string(r.ref) + " in this session"));
            return;
          }
          monitors_by_scope_[it->second.scope].erase(r.ref);
          if (monitors_by_scope_[it->second.scope].empty())
            monitors_by_scope_.erase(it->second.scope);
          session->monitors.erase(r.ref);
          monitors_.erase(it);
          Reply(rid, r.req, Status::Ok());
        } else if constexpr (std::is_same_v<T, wire::Nodes>) {
          wire::NodesBody body;
          body.nodes.push_back({self_.node, self_.incarnation, "alive", endpoints_.calls, 0, true});
          for (const auto& [node, peer] : peers_) {
            auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                now - detector_.LastHeard(node));
            body.nodes.push_back({node, peer.id.incarnation,
                                  detector_.IsSuspect(node) ? "suspect" : "alive",
                                  peer.endpoints.calls,
                                  static_cast<uint64_t>(std::max<int64_t>(0, ago.count())), false});
          }
          for (const auto& [node, dead] : dead_) {
            auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(now - dead.died_at);
            body.nodes.push_back({node, dead.incarnation, "dead", dead.calls_endpoint,
                                  static_cast<uint64_t>(std::max<int64_t>(0, ago.count())), false});
          }
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::Stats>) {
          wire::StatsBody body;
          for (const auto& [k, v] : CounterMap()) body.counters.emplace_back(k, v);
          Reply(rid, r.req, Status::Ok(), std::move(body));
        } else if constexpr (std::is_same_v<T, wire::Subscribe>) {
          OnSubscribe(*session, r, now);
        }
      },
      request);
}

wire::MonitorBody BrokerLoop::MonitorSnapshot(const MonitorReg& reg) const {
  wire::MonitorBody body{reg.ref, {}};
  if (reg.group) {
    body.groups.push_back({reg.scope, *reg.group, table_.Members(reg.scope, *reg.group)});
  } else {
    for (const wire::GroupCount& g : table_.WhichGroups(reg.scope)) {
      body.groups.push_back({g.scope, g.group, table_.Members(g.scope, g.group)});
    }
  }
  return body;
}

// Ends a session as pg handles a dead process: its joins are undone (each
// join once), everywhere, and its monitors go.
void BrokerLoop::EndSession(uint64_t session_id, const std::string& why) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Session s = std::move(it->second);
  sessions_.erase(it);
  session_by_route_.erase(s.routing_id);
  for (uint64_t ref : s.monitors) {
    auto m = monitors_.find(ref);
    if (m == monitors_.end()) continue;
    auto scope = monitors_by_scope_.find(m->second.scope);
    if (scope != monitors_by_scope_.end()) {
      scope->second.erase(ref);
      if (scope->second.empty()) monitors_by_scope_.erase(scope);
    }
    monitors_.erase(m);
  }
  MemberId me{self_.node, self_.incarnation, s.id};
  GroupChanges changes;
  for (const auto& [key, count] : s.joins) {
    for (uint32_t i = 0; i < count; ++i) {
      if (table_.Leave(me, key.first, key.second, &changes).ok()) {
        pending_ops_.push_back({wire::DeltaOpKind::kLeave, key.first, key.second, s.id});
      }
    }
    RemoveLocalGroup(key.first, key.second);
  }
  OnSessionGoneMessaging(s);
  OnSessionGoneNaming(s);
  ++counters_.sessions_ended;
  log_.Log(LogLevel::kDebug,
           "session " + std::to_string(s.id) + " ('" + s.name + "') ended: " + why);
  NotifyMonitors(changes);
}

void BrokerLoop::CheckSessions(TimePoint now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, s] : sessions_) {
    if (now - s.last_heard > options_.session_timeout) expired.push_back(id);
  }
  for (auto& [id, s] : sessions_) SendOwedGap(s);
  for (uint64_t id : expired) {
    ++counters_.sessions_timed_out;
    EndSession(id, "no heartbeat for " + std::to_string(options_.session_timeout.count()) + " ms");
  }
}

}  // namespace meshbus
