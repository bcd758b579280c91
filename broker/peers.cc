// The mesh: meeting peers (hello/welcome), heartbeats, membership deltas and
// resync, probes and failure detection, and purging what dead peers owned.
#include <algorithm>
#include <cstring>

#include "broker/broker_loop.h"

namespace meshbus {
namespace {

// A forwarded payload as OnForward takes it, from the frame it came in. A
// dispatch is copied into its member's batch before OnForward returns (as a
// publish is), so a view of the frame does; a request or send may be handed
// to ZeroMQ as it is, and needs bytes of its own.
zmq::message_t ForwardPayload(wire::MessageKind kind, std::string_view bytes) {
  if (kind == wire::MessageKind::kDispatch) {
    return zmq::message_t(const_cast<char*>(bytes.data()), bytes.size(), nullptr);
  }
  return zmq::message_t(bytes.data(), bytes.size());
}

}  // namespace

std::optional<wire::PeerMessage> BrokerLoop::DecodePeer(const zmq::message_t& frame) {
  ++counters_.peer_messages_in;
  Result<wire::PeerMessage> m = wire::DecodePeerMessage(frame.to_string_view());
  if (!m.ok()) {
    ++counters_.peer_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "peer-bad",
                    "dropped a bad peer message: " + m.status().message());
    return std::nullopt;
  }
  const wire::PeerId& from = wire::SenderOf(m.value());
  if (from.node == self_.node) {
    // Our own name from elsewhere: a misconfigured twin, or ourselves via a
    // known-peers list. Never let it touch our state.
    if (from.incarnation != self_.incarnation) {
      log_.LogLimited(LogLevel::kWarn, "twin", "another broker calls itself '" + self_.node + "'");
    }
    ++counters_.peer_unknown_messages;
    return std::nullopt;
  }
  if (blocked_.count(from.node)) {
    ++counters_.peer_blocked_messages;
    return std::nullopt;
  }
  return std::move(m.value());
}

bool BrokerLoop::FromLivePeer(const wire::PeerId& from, TimePoint now) {
  auto it = peers_.find(from.node);
  if (it == peers_.end()) return false;
  if (it->second.id.incarnation == from.incarnation) {
    detector_.Heard(from.node, now);
    return true;
  }
  if (from.incarnation > it->second.id.incarnation) {
    // The node restarted: what the old incarnation owned goes now, without
    // waiting for a timeout. The new one is met through its hello.
    DeclareDead(from.node, "restarted as incarnation " + IncarnationHex(from.incarnation), now);
  } else {
    ++counters_.peer_stale_messages;
  }
  return false;
}

void BrokerLoop::OnControlMessage(zmq::message_t& frame, TimePoint now) {
  std::optional<wire::PeerMessage> m = DecodePeer(frame);
  if (!m) return;
  const wire::PeerId& from = wire::SenderOf(*m);
  bool live = FromLivePeer(from, now);

  if (auto* hb = std::get_if<wire::PeerHeartbeat>(&*m)) {
    if (!live) {
      auto dead = dead_.find(from.node);
      if (dead != dead_.end() && dead->second.incarnation > from.incarnation) {
        ++counters_.peer_stale_messages;
        return;
      }
      // A node we have not met, or one we declared dead that is talking
      // again (a healed partition, a resumed process): meet it.
      Link* link = EnsureLink(hb->calls_endpoint);
      if (link && now - link->last_hello >= std::chrono::milliseconds(100)) SendHello(*link, now);
      return;
    }
    Peer& peer = peers_.at(from.node);
    if (peer.tracker.OnHeartbeat(hb->seq, now)) {
      OnGap(peer, "heartbeat says " + std::to_string(hb->seq), now);
    }
    return;
  }
  if (auto* delta = std::get_if<wire::PeerDelta>(&*m)) {
    if (!live) {
      ++counters_.peer_unknown_messages;
      return;
    }
    Peer& peer = peers_.at(from.node);
    switch (peer.tracker.OnDelta(*delta, now)) {
      case OriginTracker::Verdict::kApply:
        ApplyOps(peer, delta->ops, now);
        break;
      case OriginTracker::Verdict::kResync:
        OnGap(peer, "got " + std::to_string(delta->seq), now);
        break;
      case OriginTracker::Verdict::kIgnore:
      case OriginTracker::Verdict::kBuffer:
        break;
    }
    return;
  }
  if (std::holds_alternative<wire::PeerBye>(*m)) {
    if (live) {
      DeclareDead(from.node, "left the mesh", now);
      dead_[from.node].left = true;
    }
    return;
  }
  ++counters_.peer_bad_messages;  // a calls message on the control channel
}

