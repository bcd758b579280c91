// Messaging: publish/subscribe and group broadcast on the data channel;
// dispatch, request/reply and direct sends through the calls channel, each
// followed until it has an outcome that the sender is told.
#include <algorithm>

#include "broker/broker_loop.h"

namespace meshbus {
namespace {

// A second reference to the same bytes (libzmq shares large bodies).
zmq::message_t CopyOf(const zmq::message_t& m) {
  zmq::message_t c;
  c.copy(const_cast<zmq::message_t&>(m));
  return c;
}

// A data topic taken apart: a publish topic, or a group's broadcast key.
struct DataTopic {
  char mark = 0;
  std::string topic;  // publish
  std::string scope, group;
};

std::optional<DataTopic> ParseDataTopic(const std::string& t) {
  if (t.empty()) return std::nullopt;
  DataTopic d;
  d.mark = t[0];
  if (d.mark == kPublishTopicMark) {
    d.topic = t.substr(1);
    if (!ValidateTopic(d.topic).ok()) return std::nullopt;
    return d;
  }
  if (d.mark != kBroadcastTopicMark || t.back() != '\0') return std::nullopt;
  size_t sep = t.find('\0', 1);
  if (sep == std::string::npos || sep + 1 >= t.size() - 1) return std::nullopt;
  d.scope = t.substr(1, sep - 1);
  d.group = t.substr(sep + 1, t.size() - sep - 2);
  if (!ValidateScope(d.scope).ok() || !ValidateGroup(d.group).ok()) return std::nullopt;
  return d;
}

std::string ReplyTo(const std::string& node, uint64_t incarnation, uint64_t id) {
  return MemberId{node, incarnation, id}.ToString();
}

}  // namespace

void BrokerLoop::OnMessagingRequest(Session& session, wire::ClientRequest& request,
                                    RequestPayload& payload, TimePoint now) {
  const std::string& rid = session.routing_id;
  uint64_t req = wire::RequestIdOf(request);
  // A publish, broadcast or dispatch may hold many payloads in its frame (count > 0).
  uint32_t count = 0;
  if (auto* p = std::get_if<wire::Publish>(&request)) count = p->count;
  if (auto* b = std::get_if<wire::Broadcast>(&request)) count = b->count;
  if (auto* d = std::get_if<wire::Dispatch>(&request)) count = d->count;
  cast_payloads_.clear();
  if (count == 0) {
    cast_payloads_.push_back(payload.bytes);
  } else if (Status s = wire::SplitSized(payload.bytes, count, &cast_payloads_); !s.ok()) {
    ++counters_.client_bad_messages;
    Reply(rid, req, Status::BadMessage("the payload does not hold its count: " + s.message()));
    return;
  }
  for (size_t i = 0; i < cast_payloads_.size(); ++i) {
    if (cast_payloads_[i].size() <= options_.max_message_bytes) continue;
    // A batch goes whole or not at all, so the sender knows what was sent.
    ++counters_.messages_too_large;
    std::string which = count == 0
                            ? "a payload"
                            : "payload " + std::to_string(i + 1) + " of " + std::to_string(count);
    Reply(rid, req,
          Status::TooLarge(which + " of " + std::to_string(cast_payloads_[i].size()) +
                           " bytes is over this broker's maximum of " +
                           std::to_string(options_.max_message_bytes) +
                           (count == 0 ? "" : "; none of them was sent")));
    return;
  }
  if (std::holds_alternative<wire::Publish>(request) ||
      std::holds_alternative<wire::Broadcast>(request)) {
    return OnCast(session, request, cast_payloads_);
  }
  MemberId me{self_.node, self_.incarnation, session.id};
  // Each holds its payload until it has an outcome: a client that sends
  // without reading outcomes must not fill the broker's memory.
  const size_t calls = std::max<size_t>(count, 1);
  const bool is_request = std::holds_alternative<wire::Request>(request);
  if (std::holds_alternative<wire::Dispatch>(request)) counters_.dispatches_in += calls;
  if (is_request) ++counters_.requests_in;
  if (std::holds_alternative<wire::Send>(request)) ++counters_.sends_in;
  if (!std::holds_alternative<wire::Respond>(request) &&
      session.pending + calls > kMaxPendingPerSession) {
    (is_request ? counters_.request_failures : counters_.dispatch_failures) += calls;
    Reply(rid, req,
          Status::Unavailable(std::to_string(session.pending) +
                              " calls of this session are already awaiting an outcome (at most " +
                              std::to_string(kMaxPendingPerSession) + ")"));
    return;
  }
  if (pending_.size() + calls > PendingTable::kMaxEntries) {
    (is_request ? counters_.request_failures : counters_.dispatch_failures) += calls;
    Reply(rid, req,
          Status::Unavailable(std::to_string(pending_.size()) +
                              " calls are already awaiting an outcome at this broker (at most " +
                              std::to_string(PendingTable::kMaxEntries) + ")"));
    return;
  }
  // A call of this request, to be followed until it has an outcome: the
  // caller fills in the rest, then routes it.
  auto open = [&](wire::MessageKind kind) -> Pending& {
    auto [id, p] = pending_.Insert();  // not null: there is room, checked above
    p->id = id;
    p->kind = kind;
    p->requester = session.id;
    p->req = req;
    ++session.pending;
    return *p;
  };
  // A call with its own header.
  auto open_one = [&](wire::MessageKind kind, const std::string& scope,
                      const std::string& group) -> Pending& {
    Pending& p = open(kind);
    p.scope = scope;
    p.group = group;
    p.sender = me;
    return p;
  };
  // A call with the request's only payload keeps the frame it is in.
  auto keep_payload = [&](Pending& p) {
    // Where it lies, taken before the frame moves (a small one moves with
    // its bytes).
    p.offset = static_cast<uint32_t>(payload.bytes.data() - payload.frame.data<char>());
    p.size = static_cast<uint32_t>(payload.bytes.size());
    p.payload = std::move(payload.frame);
  };
  auto route = [&](Pending& p) {
    if (p.timeout_ms > 0) {
      p.deadline = now + std::chrono::milliseconds(p.timeout_ms);
      pending_deadlines_.insert({p.deadline, p.id});
    }
    Route(p.id, now);
  };

  if (auto* d = std::get_if<wire::Dispatch>(&request)) {
    if (count == 0) {
      Pending& p = open_one(wire::MessageKind::kDispatch, d->scope, d->group);
      keep_payload(p);
      return route(p);
    }
    // A DispatchMany: each payload its own dispatch, one reply for them all.
    uint64_t batch = next_dispatch_batch_++;
    dispatch_batches_.emplace(
        batch, DispatchBatch{session.id, req, count, std::vector<wire::DispatchOutcome>(count)});
    // Where each payload lies, taken before the frame moves (a small one
    // moves with its bytes).
    const char* base = payload.frame.data<char>();
    auto shared = std::make_shared<const Pending::Shared>(
        Pending::Shared{std::move(payload.frame), d->scope, d->group, me});
    for (uint32_t i = 0; i < count; ++i) {
      Pending& p = open(wire::MessageKind::kDispatch);
      p.shared = shared;
      p.offset = static_cast<uint32_t>(cast_payloads_[i].data() - base);
      p.size = static_cast<uint32_t>(cast_payloads_[i].size());
      p.batch = batch;
      p.index = i;
      route(p);
    }
  } else if (auto* q = std::get_if<wire::Request>(&request)) {
    Pending& p = open_one(wire::MessageKind::kRequest, q->scope, q->group);
    keep_payload(p);
    p.timeout_ms = q->timeout_ms;
    route(p);
  } else if (auto* s = std::get_if<wire::Send>(&request)) {
    Pending& p = open_one(wire::MessageKind::kDirect, "", "");
    p.target = s->member;
    keep_payload(p);
    route(p);
  } else if (auto* r = std::get_if<wire::Respond>(&request)) {
    // The answer travels as a frame of its own.
    zmq::message_t answer;
    if (payload.bytes.size() == payload.frame.size()) {
      answer = std::move(payload.frame);
    } else {
      answer.rebuild(payload.bytes.data(), payload.bytes.size());
    }
    OnRespond(session, *r, answer);
  }
}

void BrokerLoop::OnSubscribe(Session& session, const wire::Subscribe& sub, TimePoint now) {
  std::string data_topic = PublishDataTopic(sub.prefix);
  if (sub.unsubscribe) {
    if (!topics_.Has(sub.prefix, session.id)) {
      return Reply(session.routing_id, sub.req,
                   Status::NotFound("not subscribed to '" + sub.prefix + "'"));
    }
    if (topics_.Remove(sub.prefix, session.id)) {
      data_sub_.set(zmq::sockopt::unsubscribe, data_topic);
      forget_streams_ = true;
    }
    return Reply(session.routing_id, sub.req, Status::Ok());
  }
  if (topics_.Add(sub.prefix, session.id)) data_sub_.set(zmq::sockopt::subscribe, data_topic);
  // A ticket subscribed right after the prefix travels behind it on every
  // connection: a peer that has seen the ticket has applied the prefix.
  std::string ticket =
      std::string(1, kTicketTopicMark) + self_.node + "." + std::to_string(next_ticket_++);
  SubscribeCheck check{session.id, sub.req, {}, now + kSubscribeConfirmTimeout};
  data_sub_.set(zmq::sockopt::subscribe, ticket);
  for (const auto& [node, peer] : peers_) {
    if (SendToPeer(node, wire::PeerSubscriptionCheck{self_, ticket, false})) {
      check.waiting.insert(node);
    }
  }
  bool done = check.waiting.empty();
  subscribe_checks_.emplace(ticket, std::move(check));
  if (done) FinishSubscribe(ticket, /*reply=*/true);
}

// A peer asks whether our XPUB has seen its ticket: yes now, or when it does.
void BrokerLoop::OnSubscriptionCheck(const wire::PeerSubscriptionCheck& check, TimePoint now) {
  if (check.is_reply) return SubscriptionConfirmed(check.ticket, check.from.node);
  if (seen_tickets_.count(check.ticket)) {
    SendToPeer(check.from.node, wire::PeerSubscriptionCheck{self_, check.ticket, true});
    return;
  }
  awaited_tickets_[check.ticket] = {check.from.node, now + 2 * kSubscribeConfirmTimeout};
}

void BrokerLoop::SubscriptionConfirmed(const std::string& ticket, const std::string& node) {
  auto it = subscribe_checks_.find(ticket);
  if (it == subscribe_checks_.end()) return;
  it->second.waiting.erase(node);
  if (it->second.waiting.empty()) FinishSubscribe(ticket, /*reply=*/true);
}

void BrokerLoop::FinishSubscribe(const std::string& ticket, bool reply) {
  auto it = subscribe_checks_.find(ticket);
  if (it == subscribe_checks_.end()) return;
  SubscribeCheck check = std::move(it->second);
  subscribe_checks_.erase(it);
  data_sub_.set(zmq::sockopt::unsubscribe, ticket);
  auto s = sessions_.find(check.session);
  if (reply && s != sessions_.end()) Reply(s->second.routing_id, check.req, Status::Ok());
}

bool BrokerLoop::DeliverMessage(Session& session, const wire::Message& message,
                                const zmq::message_t& payload, const BatchedDispatch* dispatch) {
  if (last_message_body_.empty() || message != last_message_) {
    last_message_ = message;
    last_message_body_ = wire::Encode(wire::ClientInbound(message));
  }
  // A dispatch is batched too, but confirmed only once its batch is sent.
  const bool is_cast =
      message.kind == wire::MessageKind::kPublish || message.kind == wire::MessageKind::kBroadcast;
  const bool batchable = is_cast || dispatch != nullptr;
  // A batched message is copied into its batch, and the payload only read;
  // one sent alone is handed to ZeroMQ, which takes a message of its own.
  zmq::message_t copy;
  if (!batchable) copy = CopyOf(payload);
  zmq::message_t* handed = batchable ? const_cast<zmq::message_t*>(&payload) : &copy;
  // A dispatch, request or send that does not fit is not lost: the caller
  // sends it elsewhere or fails it.
  if (!DeliverEncoded(session, last_message_body_, /*is_reply=*/false, batchable, handed, dispatch,
                      /*refusable=*/!is_cast)) {
    return false;
  }
  ++counters_.messages_delivered;
  return true;
}

// A publish or broadcast of one or more payloads: each to the local
// targets, then into the turn's data batch for the peers.
void BrokerLoop::OnCast(Session& session, const wire::ClientRequest& request,
                        std::span<const std::string_view> payloads) {
  MemberId me{self_.node, self_.incarnation, session.id};
  std::string data_topic;
  wire::Message m;
  if (auto* pub = std::get_if<wire::Publish>(&request)) {
    counters_.publishes_in += payloads.size();
    data_topic = PublishDataTopic(pub->topic);
    m = {wire::MessageKind::kPublish, me, pub->topic, "", "", ""};
    DataTargets(data_topic, &targets_);
  } else {
    const auto& b = std::get<wire::Broadcast>(request);
    counters_.broadcasts_in += payloads.size();
    data_topic = BroadcastDataTopic(b.scope, b.group);
    m = {wire::MessageKind::kBroadcast, me, "", b.scope, b.group, ""};
    GroupTargets(b.scope, b.group, &targets_);
  }
  for (std::string_view p : payloads) {
    // A view, no copy: a publish or broadcast is copied into its session's
    // batch before DeliverMessage returns.
    zmq::message_t payload(const_cast<char*>(p.data()), p.size(), nullptr);
    for (uint64_t id : targets_) DeliverMessage(sessions_.at(id), m, payload);
    PublishData(data_topic, session.id, p);
  }
}

// ---- the data channel ------------------------------------------------------

void BrokerLoop::PublishData(const std::string& data_topic, uint64_t session,
                             std::string_view payload) {
  outbound_.Next(data_topic, &streams_);
  if (streams_.empty()) return;  // no peer subscribes to it
  if (drop_next_data_ > 0) {
    --drop_next_data_;
    ++counters_.data_dropped_on_purpose;
    FlushData();  // what follows the hole starts a batch of its own
    return;
  }
  DataBatch& b = data_batch_;
  // A batch numbers its messages consecutively in the same streams: a new
  // subscriber's stream, another topic or a full batch starts another.
  auto continues = [&] {
    if (b.sessions.empty()) return true;
    if (b.data_topic != data_topic || b.streams.size() != streams_.size() ||
        b.sessions.size() >= wire::kMaxDataBatch || b.bytes + payload.size() > kMaxDataBatchBytes) {
      return false;
    }
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (b.streams[i].first != streams_[i].first ||
          b.streams[i].second + b.sessions.size() != streams_[i].second) {
        return false;
      }
    }
    return true;
  };
  if (!continues()) FlushData();
  if (b.sessions.empty()) {
    b.data_topic = data_topic;
    b.streams.swap(streams_);
  }
  b.sessions.push_back(session);
  b.bytes += payload.size();
  wire::AppendSized(&b.payloads, payload);
}

