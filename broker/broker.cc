// The broker's sockets, its poll loop and timers, and the public Broker.
#include "broker/broker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <random>

#include "broker/broker_loop.h"

namespace meshbus {
namespace {

// "tcp://HOST:PORT" -> HOST (brackets kept for IPv6).
std::string HostOf(const std::string& tcp_endpoint) {
  std::string rest = tcp_endpoint.substr(6);
  size_t colon = rest.rfind(':');
  return colon == std::string::npos ? rest : rest.substr(0, colon);
}

std::string WithHost(const std::string& tcp_endpoint, const std::string& host) {
  std::string rest = tcp_endpoint.substr(6);
  size_t colon = rest.rfind(':');
  return "tcp://" + host + (colon == std::string::npos ? "" : rest.substr(colon));
}

uint64_t FreshIncarnation() {
  // Microseconds since the epoch: a restarted node gets a larger value, which
  // lets peers tell a restart from a late message of the old process.
  uint64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return us == 0 ? 1 : us;
}

}  // namespace

BrokerLoop::BrokerLoop(BrokerOptions options)
    : options_(std::move(options)),
      log_(options_.node_name, ParseLogLevel(options_.log_level)),
      context_(1),
      detector_(FailureDetector::Options{
          options_.suspicion_timeout, options_.probe_timeout,
          std::chrono::milliseconds(std::max<int64_t>(3 * options_.heartbeat_interval.count(),
                                                      options_.probe_timeout.count())),
          2}) {
  self_.node = options_.node_name;
  self_.incarnation = FreshIncarnation();
  client_endpoint_ = options_.ClientEndpoint();
}

BrokerLoop::~BrokerLoop() {
  if (thread_.joinable()) Stop(true);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<std::unique_ptr<BrokerLoop>> BrokerLoop::Create(BrokerOptions options) {
  if (Status s = options.Validate(); !s.ok()) return s;
  std::unique_ptr<BrokerLoop> loop(new BrokerLoop(std::move(options)));
  if (Status s = loop->Bind(); !s.ok()) return s;
  if (Status s = loop->StartRegistry(); !s.ok()) return s;
  return loop;
}

Status BrokerLoop::Bind() {
  std::string host = HostOf(options_.listen);
  std::string advertise = options_.advertise_host.empty() ? host : options_.advertise_host;
  if (advertise == "0.0.0.0" || advertise == "*" || advertise == "[::]") {
    return Status::InvalidArgument("listen address " + options_.listen +
                                   " binds every interface: give --advertise HOST for peers");
  }
  std::string step;
  try {
    auto last_endpoint = [](zmq::socket_t& s) { return s.get(zmq::sockopt::last_endpoint); };

    step = "bind the calls socket to " + options_.listen;
    calls_ = zmq::socket_t(context_, zmq::socket_type::router);
    calls_.set(zmq::sockopt::linger, 0);
    calls_.set(zmq::sockopt::router_mandatory, 1);
    calls_.set(zmq::sockopt::sndhwm, 100000);
    calls_.set(zmq::sockopt::rcvhwm, 100000);
    // libzmq allocates what a frame header claims: cap it at what we decode.
    calls_.set(zmq::sockopt::maxmsgsize, int64_t(wire::kMaxFrameBytes));
    calls_.bind(options_.listen);
    endpoints_.calls = WithHost(last_endpoint(calls_), advertise);

    // The PUB sockets bind on the same host, on ports the OS picks; peers
    // learn them in the hello exchange.
    auto bind_pub = [&](zmq::socket_t& pub, const char* what) {
      step = std::string("bind the ") + what + " socket on " + host;
      pub = zmq::socket_t(context_, zmq::socket_type::pub);
      pub.set(zmq::sockopt::linger, 0);
      pub.set(zmq::sockopt::sndhwm, 100000);
      pub.bind("tcp://" + host + ":*");
      return WithHost(last_endpoint(pub), advertise);
    };
    endpoints_.control = bind_pub(control_pub_, "control");
    // The data socket is an XPUB: it tells us which prefixes peers subscribe
    // to, so that we number each subscription's messages (data_streams.h).
    step = "bind the data socket on " + host;
    data_pub_ = zmq::socket_t(context_, zmq::socket_type::xpub);
    data_pub_.set(zmq::sockopt::linger, 0);
    data_pub_.set(zmq::sockopt::sndhwm, 100000);
    data_pub_.bind("tcp://" + host + ":*");
    endpoints_.data = WithHost(last_endpoint(data_pub_), advertise);

    control_sub_ = zmq::socket_t(context_, zmq::socket_type::sub);
    control_sub_.set(zmq::sockopt::linger, 0);
    control_sub_.set(zmq::sockopt::rcvhwm, 100000);
    control_sub_.set(zmq::sockopt::maxmsgsize, int64_t(wire::kMaxFrameBytes));
    control_sub_.set(zmq::sockopt::subscribe, "");
    data_sub_ = zmq::socket_t(context_, zmq::socket_type::sub);
    data_sub_.set(zmq::sockopt::linger, 0);
    data_sub_.set(zmq::sockopt::rcvhwm, 100000);
    data_sub_.set(zmq::sockopt::maxmsgsize, int64_t(wire::kMaxFrameBytes));

    step = "bind the client socket to " + client_endpoint_;
    clients_ = zmq::socket_t(context_, zmq::socket_type::router);
    clients_.set(zmq::sockopt::linger, 0);
    // A full client queue is an error we count and report, never a silent drop.
    clients_.set(zmq::sockopt::router_mandatory, 1);
    clients_.set(zmq::sockopt::sndhwm, options_.client_queue_messages);
    clients_.set(zmq::sockopt::rcvhwm, 100000);
    clients_.set(zmq::sockopt::maxmsgsize, int64_t(wire::kMaxFrameBytes));
    // A client that reconnects with its routing id keeps its session.
    clients_.set(zmq::sockopt::router_handover, 1);
    clients_.bind(client_endpoint_);

  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot " + step + ": " + e.what());
  }
  // Other threads wake the loop through an eventfd: polled as a plain
  // descriptor, it costs less on every wake-up than a ZeroMQ pipe would.
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return Status::Internal(std::string("eventfd: ") + std::strerror(errno));
  // The loop sends on each of them, or connects and subscribes the SUBs.
  inputs_[kClientsInput] = PolledSocket(clients_, /*sent_on=*/true);
  inputs_[kCallsInput] = PolledSocket(calls_, /*sent_on=*/true);
  inputs_[kControlInput] = PolledSocket(control_sub_, /*sent_on=*/true);
  inputs_[kDataInput] = PolledSocket(data_sub_, /*sent_on=*/true);
  inputs_[kSubscriptionsInput] = PolledSocket(data_pub_, /*sent_on=*/true);
  return Status::Ok();
}

void BrokerLoop::StartThread() {
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void BrokerLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void BrokerLoop::RunAndWait(std::function<void()> fn) {
  std::promise<void> done;
  std::future<void> f = done.get_future();
  {
    // Checked under the lock the loop takes to stop, so the function either
    // runs on the loop or not at all, and never waits for a loop that left.
    std::lock_guard<std::mutex> lock(post_mu_);
    if (!running_) return;
    posted_.push_back([&] {
      fn();
      done.set_value();
    });
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  f.wait();
}

void BrokerLoop::Stop(bool graceful) {
  if (!thread_.joinable()) return;
  Post([this, graceful] {
    stopping_ = true;
    graceful_stop_ = graceful;
  });
  thread_.join();
}

void BrokerLoop::DrainPosted() {
  uint64_t count;
  (void)!::read(wake_fd_, &count, sizeof count);
  std::deque<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

void BrokerLoop::Run() {
  log_.Log(LogLevel::kInfo,
           "broker up: incarnation " + IncarnationHex(self_.incarnation) + ", calls " +
               endpoints_.calls + ", clients " + client_endpoint_ +
               (options_.seeds.empty() ? "" : ", seeds " + std::to_string(options_.seeds.size())));
  TimePoint now = Clock::now();
  started_ = now;
  next_heartbeat_ = now;
  next_hello_retry_ = now + options_.hello_retry_interval;
  next_session_check_ = now;
  for (const std::string& seed : options_.seeds) {
    if (seed == endpoints_.calls) continue;
    if (Link* link = EnsureLink(seed)) SendHello(*link, now);
  }
  while (!stopping_) {
    try {
      PollOnce();
    } catch (const std::exception& e) {
      // A bug, not bad input (that is validated before use): keep serving.
      log_.LogLimited(LogLevel::kError, "loop", std::string("loop error: ") + e.what());
    }
  }
  if (graceful_stop_) {
    PublishControl(wire::PeerBye{self_});
    control_pub_.set(zmq::sockopt::linger, 200);  // let the bye go out
  }
  log_.Log(LogLevel::kInfo, graceful_stop_ ? "broker stopped" : "broker stopped abruptly");
  // Close every socket on the thread that owned them.
  links_.clear();
  for (zmq::socket_t* s : {&clients_, &calls_, &control_sub_, &data_pub_, &data_sub_}) {
    s->close();
  }
  control_pub_.close();
  // Anything posted after the last turn still runs (RunAndWait callers wait
  // for it); no function posted later is accepted.
  std::deque<std::function<void()>> late;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    running_ = false;
    late.swap(posted_);
  }
  for (auto& fn : late) fn();
}

BrokerLoop::TimePoint BrokerLoop::NextTimer() const {
  // The failure detector needs a look every few ms to keep its verdicts prompt.
  return std::min(next_heartbeat_, Clock::now() + std::chrono::milliseconds(10));
}

// Receives up to a budget of messages from one socket, so that no socket
// starves the others, handing each to `handle`. Returns whether the socket
// may have more (it stopped at the budget, not because a receive would block).
template <typename Handler>
bool BrokerLoop::Drain(zmq::socket_t& socket, Handler&& handle) {
  constexpr int kBudget = 2000;
  for (int i = 0; i < kBudget; ++i) {
    frames_.clear();
    if (!zmq::recv_multipart(socket, std::back_inserter(frames_), zmq::recv_flags::dontwait))
      return false;
    handle(frames_);
  }
  return true;
}

void BrokerLoop::PollOnce() {
  // The wake-up eventfd (a plain descriptor), the inbound sockets, and each
  // link's DEALER and monitor (input_poller.h: why not zmq_poll).
  polled_.clear();
  for (PolledSocket& s : inputs_) polled_.push_back(&s);
  poll_links_.clear();
  for (auto& [ep, link] : links_) {
    polled_.push_back(&link->dealer_input);
    polled_.push_back(&link->monitor_input);
    poll_links_.push_back(link.get());
  }
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(NextTimer() - Clock::now());
  const bool woken = poller_.Wait(polled_, wake_fd_, wait);

  TimePoint now = Clock::now();
  if (woken) DrainPosted();
  if (stopping_) return;
  // Each socket that may have input is read until it would block or its
  // budget is spent; what is left is read next turn, which does not wait.
  auto drain = [&](PolledSocket& input, zmq::socket_t& socket, auto&& handle) {
    if (input.may_have_input) input.may_have_input = Drain(socket, handle);
  };
  drain(inputs_[kClientsInput], clients_, [&](auto& frames) { OnClientMessage(frames, now); });
  drain(inputs_[kCallsInput], calls_, [&](auto& frames) { OnCallsMessage(frames, now); });
  drain(inputs_[kControlInput], control_sub_, [&](auto& frames) {
    if (frames.size() != 1) {
      ++counters_.peer_messages_in;
      ++counters_.peer_bad_messages;
      log_.LogLimited(
          LogLevel::kWarn, "control-frames",
          "dropped a control message with " + std::to_string(frames.size()) + " frames");
      return;
    }
    OnControlMessage(frames[0], now);
  });
  drain(inputs_[kDataInput], data_sub_, [&](auto& frames) { OnDataMessage(frames, now); });
  drain(inputs_[kSubscriptionsInput], data_pub_, [&](auto& frames) { OnDataSubscription(frames); });
  for (Link* link : poll_links_) {
    drain(link->dealer_input, link->dealer, [&](auto& frames) {
      if (frames.size() != 1) {
        ++counters_.peer_messages_in;
        ++counters_.peer_bad_messages;
        return;
      }
      OnLinkMessage(*link, frames[0], now);
    });
    if (link->monitor_input.may_have_input) {
      link->monitor_input.may_have_input = OnLinkEvent(*link, now);
    }
  }
  FlushTurn(now);
  FlushBacklogs();
  FlushDeltas();
  OnTimers(Clock::now());
  // After every input of the turn, so that one fsync covers them all.
  HandleRaftReady(Clock::now());
  FlushDeltas();
  // Whatever timers and the registry delivered: no batch waits for the next turn.
  FlushTurn(Clock::now());
}

void BrokerLoop::OnTimers(TimePoint now) {
  // The loop turns at least every 10 ms. A longer gap means this broker did
  // not run (SIGSTOP, a stalled host, a long burst): its clients and peers
  // may well have spoken, and their messages wait in the queues, so silence
  // during the gap must not end sessions or condemn peers.
  if (last_turn_ != TimePoint{} && now - last_turn_ > kStallThreshold) {
    auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_turn_);
    for (auto& [id, session] : sessions_) session.last_heard += gap;
    detector_.Shift(gap);
    ++counters_.loop_stalls;
    log_.LogLimited(LogLevel::kWarn, "stall",
                    "the loop did not run for " + std::to_string(gap.count()) +
                        " ms: timers of sessions and peers moved on by as much");
  }
  last_turn_ = now;
  if (now >= next_heartbeat_) {
    PublishControl(wire::PeerHeartbeat{self_, seq_, endpoints_.calls});
    SendDataMarks();
    next_heartbeat_ = now + options_.heartbeat_interval;
  }
  PeerTimers(now);
  MessagingTimers(now);
  NamingTimers(now);
  if (now >= next_session_check_) {
    CheckSessions(now);
    next_session_check_ = now + std::chrono::milliseconds(50);
  }
}

void BrokerLoop::FlushDeltas() {
  // One delta per loop turn amortises the cost; cut into chunks so that no
  // delta grows past what a peer will decode, however much a turn did.
  for (size_t from = 0; from < pending_ops_.size(); from += wire::kMaxOpsPerDelta) {
    size_t to = std::min(pending_ops_.size(), from + wire::kMaxOpsPerDelta);
    wire::PeerDelta delta{
        self_, ++seq_,
        std::vector<wire::DeltaOp>(std::make_move_iterator(pending_ops_.begin() + from),
                                   std::make_move_iterator(pending_ops_.begin() + to))};
    if (drop_next_deltas_ > 0) {
      --drop_next_deltas_;
      ++counters_.deltas_dropped_on_purpose;
      continue;
    }
    PublishControl(delta);
    ++counters_.deltas_sent;
  }
  pending_ops_.clear();
}

// Sends [routing id][body][payload]; the payload (if any) is consumed only
// when the send succeeds, so a refused one can be kept and sent elsewhere.
bool BrokerLoop::SendFrames(zmq::socket_ref socket, const std::string& routing_id,
                            const std::string& body, zmq::message_t* payload) {
  try {
    // ROUTER_MANDATORY refuses the first frame, with nothing sent, when the
    // peer's queue is full; once it is taken, the others are taken too.
    if (!socket.send(zmq::buffer(routing_id),
                     zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return false;
    }
    if (payload == nullptr)
      return socket.send(zmq::buffer(body), zmq::send_flags::dontwait).has_value();
    if (!socket.send(zmq::buffer(body), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return false;
    }
    return socket.send(*payload, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH: that peer or client is gone
  }
}

void BrokerLoop::NotifyMonitors(const GroupChanges& changes) {
  for (const GroupChange& c : changes) {
    auto scope = monitors_by_scope_.find(c.scope);
    if (scope == monitors_by_scope_.end()) continue;
    for (uint64_t ref : scope->second) {
      const MonitorReg& reg = monitors_.at(ref);
      if (reg.group && *reg.group != c.group) continue;
      auto s = sessions_.find(reg.session);
      if (s == sessions_.end()) continue;
      Deliver(s->second, wire::Event{ref, c.kind, c.scope, c.group, c.members});
    }
  }
}

std::map<std::string, uint64_t> BrokerLoop::CounterMap() const {
  const BrokerCounters& c = counters_;
  std::map<std::string, uint64_t> m = {
      {"client_messages_in", c.client_messages_in},
      {"client_messages_out", c.client_messages_out},
      {"client_batches_out", c.client_batches_out},
      {"client_bad_messages", c.client_bad_messages},
      {"client_deliveries_lost", c.client_deliveries_lost},
      {"client_replies_delayed", c.client_replies_delayed},
      {"sessions_opened", c.sessions_opened},
      {"sessions_ended", c.sessions_ended},
      {"sessions_timed_out", c.sessions_timed_out},
      {"sessions_open", sessions_.size()},
      {"peer_messages_in", c.peer_messages_in},
      {"peer_bad_messages", c.peer_bad_messages},
      {"peer_stale_messages", c.peer_stale_messages},
      {"peer_unknown_messages", c.peer_unknown_messages},
      {"peer_blocked_messages", c.peer_blocked_messages},
      {"peer_sends_failed", c.peer_sends_failed},
      {"deltas_sent", c.deltas_sent},
      {"deltas_dropped_on_purpose", c.deltas_dropped_on_purpose},
      {"deltas_applied", c.deltas_applied},
      {"delta_gaps", c.delta_gaps},
      {"delta_inconsistencies", c.delta_inconsistencies},
      {"resyncs_requested", c.resyncs_requested},
      {"snapshots_served", c.snapshots_served},
      {"snapshots_applied", c.snapshots_applied},
      {"peers_met", c.peers_met},
      {"peers_purged", c.peers_purged},
      {"links", links_.size()},
      {"links_refused", c.links_refused},
      {"loop_stalls", c.loop_stalls},
      {"peers_alive", peers_.size()},
      {"probes_sent", c.probes_sent},
      {"groups", table_.GroupCountTotal()},
      {"delta_seq", seq_},
      {"client_bytes_in", c.client_bytes_in},
      {"client_bytes_out", c.client_bytes_out},
      {"publishes_in", c.publishes_in},
      {"broadcasts_in", c.broadcasts_in},
      {"dispatches_in", c.dispatches_in},
      {"requests_in", c.requests_in},
      {"responses_in", c.responses_in},
      {"sends_in", c.sends_in},
      {"messages_delivered", c.messages_delivered},
      {"messages_too_large", c.messages_too_large},
      {"slow_consumers", c.slow_consumers},
      {"data_messages_out", c.data_messages_out},
      {"data_batches_out", c.data_batches_out},
      {"data_bytes_out", c.data_bytes_out},
      {"data_messages_in", c.data_messages_in},
      {"data_batches_in", c.data_batches_in},
      {"data_bytes_in", c.data_bytes_in},
      {"data_marks_out", c.data_marks_out},
      {"data_gaps", c.data_gaps},
      {"data_messages_lost", c.data_messages_lost},
      {"data_duplicates", c.data_duplicates},
      {"data_undeliverable", c.data_undeliverable},
      {"forwards_sent", c.forwards_sent},
      {"call_batches_out", c.call_batches_out},
      {"call_batches_in", c.call_batches_in},
      {"call_runs_out", c.call_runs_out},
      {"call_runs_in", c.call_runs_in},
      {"forwards_received", c.forwards_received},
      {"forwards_refused", c.forwards_refused},
      {"redispatches", c.redispatches},
      {"dispatch_failures", c.dispatch_failures},
      {"request_timeouts", c.request_timeouts},
      {"request_failures", c.request_failures},
      {"responses_unclaimed", c.responses_unclaimed},
      {"subscriptions", topics_.prefix_count()},
      {"pending_outcomes", pending_.size()},
      {"data_dropped_on_purpose", c.data_dropped_on_purpose},
      {"subscriptions_unconfirmed", c.subscriptions_unconfirmed},
      {"client_bytes_queued", QueuedClientBytes()},
      {"name_calls", c.name_calls},
      {"name_calls_forwarded", c.name_calls_forwarded},
      {"name_calls_served", c.name_calls_served},
      {"name_no_leader", c.name_no_leader},
      {"name_timeouts", c.name_timeouts},
      {"name_releases", c.name_releases},
      {"name_bad_calls", c.name_bad_calls},
      {"name_answers_stale", c.name_answers_stale},
      {"names", registry_.size()},
      {"raft_messages_in", c.raft_messages_in},
      {"raft_messages_out", c.raft_messages_out},
      {"raft_bad_messages", c.raft_bad_messages + (raft_ ? raft_->bad_messages() : 0)},
      {"raft_foreign_messages", c.raft_foreign_messages},
      {"raft_bad_entries", c.raft_bad_entries},
      {"raft_snapshots_taken", c.raft_snapshots_taken},
      {"raft_snapshots_installed", c.raft_snapshots_installed},
      {"raft_term", raft_ ? raft_->term() : 0},
      {"raft_commit", raft_ ? raft_->commit_index() : 0},
      {"raft_is_leader", raft_ && raft_->role() == raft::Role::kLeader ? 1u : 0u},
  };
  return m;
}

uint64_t BrokerLoop::QueuedClientBytes() const {
  uint64_t total = 0;
  for (const auto& [id, s] : sessions_) {
    total += s.outstanding_bytes;
    for (const Frame& f : s.backlog) total += f.body.size() + (f.payload ? f.payload->size() : 0);
  }
  return total;
}

void BrokerLoop::SetBlockedPeers(std::vector<std::string> nodes) {
  blocked_ = std::unordered_set<std::string>(nodes.begin(), nodes.end());
}

void BrokerLoop::ForceResync() {
  TimePoint now = Clock::now();
  for (auto& [node, peer] : peers_) {
    peer.tracker.StartResync(now);
    RequestSync(peer, now);
  }
}

// ---- Broker ----------------------------------------------------------------

Broker::Broker(std::unique_ptr<BrokerLoop> loop) : loop_(std::move(loop)) {}
Broker::~Broker() {
  Stop(true);
}

Result<std::unique_ptr<Broker>> Broker::Start(BrokerOptions options) {
  Result<std::unique_ptr<BrokerLoop>> loop = BrokerLoop::Create(std::move(options));
  if (!loop.ok()) return loop.status();
  std::unique_ptr<Broker> broker(new Broker(std::move(loop.value())));
  broker->loop_->StartThread();
  return broker;
}

void Broker::Stop(bool graceful) {
  if (loop_) loop_->Stop(graceful);
}
const std::string& Broker::node() const {
  return loop_->node();
}
uint64_t Broker::incarnation() const {
  return loop_->incarnation();
}
const std::string& Broker::client_endpoint() const {
  return loop_->client_endpoint();
}
const std::string& Broker::calls_endpoint() const {
  return loop_->calls_endpoint();
}

std::map<std::string, uint64_t> Broker::Stats() {
  std::map<std::string, uint64_t> out;
  loop_->RunAndWait([&] { out = loop_->CounterMap(); });
  return out;
}
void Broker::SetBlockedPeers(std::vector<std::string> nodes) {
  loop_->RunAndWait([&] { loop_->SetBlockedPeers(nodes); });
}
void Broker::DropNextDeltas(int n) {
  loop_->RunAndWait([&] { loop_->DropNextDeltas(n); });
}
void Broker::DropNextData(int n) {
  loop_->RunAndWait([&] { loop_->DropNextData(n); });
}
void Broker::FailNextCallSends(int n) {
  loop_->RunAndWait([&] { loop_->FailNextCallSends(n); });
}
void Broker::FailNextDeliveryFlushes(int n) {
  loop_->RunAndWait([&] { loop_->FailNextDeliveryFlushes(n); });
}
void Broker::ForceResync() {
  loop_->RunAndWait([&] { loop_->ForceResync(); });
}

}  // namespace meshbus