// Requests from peers to us, on our calls ROUTER: [routing id][body].
void BrokerLoop::OnCallsMessage(std::vector<zmq::message_t>& frames, TimePoint now) {
  if (frames.size() != 2 && frames.size() != 3) {
    ++counters_.peer_messages_in;
    ++counters_.peer_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "calls-frames",
                    "dropped a calls message with " + std::to_string(frames.size()) + " frames");
    return;
  }
  std::string rid = frames[0].to_string();
  std::optional<wire::PeerMessage> m = DecodePeer(frames[1]);
  if (!m) return;
  if (wire::CarriesPayload(*m) != (frames.size() == 3)) {
    ++counters_.peer_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "calls-frames",
                    "dropped a calls message: payload frame " +
                        std::string(frames.size() == 3 ? "where none belongs" : "missing"));
    return;
  }
  const wire::PeerId& from = wire::SenderOf(*m);
  bool live = FromLivePeer(from, now);
  auto answer = [&](const wire::PeerMessage& reply) {
    if (!SendFrames(calls_, rid, wire::Encode(reply))) ++counters_.peer_sends_failed;
  };

  if (auto* hello = std::get_if<wire::PeerHello>(&*m)) {
    if (hello->is_welcome) {
      ++counters_.peer_bad_messages;  // welcomes come back on our links, not here
      return;
    }
    if (hello->version != wire::kProtocolVersion) {
      log_.LogLimited(LogLevel::kWarn, "version-" + from.node,
                      from.node + " speaks protocol " + std::to_string(hello->version) + ", not " +
                          std::to_string(wire::kProtocolVersion) + ": not meeting it");
      return;
    }
    MeetPeer(*hello, now);
    answer(MakeHello(/*is_welcome=*/true));
    ++counters_.snapshots_served;
    return;
  }
  if (auto* sync = std::get_if<wire::PeerSyncRequest>(&*m)) {
    if (sync->target_incarnation != self_.incarnation) {
      ++counters_.peer_stale_messages;  // meant for an earlier incarnation of us
      return;
    }
    answer(wire::PeerSyncReply{self_, SelfSnapshot()});
    ++counters_.snapshots_served;
    return;
  }
  if (auto* probe = std::get_if<wire::PeerProbe>(&*m)) {
    // Answered even for nodes we do not know: a probe asks only "are you there".
    if (!probe->is_reply) answer(wire::PeerProbe{self_, probe->nonce, true});
    return;
  }
  if (live) {
    if (auto* batch = std::get_if<wire::PeerCallBatch>(&*m)) {
      return OnCallBatch(*batch, frames[2], now);
    }
    if (auto* forward = std::get_if<wire::PeerForward>(&*m))
      return OnForward(*forward, frames[2], now);
    if (auto* ack = std::get_if<wire::PeerForwardAck>(&*m)) {
      return OnForwardAck(ack->from, ack->id, ack->status, now);
    }
    if (auto* run = std::get_if<wire::PeerForwardRun>(&*m)) {
      std::vector<std::string_view> payloads;
      Status split = wire::SplitSized(frames[2].to_string_view(), run->calls.size(), &payloads);
      if (split.ok()) return OnForwardRun(*run, payloads, now);
      ++counters_.peer_bad_messages;
      log_.LogLimited(LogLevel::kWarn, "calls-run",
                      "dropped a forward run from " + from.node + ": " + split.message());
      return;
    }
    if (auto* acks = std::get_if<wire::PeerAckRun>(&*m)) return OnAckRun(*acks, now);
    if (auto* check = std::get_if<wire::PeerSubscriptionCheck>(&*m)) {
      return OnSubscriptionCheck(*check, now);
    }
    if (auto* response = std::get_if<wire::PeerResponse>(&*m)) {
      return OnResponse(*response, frames[2]);
    }
    if (auto* r = std::get_if<wire::PeerRaft>(&*m)) return OnPeerRaft(*r, now);
    if (auto* call = std::get_if<wire::PeerNameCall>(&*m)) return OnPeerNameCall(*call);
    if (auto* st = std::get_if<wire::PeerRegistryStatus>(&*m)) return OnRegistryStatus(*st);
    if (auto* a = std::get_if<wire::PeerNameAnswer>(&*m)) {
      return OnNameAnswer(a->from.node, a->id, a->status, a->holder, a->metadata, a->records, now);
    }
  }
  if (!live)
    ++counters_.peer_unknown_messages;
  else
    ++counters_.peer_bad_messages;  // a control or reply message sent as a request
}