void BrokerLoop::FlushData() {
  DataBatch& b = data_batch_;
  if (b.sessions.empty()) return;
  wire::PeerData header{self_, outbound_.epoch(), {}, std::move(b.sessions), false};
  header.streams.reserve(b.streams.size());
  for (auto& [prefix, seq] : b.streams) header.streams.push_back({std::move(prefix), seq});
  const size_t count = header.sessions.size();
  std::string body = wire::Encode(wire::PeerMessage(std::move(header)));
  size_t bytes = b.data_topic.size() + body.size() + b.payloads.size();
  try {
    // An XPUB socket never blocks: what a slow peer cannot take is dropped
    // by ZeroMQ (a whole message, never part of one), and the peer finds
    // the hole in the numbers.
    data_pub_.send(zmq::buffer(b.data_topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    data_pub_.send(zmq::buffer(body), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    zmq::message_t payloads = MessageOwning(std::move(b.payloads));
    data_pub_.send(payloads, zmq::send_flags::dontwait);
    counters_.data_messages_out += count;
    ++counters_.data_batches_out;
    counters_.data_bytes_out += bytes;
  } catch (const zmq::error_t&) {
    ++counters_.peer_sends_failed;
  }
  b.streams.clear();
  b.sessions.clear();
  b.payloads = std::string();
  b.bytes = 0;
}

void BrokerLoop::SendDataMarks() {
  FlushData();  // a mark names the last number sent: what it covers goes first
  for (auto& [prefix, seq] : outbound_.TakeMarks(kMaxMarksPerRound)) {
    // Sent on the stream's own prefix, so exactly its subscribers get it.
    std::string body = wire::Encode(wire::PeerMessage(
        wire::PeerData{self_, outbound_.epoch(), {{"", seq}}, {}, /*is_mark=*/true}));
    try {
      data_pub_.send(zmq::buffer(prefix), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      data_pub_.send(zmq::buffer(body), zmq::send_flags::dontwait);
      ++counters_.data_marks_out;
    } catch (const zmq::error_t&) {
      ++counters_.peer_sends_failed;
    }
  }
}

// [1 or 0][data-topic prefix]: the first subscription to a prefix among the
// peers, or the last one gone.
void BrokerLoop::OnDataSubscription(std::vector<zmq::message_t>& frames) {
  for (const zmq::message_t& f : frames) {
    std::string_view m = f.to_string_view();
    if (m.empty() || (m[0] != 0 && m[0] != 1)) {
      ++counters_.peer_bad_messages;
      continue;
    }
    std::string prefix(m.substr(1));
    if (!prefix.empty() && prefix[0] == kTicketTopicMark) {
      if (m[0] == 0) {
        seen_tickets_.erase(prefix);
        continue;
      }
      auto waiter = awaited_tickets_.find(prefix);
      if (waiter != awaited_tickets_.end()) {
        SendToPeer(waiter->second.first, wire::PeerSubscriptionCheck{self_, prefix, true});
        awaited_tickets_.erase(waiter);
      } else if (seen_tickets_.size() < 100000) {
        seen_tickets_.insert(prefix);  // the check may come after the ticket
      }
      continue;
    }
    if (m[0] == 1) {
      outbound_.Subscribed(prefix);
    } else {
      outbound_.Unsubscribed(prefix);
    }
  }
}

void BrokerLoop::DataTargets(const std::string& data_topic, std::vector<uint64_t>* sessions) const {
  sessions->clear();
  if (data_topic.empty()) return;
  if (data_topic[0] == kPublishTopicMark) {
    topics_.Match(std::string_view(data_topic).substr(1), sessions);
    // Callers index sessions_ with these: only live sessions, whatever happens.
    std::erase_if(*sessions, [&](uint64_t id) { return sessions_.count(id) == 0; });
  } else if (local_groups_.count(data_topic)) {
    std::optional<DataTopic> t = ParseDataTopic(data_topic);
    if (t) GroupTargets(t->scope, t->group, sessions);
  }
}

void BrokerLoop::GroupTargets(const std::string& scope, const std::string& group,
                              std::vector<uint64_t>* sessions) const {
  sessions->clear();
  table_.AppendLocalSessions(scope, group, self_.node, self_.incarnation, sessions);
  std::erase_if(*sessions, [&](uint64_t id) { return sessions_.count(id) == 0; });
}

bool BrokerLoop::WantsStream(const std::string& stream) const {
  if (stream.empty()) return false;
  if (stream[0] == kPublishTopicMark) return topics_.SessionsOf(stream.substr(1)) != nullptr;
  return local_groups_.count(stream) > 0;
}

void BrokerLoop::StreamTargets(const std::string& stream, std::vector<uint64_t>* sessions) const {
  sessions->clear();
  if (stream.empty()) return;
  if (stream[0] == kPublishTopicMark) {
    if (const std::set<uint64_t>* s = topics_.SessionsOf(stream.substr(1))) {
      sessions->assign(s->begin(), s->end());
    }
    std::erase_if(*sessions, [&](uint64_t id) { return sessions_.count(id) == 0; });
    return;
  }
  DataTargets(stream, sessions);
}

// [data topic][Data header][payload...], or [stream prefix][mark header].
void BrokerLoop::OnDataMessage(std::vector<zmq::message_t>& frames, TimePoint now) {
  ++counters_.data_batches_in;
  for (const zmq::message_t& f : frames) counters_.data_bytes_in += f.size();
  auto bad = [&](const std::string& why) {
    ++counters_.peer_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "data-bad", "dropped a data message: " + why);
  };
  // [data topic][header], and the payloads' frame unless it is a mark.
  if (frames.size() < 2 || frames.size() > 3) {
    ++counters_.peer_messages_in;
    return bad(std::to_string(frames.size()) + " frames");
  }
  std::optional<wire::PeerMessage> m = DecodePeer(frames[1]);
  if (!m) return;
  auto* d = std::get_if<wire::PeerData>(&*m);
  if (d == nullptr) return bad("not a data message");
  const size_t count = d->sessions.size();  // 0 for a mark
  counters_.data_messages_in += std::max<size_t>(count, 1);
  if (frames.size() != (d->is_mark ? 2u : 3u))
    return bad("a payloads frame where none belongs, or none where one does");
  if (!d->is_mark) {
    if (Status s = wire::SplitSized(frames[2].to_string_view(), count, &data_payloads_); !s.ok()) {
      return bad("the payloads do not match the sessions: " + s.message());
    }
  }
  std::string data_topic = frames[0].to_string();
  std::optional<DataTopic> topic;
  if (!d->is_mark) {
    topic = ParseDataTopic(data_topic);
    if (!topic) return bad("malformed data topic");
  }
  for (const wire::StreamSeq& s : d->streams) {
    // A stream is the topic or a prefix of it: anything else is forged.
    if (data_topic.compare(0, s.stream.size(), s.stream) != 0)
      return bad("stream of another topic");
    if (count > 0 && s.seq > UINT64_MAX - (count - 1)) return bad("numbers past 2^64");
  }
  if (!FromLivePeer(d->from, now)) {
    ++counters_.peer_unknown_messages;
    return;
  }

  // Losses in the streams we follow, for each session they concern (a
  // session in several of them lost the same messages: the most, not the sum).
  std::map<uint64_t, uint64_t> lost_by_session;
  uint64_t seen = 0;  // the batch's first `seen` messages came before
  for (const wire::StreamSeq& s : d->streams) {
    const std::string& stream = s.stream.empty() ? data_topic : s.stream;
    if (!WantsStream(stream)) continue;
    uint64_t lost = 0;
    if (d->is_mark) {
      lost = inbound_.OnMark(d->from.node, d->epoch, stream, s.seq);
    } else {
      InboundStreams::Verdict v = inbound_.OnData(d->from.node, d->epoch, stream, s.seq, count);
      seen = std::max(seen, v.seen);
      lost = v.lost;
    }
    if (lost == 0) continue;
    ++counters_.data_gaps;
    counters_.data_messages_lost += lost;
    log_.LogLimited(LogLevel::kWarn, "data-gap-" + d->from.node,
                    std::to_string(lost) + " data messages from " + d->from.node +
                        " never came: the subscribers are told");
    StreamTargets(stream, &targets_);
    for (uint64_t id : targets_) {
      uint64_t& n = lost_by_session[id];
      n = std::max(n, lost);
    }
  }
  // Each receiver learns of a loss just before the next message it gets.
  for (auto [id, lost] : lost_by_session) sessions_.at(id).lost += lost;
  if (d->is_mark) {
    for (auto [id, lost] : lost_by_session) SendOwedGap(sessions_.at(id));
    return;
  }
  if (seen > 0) counters_.data_duplicates += seen;
  if (seen == count) return;
  DataTargets(data_topic, &targets_);
  if (targets_.empty()) {
    counters_.data_undeliverable += count - seen;  // the last taker left on the way
    return;
  }
  wire::Message msg;
  msg.from = MemberId{d->from.node, d->from.incarnation, 0};
  if (topic->mark == kPublishTopicMark) {
    msg.kind = wire::MessageKind::kPublish;
    msg.topic = std::move(topic->topic);
  } else {
    msg.kind = wire::MessageKind::kBroadcast;
    msg.scope = std::move(topic->scope);
    msg.group = std::move(topic->group);
  }
  for (size_t i = seen; i < count; ++i) {
    msg.from.session = d->sessions[i];
    // A view of the bytes, no copy: a publish or broadcast is copied into
    // its session's batch before DeliverMessage returns.
    std::string_view p = data_payloads_[i];
    zmq::message_t payload(const_cast<char*>(p.data()), p.size(), nullptr);
    for (uint64_t id : targets_) DeliverMessage(sessions_.at(id), msg, payload);
  }
}

void BrokerLoop::AddLocalGroup(const std::string& scope, const std::string& group) {
  std::string t = BroadcastDataTopic(scope, group);
  if (++local_groups_[t] == 1) data_sub_.set(zmq::sockopt::subscribe, t);
}

void BrokerLoop::RemoveLocalGroup(const std::string& scope, const std::string& group) {
  std::string t = BroadcastDataTopic(scope, group);
  auto it = local_groups_.find(t);
  if (it == local_groups_.end() || --it->second > 0) return;
  local_groups_.erase(it);
  data_sub_.set(zmq::sockopt::unsubscribe, t);
  forget_streams_ = true;
}

// ---- dispatch, requests and direct sends ----------------------------------

void BrokerLoop::Route(uint64_t pending_id, TimePoint now, Status why_not) {
  Pending* found = pending_.Find(pending_id);
  if (found == nullptr) return;
  Pending& p = *found;
  const bool is_request = p.kind == wire::MessageKind::kRequest;
  while (true) {
    if (p.kind == wire::MessageKind::kDirect) {
      if (p.routed) return Resolve(pending_id, why_not);
    } else {
      if (p.routed) p.tried.push_back(p.target);
      size_t total = 0;
      const MemberId* pick = table_.PickMember(p.Scope(), p.Group(), p.tried, rng_, &total);
      if (pick == nullptr) {
        std::string where = "group '" + p.Group() + "' of scope '" + p.Scope() + "'";
        if (total == 0 && p.tried.empty()) {
          return Resolve(pending_id, is_request ? Status::NoResponders("no members in " + where)
                                                : Status::NoMembers("no members in " + where));
        }
        return Resolve(pending_id,
                       Status::Unavailable("no member of " + where + " could take it (" +
                                           std::to_string(p.tried.size()) +
                                           " tried; last: " + why_not.message() + ")"));
      }
      p.target = *pick;
    }
    if (p.routed) ++counters_.redispatches;
    p.routed = true;
    p.handed = false;
    const MemberId& target = p.target;

    if (target.node == self_.node) {
      auto s = sessions_.find(target.session);
      if (target.incarnation != self_.incarnation || s == sessions_.end()) {
        why_not = Status::NotFound("no member " + target.ToString());
        continue;
      }
      std::string reply_to = is_request ? ReplyTo(self_.node, self_.incarnation, p.id) : "";
      wire::Message msg{p.kind, p.Sender(), "", p.Scope(), p.Group(), reply_to};
      // A member on this node is reached without a network hop; a dispatch
      // is settled when its batch is sent (SettleDispatches).
      const bool is_dispatch = p.kind == wire::MessageKind::kDispatch;
      BatchedDispatch batched{self_, p.id};
      // The payload as a view of its frame: DeliverMessage copies what it
      // keeps (a dispatch into its member's batch).
      std::string_view bytes = p.Payload();
      zmq::message_t view(const_cast<char*>(bytes.data()), bytes.size(), nullptr);
      if (!DeliverMessage(s->second, msg, view, is_dispatch ? &batched : nullptr)) {
        why_not = Status::Unavailable("the queue of " + target.ToString() + " is full");
        continue;
      }
      if (is_dispatch) return;
      if (!is_request) return Resolve(pending_id, Status::Ok(), wire::DeliveredBody{target});
      p.handed = true;
      serving_[reply_to] = Serving{target.session, p.deadline};
      s->second.serving.insert(reply_to);
      return;
    }
    auto peer = peers_.find(target.node);
    if (peer == peers_.end() || peer->second.id.incarnation != target.incarnation) {
      why_not = Status::NotFound("no member " + target.ToString() + ": its node is not alive");
      continue;
    }
    if (!QueueForward(p, target)) {
      why_not = Status::Unavailable("cannot reach " + target.node);
      continue;
    }
    ++counters_.forwards_sent;
    if (!is_request) {
      // Until the member's broker confirms; then the answer goes back.
      // `now` may be the turn's start, earlier than the last entry's.
      p.deadline = now + kForwardAckTimeout;
      if (!ack_deadlines_.empty()) p.deadline = std::max(p.deadline, ack_deadlines_.back().first);
      ack_deadlines_.emplace_back(p.deadline, p.id);
    }
    return;
  }
}

void BrokerLoop::Resolve(uint64_t pending_id, Status status, wire::ReplyBody body,
                         zmq::message_t* payload) {
  const Pending* found = pending_.Find(pending_id);
  if (found == nullptr) return;
  // What the outcome needs, then the entry goes before anything below can
  // look for it again (a batch sent to a client settles other calls).
  const Pending& p = *found;
  const bool is_request = p.kind == wire::MessageKind::kRequest;
  if (is_request) pending_deadlines_.erase({p.deadline, p.id});
  const bool local_responder = is_request && p.handed && p.target.node == self_.node;
  const uint64_t requester = p.requester, req = p.req, batch = p.batch;
  const uint32_t index = p.index;
  pending_.Erase(pending_id);
  if (!status.ok()) {
    if (is_request) {
      ++(status.code() == Code::kTimeout ? counters_.request_timeouts : counters_.request_failures);
    } else {
      ++counters_.dispatch_failures;
    }
  }
  if (local_responder) {
    // A local responder that has not answered: its answer is no longer awaited.
    auto s = serving_.find(ReplyTo(self_.node, self_.incarnation, pending_id));
    if (s != serving_.end()) ForgetServing(s);
  }
  auto s = sessions_.find(requester);
  if (s == sessions_.end()) return;  // the requester left: nobody to tell
  --s->second.pending;
  if (batch == 0) {
    Deliver(s->second, wire::Reply{req, std::move(status), std::move(body)}, payload);
    return;
  }
  auto b = dispatch_batches_.find(batch);
  if (b == dispatch_batches_.end()) return;
  wire::DispatchOutcome& outcome = b->second.outcomes[index];
  if (auto* delivered = std::get_if<wire::DeliveredBody>(&body)) {
    outcome.member = std::move(delivered->member);
  }
  outcome.status = std::move(status);
  if (--b->second.unresolved > 0) return;
  // Moved in whole: a Reply converted to the variant would copy every outcome.
  wire::ClientInbound reply(wire::Reply{b->second.req, Status::Ok(),
                                        wire::DispatchedBody{std::move(b->second.outcomes)}});
  dispatch_batches_.erase(b);
  Deliver(s->second, reply);
}

// A dispatch, request or send from another broker, for a member here.
void BrokerLoop::OnForward(const wire::PeerForward& f, zmq::message_t& payload, TimePoint now,
                           ForwardRunMemo* memo) {
  ++counters_.forwards_received;
  auto answer = [&](Status s) {
    if (!s.ok()) ++counters_.forwards_refused;
    QueueCall(f.from.node, wire::PeerForwardAck{self_, f.id, std::move(s)}, {});
  };
  auto s = sessions_.find(f.session);
  auto target = [&] { return MemberId{self_.node, self_.incarnation, f.session}; };
  if (s == sessions_.end()) return answer(Status::NotFound("no member " + target().ToString()));
  if (f.kind != wire::MessageKind::kDirect) {
    auto joined = [&] { return table_.JoinCount(target(), f.scope, f.group) > 0; };
    bool in_group;
    if (memo == nullptr) {
      in_group = joined();
    } else {
      auto known = std::find_if(memo->joined.begin(), memo->joined.end(),
                                [&](const auto& e) { return e.first == f.session; });
      if (known != memo->joined.end()) {
        in_group = known->second;
      } else {
        in_group = joined();
        memo->joined.emplace_back(f.session, in_group);
      }
    }
    if (!in_group) return answer(Status::NotJoined(target().ToString() + " left the group"));
  }
  if (payload.size() > options_.max_message_bytes) {
    return answer(Status::TooLarge("over " + self_.node + "'s maximum message size"));
  }
  const bool is_request = f.kind == wire::MessageKind::kRequest;
  std::string reply_to = is_request ? ReplyTo(f.from.node, f.from.incarnation, f.id) : "";
  std::optional<wire::Message> own;
  std::optional<wire::Message>& header = memo != nullptr && !is_request ? memo->message : own;
  if (!header) header.emplace(wire::Message{f.kind, f.sender, "", f.scope, f.group, reply_to});
  // A dispatch is answered when its batch is sent (SettleDispatches).
  const bool is_dispatch = f.kind == wire::MessageKind::kDispatch;
  BatchedDispatch batched{f.from, f.id};
  if (!DeliverMessage(s->second, *header, payload, is_dispatch ? &batched : nullptr)) {
    return answer(Status::Unavailable("the queue of " + target().ToString() + " is full"));
  }
  if (is_dispatch) return;
  if (is_request) {
    serving_[reply_to] = Serving{f.session, now + std::chrono::milliseconds(f.timeout_ms)};
    s->second.serving.insert(reply_to);
  }
  answer(Status::Ok());
}

void BrokerLoop::OnForwardAck(const wire::PeerId& from, uint64_t id, const Status& status,
                              TimePoint now) {
  Pending* found = pending_.Find(id);
  if (found == nullptr) return;  // resolved already (timed out, requester left)
  Pending& p = *found;
  if (p.target.node != from.node || p.handed) return;
  if (status.ok()) {
    if (p.kind == wire::MessageKind::kRequest) {
      p.handed = true;
      return;
    }
    // Not a request: Resolve does not read the target, and erases the entry.
    return Resolve(id, Status::Ok(), wire::DeliveredBody{std::move(p.target)});
  }
  if (p.kind == wire::MessageKind::kDirect) return Resolve(id, status);
  Route(id, now, status);  // that member could not take it: another one
}

void BrokerLoop::OnResponse(const wire::PeerResponse& r, zmq::message_t& payload) {
  const Pending* p = pending_.Find(r.id);
  if (p == nullptr || p->kind != wire::MessageKind::kRequest || p->target.node != r.from.node) {
    ++counters_.responses_unclaimed;
    return;
  }
  if (!r.status.ok()) return Resolve(r.id, r.status);
  Resolve(r.id, Status::Ok(), wire::ResponseBody{r.responder}, &payload);
}

void BrokerLoop::OnRespond(Session& session, const wire::Respond& respond,
                           zmq::message_t& payload) {
  ++counters_.responses_in;
  auto it = serving_.find(respond.reply_to);
  if (it != serving_.end() && it->second.deadline < Clock::now()) {
    session.serving.erase(it->first);
    serving_.erase(it);  // the requester stopped waiting
    it = serving_.end();
  }
  if (it == serving_.end() || it->second.session != session.id) {
    Reply(session.routing_id, respond.req,
          Status::NotFound("no request '" + respond.reply_to +
                           "' awaits an answer from this member (answered already, timed out, "
                           "or not handed to it)"));
    return;
  }
  serving_.erase(it);
  session.serving.erase(respond.reply_to);
  MemberId origin = *MemberId::Parse(respond.reply_to);  // validated by the codec
  MemberId me{self_.node, self_.incarnation, session.id};
  AnswerRequester(origin, Status::Ok(), me, payload);
  // req 0: the responder does not wait for this answer (ReplyAsync).
  if (respond.req != 0) Reply(session.routing_id, respond.req, Status::Ok());
}

// `origin` is the reply_to of a request: the requester's broker and its id there.
void BrokerLoop::AnswerRequester(const MemberId& origin, Status status, const MemberId& responder,
                                 zmq::message_t& payload) {
  if (origin.node == self_.node) {
    const Pending* p = pending_.Find(origin.session);
    if (origin.incarnation != self_.incarnation || p == nullptr || !p->handed) {
      ++counters_.responses_unclaimed;
      return;
    }
    if (!status.ok()) return Resolve(origin.session, std::move(status));
    return Resolve(origin.session, Status::Ok(), wire::ResponseBody{responder}, &payload);
  }
  auto peer = peers_.find(origin.node);
  if (peer == peers_.end() || peer->second.id.incarnation != origin.incarnation ||
      !QueueCall(origin.node,
                 wire::PeerResponse{self_, origin.session, std::move(status), responder},
                 payload.to_string_view())) {
    ++counters_.responses_unclaimed;  // the requester's node is gone: it was told already
  }
}

void BrokerLoop::StopServing(const std::string& reply_to, const Status& why) {
  auto it = serving_.find(reply_to);
  if (it == serving_.end()) return;
  MemberId responder{self_.node, self_.incarnation, it->second.session};
  serving_.erase(it);
  zmq::message_t empty;
  AnswerRequester(*MemberId::Parse(reply_to), why, responder, empty);
}

std::map<std::string, BrokerLoop::Serving>::iterator BrokerLoop::ForgetServing(
    std::map<std::string, Serving>::iterator it) {
  if (auto s = sessions_.find(it->second.session); s != sessions_.end()) {
    s->second.serving.erase(it->first);
  }
  return serving_.erase(it);
}

void BrokerLoop::OnSessionGoneMessaging(Session& session) {
  for (const std::string& prefix : topics_.RemoveSession(session.id)) {
    data_sub_.set(zmq::sockopt::unsubscribe, PublishDataTopic(prefix));
    forget_streams_ = true;
  }
  // Requests it was handed and did not answer fail now, not at their timeout.
  for (const std::string& reply_to : session.serving) {
    StopServing(reply_to,
                Status::Unavailable("the responder " +
                                    MemberId{self_.node, self_.incarnation, session.id}.ToString() +
                                    " ended before answering"));
  }
  std::vector<std::string> checks;
  for (const auto& [ticket, check] : subscribe_checks_) {
    if (check.session == session.id) checks.push_back(ticket);
  }
  for (const std::string& t : checks) FinishSubscribe(t, /*reply=*/false);
  // What it was waiting for: nobody is left to tell.
  // (A scan, as for its batches: a session ends far less often than it
  // dispatches, and a set of its pending ids cost an allocation each.)
  if (session.pending > 0) {
    pending_.EraseIf([&](uint64_t, const Pending& p) {
      if (p.requester != session.id) return false;
      if (p.kind == wire::MessageKind::kRequest) pending_deadlines_.erase({p.deadline, p.id});
      return true;
    });
  }
  std::erase_if(dispatch_batches_, [&](const auto& b) { return b.second.requester == session.id; });
  // Dispatches in its unsent batch: another member gets them, at the end of the turn.
  if (!session.batch_dispatches.empty()) {
    unsettled_.push_back(
        {session.id, std::exchange(session.batch_dispatches, {}),
         Status::NotFound("the member " +
                          MemberId{self_.node, self_.incarnation, session.id}.ToString() +
                          " ended")});
  }
}

void BrokerLoop::OnPeerGoneMessaging(const std::string& node) {
  inbound_.ForgetOrigin(node);
  std::vector<std::string> checks;
  for (const auto& [ticket, check] : subscribe_checks_) {
    if (check.waiting.count(node)) checks.push_back(ticket);
  }
  for (const std::string& t : checks) SubscriptionConfirmed(t, node);  // nothing to wait for
  call_batches_.erase(node);  // what waited for it is rerouted or resolved below
  TimePoint now = Clock::now();
  for (uint64_t id : pending_.Ids()) {
    Pending* found = pending_.Find(id);  // (a reroute may have settled it)
    if (found == nullptr || found->target.node != node) continue;
    Pending& p = *found;
    if (p.handed) {
      // The responder had it: whether it acted is unknown, so it is not
      // asked of another member.
      Resolve(id, Status::Unavailable("the responder's node " + node + " died before answering"));
    } else if (p.kind == wire::MessageKind::kDirect) {
      Resolve(id, Status::Unavailable("the node " + node + " died before the member got it"));
    } else {
      Route(id, now);  // not delivered: another member gets it
    }
  }
  // Requests from that node that members here still hold: nobody waits.
  for (auto it = serving_.begin(); it != serving_.end();) {
    std::optional<MemberId> origin = MemberId::Parse(it->first);
    if (origin && origin->node == node) {
      it = ForgetServing(it);
    } else {
      ++it;
    }
  }
}

void BrokerLoop::MessagingTimers(TimePoint now) {
  while (!pending_deadlines_.empty() && pending_deadlines_.begin()->first <= now) {
    uint64_t id = pending_deadlines_.begin()->second;
    pending_deadlines_.erase(pending_deadlines_.begin());
    const Pending* p = pending_.Find(id);
    if (p == nullptr) continue;
    Resolve(id, Status::Timeout("no response within " + std::to_string(p->timeout_ms) + " ms"));
  }
  // The pending call an entry still stands for; null once it was settled,
  // or forwarded again (with another deadline).
  auto awaited = [&](const std::pair<TimePoint, uint64_t>& entry) -> const Pending* {
    const Pending* p = pending_.Find(entry.second);
    return p != nullptr && p->deadline == entry.first ? p : nullptr;
  };
  while (!ack_deadlines_.empty()) {
    const auto entry = ack_deadlines_.front();
    const Pending* p = awaited(entry);
    if (p != nullptr && entry.first > now) break;
    ack_deadlines_.pop_front();
    if (p == nullptr) continue;
    Resolve(entry.second, Status::Timeout("no confirmation from " + p->target.node + " within " +
                                          std::to_string(kForwardAckTimeout.count()) +
                                          " ms: the member may or may not have it"));
  }
  if (ack_deadlines_.size() > 4 * pending_.size() + 4096) {
    std::erase_if(ack_deadlines_, [&](const auto& entry) { return awaited(entry) == nullptr; });
  }
  if (now >= next_serving_sweep_) {
    next_serving_sweep_ = now + std::chrono::milliseconds(100);
    std::vector<std::string> late;
    for (const auto& [ticket, check] : subscribe_checks_) {
      if (check.deadline <= now) late.push_back(ticket);
    }
    for (const std::string& t : late) {
      ++counters_.subscriptions_unconfirmed;
      log_.LogLimited(LogLevel::kWarn, "subscribe-late",
                      "a subscription was not confirmed by every peer within " +
                          std::to_string(kSubscribeConfirmTimeout.count()) +
                          " ms: it holds here, and at the others when they catch up");
      FinishSubscribe(t, /*reply=*/true);
    }
    std::erase_if(awaited_tickets_, [&](const auto& kv) { return kv.second.second <= now; });
    // Requests whose requester stopped waiting: an answer is no longer useful.
    for (auto it = serving_.begin(); it != serving_.end();) {
      if (it->second.deadline < now) {
        it = ForgetServing(it);
      } else {
        ++it;
      }
    }
  }
  if (forget_streams_) {
    forget_streams_ = false;
    inbound_.ForgetUnless([this](const std::string& t) { return WantsStream(t); });
  }
}

}  // namespace meshbus