// Answers to our requests, on the DEALER of one link.
void BrokerLoop::OnLinkMessage(Link& link, zmq::message_t& frame, TimePoint now) {
  std::optional<wire::PeerMessage> m = DecodePeer(frame);
  if (!m) return;
  const wire::PeerId& from = wire::SenderOf(*m);
  bool live = FromLivePeer(from, now);

  if (auto* hello = std::get_if<wire::PeerHello>(&*m)) {
    if (!hello->is_welcome || hello->version != wire::kProtocolVersion) {
      ++counters_.peer_bad_messages;
      return;
    }
    link.node = from.node;
    link.unanswered_hellos = 0;
    MeetPeer(*hello, now);
    return;
  }
  if (auto* probe = std::get_if<wire::PeerProbe>(&*m)) {
    if (probe->is_reply && live) detector_.ProbeAnswered(from.node, now);
    return;
  }
  if (auto* sync = std::get_if<wire::PeerSyncReply>(&*m)) {
    if (!live) {
      ++counters_.peer_unknown_messages;
      return;
    }
    ApplySnapshot(peers_.at(from.node), sync->snapshot, now);
    return;
  }
  ++counters_.peer_bad_messages;
}

bool BrokerLoop::OnLinkEvent(Link& link, TimePoint now) {
  for (int i = 0; i < 64; ++i) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(link.monitor, std::back_inserter(frames), zmq::recv_flags::dontwait))
      return false;
    if (frames.size() < 1 || frames[0].size() < 6) continue;
    uint16_t event;
    std::memcpy(&event, frames[0].data(), sizeof event);
    bool met = !link.node.empty() && peers_.count(link.node);
    if (!met) {
      // A seed or a returning peer just became reachable: greet it now rather
      // than at the next retry.
      if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED &&
          !(link.node.size() && blocked_.count(link.node))) {
        SendHello(link, now);
      }
      continue;
    }
    switch (event) {
      case ZMQ_EVENT_DISCONNECTED:
        log_.Log(LogLevel::kInfo, "connection to " + link.node + " closed: probing it");
        detector_.Disconnected(link.node, now);
        SendToPeer(link.node, wire::PeerProbe{self_, next_nonce_++, false});
        ++counters_.probes_sent;
        break;
      case ZMQ_EVENT_CONNECTED:
        detector_.Connected(link.node, now);
        break;
      case ZMQ_EVENT_CONNECT_RETRIED:
        detector_.ConnectRetried(link.node, now);
        break;
      default:
        break;
    }
  }
  return true;
}

void BrokerLoop::MeetPeer(const wire::PeerHello& hello, TimePoint now) {
  const std::string& node = hello.from.node;
  if (node == self_.node) return;
  auto it = peers_.find(node);
  if (it != peers_.end() && it->second.id.incarnation != hello.from.incarnation) {
    if (hello.from.incarnation < it->second.id.incarnation) {
      ++counters_.peer_stale_messages;
      return;
    }
    DeclareDead(node, "restarted as incarnation " + IncarnationHex(hello.from.incarnation), now);
    it = peers_.end();
  }
  // A node that said bye is gone for good: only a new incarnation of it is
  // met, not a hello of the old one that was still on its way.
  if (auto dead = dead_.find(node);
      dead != dead_.end() &&
      (dead->second.incarnation > hello.from.incarnation ||
       (dead->second.left && dead->second.incarnation == hello.from.incarnation))) {
    ++counters_.peer_stale_messages;
    return;
  }
  if (it == peers_.end()) {
    // The link first: a peer we cannot call (no resync, no probe) is not met.
    Link* link = EnsureLink(hello.endpoints.calls);
    if (link == nullptr) return;
    Peer peer{hello.from, hello.endpoints, OriginTracker(0), now};
    try {
      control_sub_.connect(hello.endpoints.control);
      data_sub_.connect(hello.endpoints.data);
    } catch (const zmq::error_t& e) {
      log_.LogLimited(LogLevel::kWarn, "connect-" + node,
                      "cannot subscribe to " + node + ": " + e.what());
      return;
    }
    it = peers_.emplace(node, std::move(peer)).first;
    dead_.erase(node);
    detector_.Track(node, now);
    link->node = node;
    ++counters_.peers_met;
    log_.Log(LogLevel::kInfo, "met " + node + " (incarnation " +
                                  IncarnationHex(hello.from.incarnation) + ", " +
                                  hello.endpoints.calls + ")");
  } else {
    detector_.Heard(node, now);
  }
  ApplySnapshot(it->second, hello.snapshot, now);
  OnPeerVoters(node, hello.voters, hello.registry_epoch);
  // Dial the peers it knows and we do not, a few per hello: the rest come
  // with later hellos, so one hello cannot make us open links by the thousand.
  int dialed = 0;
  for (const std::string& ep : hello.known_peers) {
    if (ep == endpoints_.calls || links_.count(ep)) continue;
    if (++dialed > kMaxDialsPerHello) break;
    if (Link* link = EnsureLink(ep)) SendHello(*link, now);
  }
}

void BrokerLoop::ApplySnapshot(Peer& peer, const wire::Snapshot& snapshot, TimePoint now) {
  if (peer.tracker.IsStale(snapshot.seq)) return;  // overtaken by deltas we applied
  GroupChanges changes;
  table_.Replace(peer.id.node, peer.id.incarnation, snapshot.entries, &changes);
  ++counters_.snapshots_applied;
  bool again = false;
  std::deque<wire::PeerDelta> follow = peer.tracker.OnSnapshot(snapshot.seq, now, &again);
  peer.resync_requests = 0;
  NotifyMonitors(changes);
  for (const wire::PeerDelta& d : follow) ApplyOps(peer, d.ops, now);
  if (again) RequestSync(peer, now);
}

void BrokerLoop::ApplyOps(Peer& peer, const std::vector<wire::DeltaOp>& ops, TimePoint now) {
  GroupChanges changes;
  bool inconsistent = false;
  for (const wire::DeltaOp& op : ops) {
    MemberId m{peer.id.node, peer.id.incarnation, op.session};
    if (op.op == wire::DeltaOpKind::kJoin) {
      table_.Join(m, op.scope, op.group, ChangesFor(op.scope, &changes));
    } else if (!table_.Leave(m, op.scope, op.group, ChangesFor(op.scope, &changes)).ok()) {
      inconsistent = true;
    }
  }
  ++counters_.deltas_applied;
  NotifyMonitors(changes);
  if (inconsistent && !peer.tracker.resyncing()) {
    // Our copy disagrees with the origin: only its snapshot can settle it.
    ++counters_.delta_inconsistencies;
    log_.LogLimited(LogLevel::kWarn, "leave-" + peer.id.node,
                    "leave of a member we do not have, from " + peer.id.node + ": resync");
    peer.tracker.StartResync(now);
    RequestSync(peer, now);
  }
}

void BrokerLoop::OnGap(Peer& peer, const std::string& seen, TimePoint now) {
  ++counters_.delta_gaps;
  log_.Log(LogLevel::kInfo, "gap in deltas of " + peer.id.node + " (at " +
                                std::to_string(peer.tracker.applied()) + ", " + seen + "): resync");
  RequestSync(peer, now);
}

void BrokerLoop::RequestSync(Peer& peer, TimePoint now) {
  peer.tracker.MarkResyncRequested(now);
  ++peer.resync_requests;
  ++counters_.resyncs_requested;
  SendToPeer(peer.id.node, wire::PeerSyncRequest{self_, peer.id.incarnation});
}

void BrokerLoop::DeclareDead(const std::string& node, const std::string& reason, TimePoint now) {
  auto it = peers_.find(node);
  if (it == peers_.end()) return;
  Peer peer = std::move(it->second);
  peers_.erase(it);
  detector_.Forget(node);
  try {
    control_sub_.disconnect(peer.endpoints.control);
    data_sub_.disconnect(peer.endpoints.data);
  } catch (const zmq::error_t&) {
    // Already gone.
  }
  dead_[node] = DeadPeer{peer.id.incarnation, peer.endpoints.calls, now, reason};
  ++counters_.peers_purged;
  GroupChanges changes;
  table_.Purge(node, &changes);
  size_t members = 0;
  for (const GroupChange& c : changes) members += c.members.size();
  log_.Log(LogLevel::kInfo, "purged " + node + " (" + reason + "): " + std::to_string(members) +
                                " memberships removed");
  NotifyMonitors(changes);
  OnPeerGoneMessaging(node);  // after the purge, so nothing is routed to it again
  OnPeerGoneNaming(node, now);
}

BrokerLoop::Link* BrokerLoop::EnsureLink(const std::string& endpoint) {
  auto it = links_.find(endpoint);
  if (it != links_.end()) return it->second.get();
  if (links_.size() >= kMaxLinks) {
    // Three sockets a link: a peer listing thousands of "known peers" must
    // not use up the context's sockets or the process's descriptors.
    ++counters_.links_refused;
    log_.LogLimited(
        LogLevel::kWarn, "links-full",
        "not dialing " + endpoint + ": already " + std::to_string(kMaxLinks) + " links");
    return nullptr;
  }
  auto link = std::make_unique<Link>();
  link->endpoint = endpoint;
  link->is_seed =
      std::find(options_.seeds.begin(), options_.seeds.end(), endpoint) != options_.seeds.end();
  try {
    link->dealer = zmq::socket_t(context_, zmq::socket_type::dealer);
    link->dealer.set(zmq::sockopt::linger, 0);
    // Queue nothing for a peer that is not connected: a probe or hello that
    // cannot go now is not worth delivering late.
    link->dealer.set(zmq::sockopt::immediate, 1);
    // Reconnect fast after a drop, so a dead process is told from a live one
    // within milliseconds; back off for peers that stay away.
    link->dealer.set(zmq::sockopt::reconnect_ivl, 2);
    link->dealer.set(zmq::sockopt::reconnect_ivl_max, 500);
    link->dealer.set(zmq::sockopt::sndhwm, 100000);
    link->dealer.set(zmq::sockopt::maxmsgsize, int64_t(wire::kMaxFrameBytes));
    std::string mon = "inproc://link-monitor-" + std::to_string(next_monitor_socket_++);
    if (zmq_socket_monitor(link->dealer.handle(), mon.c_str(),
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0) {
      throw zmq::error_t();
    }
    link->monitor = zmq::socket_t(context_, zmq::socket_type::pair);
    link->monitor.set(zmq::sockopt::linger, 0);
    link->monitor.connect(mon);
    link->dealer.connect(endpoint);
    link->dealer_input = PolledSocket(link->dealer, /*sent_on=*/true);
    link->monitor_input = PolledSocket(link->monitor, /*sent_on=*/false);  // only read
  } catch (const zmq::error_t& e) {
    ++counters_.links_refused;
    log_.LogLimited(LogLevel::kWarn, "link-" + endpoint,
                    "cannot open a link to " + endpoint + ": " + e.what());
    return nullptr;
  }
  Link* raw = link.get();
  links_.emplace(endpoint, std::move(link));
  return raw;
}

void BrokerLoop::SendHello(Link& link, TimePoint now) {
  link.last_hello = now;
  ++link.unanswered_hellos;
  try {
    link.dealer.send(zmq::buffer(wire::Encode(MakeHello(false))), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // Not connected yet: the retry timer sends another.
  }
}

BrokerLoop::Link* BrokerLoop::CallLink(const std::string& node, bool count_unlinked) {
  if (blocked_.count(node)) return nullptr;
  auto peer = peers_.find(node);
  if (peer == peers_.end()) return nullptr;
  auto link = links_.find(peer->second.endpoints.calls);
  if (link == links_.end()) {
    if (count_unlinked) ++counters_.peer_sends_failed;  // a live peer we have no link to
    return nullptr;
  }
  return link->second.get();
}

bool BrokerLoop::SendToPeer(const std::string& node, const wire::PeerMessage& message,
                            zmq::message_t* payload) {
  Link* link = CallLink(node);
  if (link == nullptr) return false;
  if (call_batches_.count(node)) FlushCalls(node, Clock::now());  // in the order they were made
  try {
    std::string body = wire::Encode(message);
    if (payload == nullptr) {
      if (link->dealer.send(zmq::buffer(body), zmq::send_flags::dontwait)) return true;
    } else if (link->dealer.send(zmq::buffer(body),
                                 zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      // The first frame taken, the rest of the message is too.
      if (link->dealer.send(*payload, zmq::send_flags::dontwait)) return true;
    }
  } catch (const zmq::error_t&) {
  }
  ++counters_.peer_sends_failed;
  return false;
}

BrokerLoop::CallBatch* BrokerLoop::CallBatchFor(const std::string& node, size_t payload_bytes) {
  auto open = call_batches_.find(node);
  if (open != call_batches_.end()) {
    CallBatch& q = open->second;
    // Open means the node was reachable when it opened (its death drops
    // it); FlushCalls looks again when it sends.
    if (q.calls < wire::kMaxMessageBatch &&
        q.entries.size() + q.run_payloads.size() + payload_bytes <= kMaxCallBatchBytes) {
      return &q;
    }
    // Sent before this call joins the next batch: if it cannot be sent,
    // what it reroutes is calls made before, none of them this one (whose
    // caller is still in the middle of it).
    FlushCalls(node, Clock::now());
  }
  if (CallLink(node) == nullptr) return nullptr;
  return &call_batches_[node];
}

bool BrokerLoop::QueueCall(const std::string& node, const wire::PeerMessage& message,
                           std::string_view payload) {
  const auto* ack = std::get_if<wire::PeerForwardAck>(&message);
  if (ack != nullptr && ack->status.ok()) return QueueAck(node, ack->id);
  CallBatch* b = CallBatchFor(node, payload.size());
  if (b == nullptr) return false;
  CloseCallRun(*b);
  AppendCallEntry(*b, message, payload);
  ++b->calls;
  return true;
}

bool BrokerLoop::QueueAck(const std::string& node, uint64_t id) {
  CallBatch* b = CallBatchFor(node, 0);
  if (b == nullptr) return false;
  if (!b->ack_run) {
    CloseCallRun(*b);
    b->ack_run.emplace(wire::PeerAckRun{self_, {}});
  }
  b->ack_run->ids.push_back(id);
  ++b->calls;
  return true;
}

bool BrokerLoop::QueueForward(const Pending& p, const MemberId& target) {
  std::string_view payload = p.Payload();
  CallBatch* b = CallBatchFor(target.node, payload.size());
  if (b == nullptr) return false;
  wire::PeerForwardRun* run = b->forward_run ? &*b->forward_run : nullptr;
  const bool same_request = run != nullptr && p.batch != 0 && b->run_batch == p.batch;
  if (!same_request &&
      (run == nullptr || run->kind != p.kind || run->timeout_ms != p.timeout_ms ||
       run->sender != p.Sender() || run->group != p.Group() || run->scope != p.Scope())) {
    CloseCallRun(*b);
    run = &b->forward_run.emplace(
        wire::PeerForwardRun{self_, p.kind, p.Scope(), p.Group(), p.Sender(), p.timeout_ms, {}});
    b->run_batch = p.batch;
  }
  run->calls.push_back({p.id, target.session});
  wire::AppendSized(&b->run_payloads, payload);
  ++b->calls;
  b->forwards.push_back(p.id);
  return true;
}

void BrokerLoop::AppendCallEntry(CallBatch& b, const wire::PeerMessage& message,
                                 std::string_view payload) {
  wire::AppendBatchEntry(&b.entries, wire::Encode(message), /*same_header=*/false, payload);
  if (++b.count == 1) b.lone_has_payload = wire::CarriesPayload(message);
}

void BrokerLoop::CloseCallRun(CallBatch& b) {
  if (b.forward_run) {
    wire::PeerForwardRun& run = *b.forward_run;
    if (run.calls.size() == 1) {
      const wire::PeerForwardRun::Call& c = run.calls[0];
      wire::PeerForward one{run.from,  c.id,      run.kind,   c.session,
                            run.scope, run.group, run.sender, run.timeout_ms};
      AppendCallEntry(b, one, std::string_view(b.run_payloads).substr(4));  // past its length
    } else {
      AppendCallEntry(b, run, b.run_payloads);
      ++b.runs;
    }
    b.forward_run.reset();
    b.run_payloads.clear();
  }
  if (b.ack_run) {
    if (b.ack_run->ids.size() == 1) {
      AppendCallEntry(b, wire::PeerForwardAck{self_, b.ack_run->ids[0], Status::Ok()}, {});
    } else {
      AppendCallEntry(b, *b.ack_run, {});
      ++b.runs;
    }
    b.ack_run.reset();
  }
}

// [CallBatch n][entries], or a lone call as it is: [call] or [call][payload].
void BrokerLoop::FlushCalls(std::string node, TimePoint now) {
  auto it = call_batches_.find(node);
  if (it == call_batches_.end()) return;
  CloseCallRun(it->second);
  CallBatch b = std::move(it->second);
  call_batches_.erase(it);
  bool sent = false;
  if (fail_next_call_sends_ > 0) {
    --fail_next_call_sends_;
  } else if (Link* link = CallLink(node, /*count_unlinked=*/false)) {  // counted below
    zmq::socket_t& dealer = link->dealer;
    const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
    try {
      if (b.count == 1) {
        std::vector<wire::BatchEntry> one;
        (void)wire::SplitMessageBatch(b.entries, 1, &one);  // made by QueueCall just now
        if (b.lone_has_payload) {
          sent = dealer.send(zmq::buffer(one[0].header), more).has_value();
          if (sent) dealer.send(zmq::buffer(one[0].payload), zmq::send_flags::dontwait);
        } else {
          sent = dealer.send(zmq::buffer(one[0].header), zmq::send_flags::dontwait).has_value();
        }
      } else {
        std::string head = wire::Encode(wire::PeerMessage(wire::PeerCallBatch{self_, b.count}));
        sent = dealer.send(zmq::buffer(head), more).has_value();
        if (sent) {
          zmq::message_t entries = MessageOwning(std::move(b.entries));
          dealer.send(entries, zmq::send_flags::dontwait);
          ++counters_.call_batches_out;
        }
      }
    } catch (const zmq::error_t&) {
      sent = false;
    }
  }
  if (sent) {
    counters_.call_runs_out += b.runs;
    return;
  }
  ++counters_.peer_sends_failed;
  // Acks and responses lost here time out where they were awaited; the
  // forwards still waiting for this node go to another member (a direct
  // send has none: it fails), the others were settled meanwhile.
  const Status why = Status::Unavailable("cannot reach " + node);
  for (uint64_t id : b.forwards) {
    const Pending* p = pending_.Find(id);
    if (p == nullptr || p->target.node != node || p->handed) continue;
    Route(id, now, why);
  }
}

void BrokerLoop::FlushAllCalls(TimePoint now) {
  // A forward routed elsewhere may start another batch: until none is left
  // (each pass tries members not tried before, so it ends).
  while (!call_batches_.empty()) FlushCalls(call_batches_.begin()->first, now);
}

// A peer's call batch: every entry checked before any is acted on.
void BrokerLoop::OnCallBatch(const wire::PeerCallBatch& batch, const zmq::message_t& frame,
                             TimePoint now) {
  ++counters_.call_batches_in;
  auto bad = [&](const std::string& why) {
    ++counters_.peer_bad_messages;
    log_.LogLimited(LogLevel::kWarn, "calls-batch",
                    "dropped a call batch from " + batch.from.node + ": " + why);
  };
  std::vector<wire::BatchEntry> entries;
  if (Status s = wire::SplitMessageBatch(frame.to_string_view(), batch.count, &entries); !s.ok()) {
    return bad(s.message());
  }
  std::vector<wire::PeerMessage> calls;
  calls.reserve(entries.size());
  std::vector<std::string_view> payloads;  // of the forwards and responses, in order
  std::vector<std::string_view> run_payloads;
  for (const wire::BatchEntry& e : entries) {
    Result<wire::PeerMessage> m = wire::DecodePeerMessage(e.header);
    if (!m.ok()) return bad(m.status().message());
    if (!wire::BatchesAsCall(*m)) return bad("it holds a message that is not a call");
    const wire::PeerId& from = wire::SenderOf(*m);
    if (from.node != batch.from.node || from.incarnation != batch.from.incarnation) {
      return bad("it holds a call from " + from.node);
    }
    if (const auto* run = std::get_if<wire::PeerForwardRun>(&*m)) {
      Status split = wire::SplitSized(e.payload, run->calls.size(), &run_payloads);
      if (!split.ok()) return bad("a forward run's " + split.message());
      payloads.insert(payloads.end(), run_payloads.begin(), run_payloads.end());
    } else if (wire::CarriesPayload(*m)) {
      payloads.push_back(e.payload);
    } else if (!e.payload.empty()) {
      return bad("an ack with a payload");
    }
    calls.push_back(std::move(m.value()));
  }
  std::span<const std::string_view> next(payloads);
  for (wire::PeerMessage& call : calls) {
    if (auto* run = std::get_if<wire::PeerForwardRun>(&call)) {
      OnForwardRun(*run, next.first(run->calls.size()), now);
      next = next.subspan(run->calls.size());
    } else if (auto* ack = std::get_if<wire::PeerForwardAck>(&call)) {
      OnForwardAck(ack->from, ack->id, ack->status, now);
    } else if (auto* acks = std::get_if<wire::PeerAckRun>(&call)) {
      OnAckRun(*acks, now);
    } else if (auto* forward = std::get_if<wire::PeerForward>(&call)) {
      zmq::message_t payload = ForwardPayload(forward->kind, next.front());
      next = next.subspan(1);
      OnForward(*forward, payload, now);
    } else {
      // A copy: a response may wait in a client's backlog after this frame is gone.
      zmq::message_t payload(next.front().data(), next.front().size());
      next = next.subspan(1);
      OnResponse(std::get<wire::PeerResponse>(call), payload);
    }
  }
}

void BrokerLoop::OnForwardRun(const wire::PeerForwardRun& run,
                              std::span<const std::string_view> payloads, TimePoint now) {
  ++counters_.call_runs_in;
  wire::PeerForward f{run.from, 0, run.kind, 0, run.scope, run.group, run.sender, run.timeout_ms};
  ForwardRunMemo& memo = forward_run_memo_;
  memo.message.reset();
  memo.joined.clear();
  for (size_t i = 0; i < run.calls.size(); ++i) {
    f.id = run.calls[i].id;
    f.session = run.calls[i].session;
    zmq::message_t payload = ForwardPayload(run.kind, payloads[i]);
    OnForward(f, payload, now, &memo);
  }
}

void BrokerLoop::OnAckRun(const wire::PeerAckRun& run, TimePoint now) {
  ++counters_.call_runs_in;
  for (uint64_t id : run.ids) OnForwardAck(run.from, id, Status::Ok(), now);
}

void BrokerLoop::PublishControl(const wire::PeerMessage& message) {
  try {
    control_pub_.send(zmq::buffer(wire::Encode(message)), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    ++counters_.peer_sends_failed;
  }
}

wire::Snapshot BrokerLoop::SelfSnapshot() {
  FlushDeltas();  // a snapshot at seq N holds exactly deltas 1..N
  return wire::Snapshot{seq_, table_.EntriesOf(self_.node)};
}

wire::PeerHello BrokerLoop::MakeHello(bool is_welcome) {
  wire::PeerHello h;
  h.from = self_;
  h.is_welcome = is_welcome;
  h.endpoints = endpoints_;
  for (const auto& [node, peer] : peers_) h.known_peers.push_back(peer.endpoints.calls);
  h.snapshot = SelfSnapshot();
  h.voters = voters_;
  h.registry_epoch = RegistryEpoch();
  return h;
}

void BrokerLoop::PeerTimers(TimePoint now) {
  FailureDetector::Verdicts v = detector_.Tick(now);
  for (const std::string& node : v.probe) {
    ++counters_.probes_sent;
    SendToPeer(node, wire::PeerProbe{self_, next_nonce_++, false});
  }
  for (const std::string& node : v.dead) {
    DeclareDead(node, "failure detector: silent, and did not answer a probe or refused connections",
                now);
  }
  for (auto& [node, peer] : peers_) {
    // Ask again if the snapshot does not come, less and less often, so that
    // an origin that cannot answer is not buried under requests.
    auto wait = kResyncRetry * (1 << std::clamp(peer.resync_requests - 1, 0, 4));
    if (peer.tracker.ResyncOverdue(now, wait)) RequestSync(peer, now);
  }
  if (now >= next_hello_retry_) {
    next_hello_retry_ = now + options_.hello_retry_interval;
    std::vector<std::string> give_up;
    for (auto& [ep, link] : links_) {
      bool met = !link->node.empty() && peers_.count(link->node);
      if (met || (link->node.size() && blocked_.count(link->node))) continue;
      // An address that never answered at all (listed wrongly, or by a
      // hostile peer) is dropped after a while. Seeds and peers we once met
      // are kept: their hellos are how a partition heals, however long.
      if (!link->is_seed && link->node.empty() &&
          link->unanswered_hellos >= kHellosBeforeGivingUp) {
        give_up.push_back(ep);
        continue;
      }
      SendHello(*link, now);
    }
    for (const std::string& ep : give_up) {
      log_.Log(LogLevel::kInfo, "no answer from " + ep + " after " +
                                    std::to_string(kHellosBeforeGivingUp) + " hellos: link closed");
      links_.erase(ep);
    }
  }
}

}  // namespace meshbus
