#include "sdk/client.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <system_error>
#include <thread>

#include <zmq.hpp>

namespace meshbus {

std::string DefaultBrokerEndpoint() {
  if (const char* env = std::getenv("MESHBUS_BROKER"); env != nullptr && *env != 0) return env;
  return "ipc:///tmp/meshbus-" + DefaultNodeName() + ".ipc";
}

namespace {

Status CheckGroup(const std::string& scope, const std::string& group) {
  if (Status s = ValidateScope(scope); !s.ok()) return s;
  return ValidateGroup(group);
}

// One ZeroMQ context (one I/O thread) for every Client of the process: a
// context per client would cost a thread each. Never terminated: a context
// blocks termination until every socket is closed, and a leaked Client must
// not hang the process at exit.
// 16 random bytes; the first is not 0, which libzmq keeps for ids it makes.
std::string RandomRoutingId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id(16, '\0');
  for (char& c : id) c = static_cast<char>(rng());
  id[0] = static_cast<char>(1 + rng() % 255);
  return id;
}

zmq::context_t& SharedContext() {
  static zmq::context_t* context = new zmq::context_t(1);
  return *context;
}

}  // namespace

// The session's sockets and state. The heartbeat thread has a socket of its
// own (sockets are not shared across threads) and sends only heartbeats.
struct Client::Impl {
  using Clock = std::chrono::steady_clock;

  ClientOptions options;
  zmq::context_t& context = SharedContext();
  zmq::socket_t dealer;
  int dealer_fd = -1;  // its ZMQ_FD
  MemberId self;
  uint64_t token = 0;
  std::chrono::milliseconds heartbeat_interval{200};
  uint64_t next_req = 1;
  std::deque<Delivery> pending;
  std::set<uint64_t> async_tickets;  // *Async calls whose outcome has not come
  uint64_t max_message_bytes = 1u << 20;
  size_t credit_every = 256u << 10;
  size_t unreported_bytes = 0;
  bool closed = false;

  std::thread heartbeat_thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stop_heartbeats = false;

  ~Impl() { Shutdown(); }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop_heartbeats = true;
    }
    cv.notify_all();
    if (heartbeat_thread.joinable()) heartbeat_thread.join();
    dealer.close();
  }

  // One message from the broker, with its payload frame if it has one.
  struct Inbound {
    wire::ClientInbound message;
    std::string payload;
  };
  // The rest of a batch Read took in, left in its frame until it is read:
  // its distinct headers, decoded once each, and each message's header and
  // where its payload lies (offsets: a small frame's bytes move with it).
  struct UnreadBatch {
    zmq::message_t frame;
    std::vector<wire::Message> headers;
    struct Entry {
      uint32_t header = 0;
      uint32_t offset = 0, size = 0;  // the payload's, in frame
    };
    std::vector<Entry> entries;
    size_t next = 0;

    bool empty() const { return next == entries.size(); }
    void clear() {
      headers.clear();
      entries.clear();
      next = 0;
      frame.rebuild(size_t{0});
    }
    // The next message, as the user gets it (a copy of its header's fields
    // and its payload, nothing more), into `m`, which the caller made where
    // the message is to be: a message moved costs as much as one built.
    void TakeInto(Message* m) {
      const Entry& e = entries[next++];
      const wire::Message& h = headers[e.header];
      // `m` is new, and a message leaves most of its fields empty.
      auto copy = [](const std::string& from, std::string* to) {
        if (!from.empty()) *to = from;
      };
      m->kind = h.kind;
      m->from = h.from;
      copy(h.topic, &m->topic);
      copy(h.scope, &m->scope);
      copy(h.group, &m->group);
      copy(h.reply_to, &m->reply_to);
      m->payload.assign(static_cast<const char*>(frame.data()) + e.offset, e.size);
      if (empty()) clear();  // the frame goes as soon as its last message is read
    }
  } unread;
  // The next message of `unread`, made where the caller's result is (its one
  // return is elided): not moved once.
  Result<Delivery> TakeUnread() {
    Result<Delivery> out(std::in_place, std::in_place_type<Message>);
    unread.TakeInto(&std::get<Message>(*out));
    return out;
  }

  // Sends body, and the payload after it in the same frame (one ZeroMQ
  // message of one frame, not two: see topics/wire.h), waiting up to
  // `timeout` for room. Most sends go at once: the clock is read only when
  // one must wait.
  Status Send(const std::string& body, const std::string_view* payload,
              std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLOUT, 0};
    const size_t payload_bytes = payload ? payload->size() : 0;
    zmq::message_t frame(body.size() + payload_bytes);
    std::memcpy(frame.data(), body.data(), body.size());
    if (payload_bytes)
      std::memcpy(frame.data<char>() + body.size(), payload->data(), payload_bytes);
    std::optional<Clock::time_point> deadline;
    while (true) {
      try {
        // Refused for want of room, the frame is left as it was.
        if (dealer.send(frame, zmq::send_flags::dontwait)) return Status::Ok();
        if (!deadline) deadline = Clock::now() + timeout;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
        if (left.count() <= 0) break;
        zmq::poll(&item, 1, left);
      } catch (const zmq::error_t& e) {
        return Status::Unreachable(std::string("cannot send to the broker: ") + e.what());
      }
    }
    return Status::Unreachable("broker not reachable at " + options.endpoint);
  }

  // How often a wait looks whether the broker ended the session.
  static constexpr std::chrono::milliseconds kLostCheckInterval{100};
  // Reads one message, waiting until `deadline`; nullopt on timeout, and
  // the session's loss once nothing is left to read.
  Result<std::optional<Inbound>> Read(Clock::time_point deadline) {
    if (!unread.empty()) {
      Message m;
      unread.TakeInto(&m);
      wire::Message header{m.kind,
                           std::move(m.from),
                           std::move(m.topic),
                           std::move(m.scope),
                           std::move(m.group),
                           std::move(m.reply_to)};
      return std::optional<Inbound>(Inbound{std::move(header), std::move(m.payload)});
    }
    while (true) {
      try {
        zmq::message_t msg;
        if (dealer.recv(msg, zmq::recv_flags::dontwait)) {
          size_t bytes = msg.size();
          std::vector<zmq::message_t> rest;  // the payload frame, or a batch's frames
          for (bool more = msg.more(); more;) {
            zmq::message_t part;
            if (!dealer.recv(part, zmq::recv_flags::dontwait)) break;  // parts come together
            bytes += part.size();
            more = part.more();
            rest.push_back(std::move(part));
          }
          Result<wire::ClientInbound> in = wire::DecodeClientInbound(msg.to_string_view());
          if (in.ok()) {
            if (auto* batch = std::get_if<wire::MessageBatch>(&*in)) {
              return Unbatch(*batch, rest, bytes);
            }
          }
          Consumed(bytes);
          if (!in.ok()) return Status::BadMessage("from the broker: " + in.status().message());
          if (rest.size() > 1 || wire::CarriesPayload(*in) != (rest.size() == 1)) {
            return Status::BadMessage("from the broker: unexpected frames");
          }
          Inbound out{std::move(in.value()), rest.empty() ? std::string() : rest[0].to_string()};
          return std::optional<Inbound>(std::move(out));
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return std::optional<Inbound>();
        // Nothing answers a session the broker ended (the heartbeat thread
        // hears of it): say so now, not at the deadline.
        if (session_lost) return LostStatus();
        // The receive that would block took in the socket's commands, so its
        // descriptor alone signals new input: one poll(2), where zmq_poll
        // would also ask the socket before and after it sleeps.
        pollfd fd{dealer_fd, POLLIN, 0};
        if (::poll(&fd, 1, static_cast<int>(std::min(left, kLostCheckInterval).count())) < 0 &&
            errno == EINTR) {
          return Status::Unavailable("interrupted by a signal");
        }
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) return Status::Unavailable("interrupted by a signal");
        return Status::Unreachable(std::string("cannot read from the broker: ") + e.what());
      }
    }
  }

  // A batch's messages, each checked, the first returned and the others
  // kept for the next reads; none of them if any is malformed. A header the
  // broker sent once for many entries is decoded once.
  Result<std::optional<Inbound>> Unbatch(const wire::MessageBatch& batch,
                                         std::vector<zmq::message_t>& frames, size_t raw_bytes) {
    auto bad = [&](const std::string& why) {
      Consumed(raw_bytes);
      unread.clear();
      return Status::BadMessage("from the broker: " + why);
    };
    if (frames.size() != 1) {
      return bad("a batch of " + std::to_string(batch.count) + " messages in " +
                 std::to_string(frames.size()) + " frames, not one");
    }
    if (Status s = wire::SplitMessageBatch(frames[0].to_string_view(), batch.count, &entries);
        !s.ok()) {
      return bad(s.message());
    }
    // Counted as the broker counts them: each message's header and payload.
    size_t bytes = 0;
    for (const wire::BatchEntry& e : entries) bytes += e.header.size() + e.payload.size();
    unread.clear();
    std::string_view decoded;  // the header of unread.headers.back()
    const char* base = static_cast<const char*>(frames[0].data());
    for (const wire::BatchEntry& e : entries) {
      if (e.header.data() != decoded.data()) {
        Result<wire::ClientInbound> m = wire::DecodeClientInbound(e.header);
        if (!m.ok()) return bad(m.status().message());
        auto* message = std::get_if<wire::Message>(&*m);
        if (message == nullptr) return bad("a batch holds only messages");
        unread.headers.push_back(std::move(*message));
        decoded = e.header;
      }
      unread.entries.push_back({static_cast<uint32_t>(unread.headers.size() - 1),
                                static_cast<uint32_t>(e.payload.data() - base),
                                static_cast<uint32_t>(e.payload.size())});
    }
    // The views above are into frames[0] where it lies now; the offsets
    // hold wherever the moved frame keeps its bytes.
    unread.frame = std::move(frames[0]);
    Consumed(bytes);
    if (unread.empty()) return std::optional<Inbound>();  // (a batch has entries: not reached)
    return Read(Clock::now());
  }
  std::vector<wire::BatchEntry> entries;  // Unbatch's, kept for its capacity

  // Tells the broker what this client consumed, so that it keeps sending:
  // it holds back (and reports as lost) what would exceed the client's queue.
  void Consumed(size_t bytes) {
    unreported_bytes += bytes;
    if (self.session == 0 || unreported_bytes < credit_every) return;
    std::string credit =
        wire::Encode(wire::ClientRequest(wire::Credit{self.session, token, unreported_bytes}));
    try {
      if (dealer.send(zmq::buffer(credit), zmq::send_flags::dontwait)) unreported_bytes = 0;
    } catch (const zmq::error_t&) {
      // Sent with the next message read.
    }
  }

  // What a message from the broker is to the user: a delivery, or nothing
  // (the late reply to a call that timed out).
  std::optional<Delivery> ToDelivery(Inbound& in) {
    if (auto* e = std::get_if<wire::Event>(&in.message)) {
      return MonitorEvent{e->ref, e->kind, std::move(e->scope), std::move(e->group),
                          std::move(e->members)};
    }
    if (auto* g = std::get_if<wire::Gap>(&in.message)) return GapNotice{g->lost};
    if (auto* e = std::get_if<wire::NameEvent>(&in.message)) {
      return NameEvent{e->ref, e->kind, std::move(e->entry)};
    }
    if (auto* m = std::get_if<wire::Message>(&in.message)) {
      return Message{m->kind,
                     std::move(m->from),
                     std::move(m->topic),
                     std::move(m->scope),
                     std::move(m->group),
                     std::move(m->reply_to),
                     std::move(in.payload)};
    }
    auto& reply = std::get<wire::Reply>(in.message);
    bool awaited = async_tickets.erase(reply.req) > 0;
    if (!awaited && !(reply.req == 0 && !reply.status.ok())) return std::nullopt;
    Outcome out{reply.req, reply.status, {}, {}, {}};
    if (auto* d = std::get_if<wire::DeliveredBody>(&reply.body)) out.member = d->member;
    if (auto n = dispatch_many_sizes.find(reply.req); n != dispatch_many_sizes.end()) {
      const size_t count = n->second;
      dispatch_many_sizes.erase(n);
      out.status = DispatchResults(reply, count, &out.dispatched);
    }
    if (auto* r = std::get_if<wire::ResponseBody>(&reply.body)) {
      out.member = r->member;
      out.payload = std::move(in.payload);
    }
    return out;
  }

  uint64_t Stamp(wire::ClientRequest& request) {
    uint64_t req = next_req++;
    std::visit(
        [&](auto& r) {
          if constexpr (requires { r.req; }) r.req = req;
        },
        request);
    return req;
  }

  // Sends a request and waits for its reply; deliveries that come first are
  // kept, in order, for Receive().
  // An error reply is returned as its Status, unless `keep_errors`: then as
  // the reply itself, whose body may say more (who holds a taken name).
  Result<Inbound> Call(wire::ClientRequest request, std::chrono::milliseconds timeout,
                       const std::string_view* payload = nullptr, bool keep_errors = false) {
    if (closed) return Status::Unavailable("the client is closed");
    if (session_lost && !std::holds_alternative<wire::Bye>(request)) return LostStatus();
    uint64_t req = Stamp(request);
    Clock::time_point deadline = Clock::now() + timeout;
    if (Status s = Send(wire::Encode(request), payload, timeout); !s.ok()) return s;
    while (true) {
      Result<std::optional<Inbound>> in = Read(deadline);
      if (!in.ok()) return in.status();
      if (!in->has_value()) {
        return Status::Timeout("no answer from the broker at " + options.endpoint + " within " +
                               std::to_string(timeout.count()) + " ms");
      }
      Inbound& m = **in;
      if (auto* reply = std::get_if<wire::Reply>(&m.message); reply && reply->req == req) {
        if (!reply->status.ok() && !keep_errors) return reply->status;
        return std::move(m);
      }
      if (std::optional<Delivery> d = ToDelivery(m)) pending.push_back(std::move(*d));
    }
  }

  // Sends a request whose reply will be an Outcome delivery; returns its ticket.
  Result<uint64_t> CallAsync(wire::ClientRequest request, std::string_view payload) {
    if (closed) return Status::Unavailable("the client is closed");
    if (session_lost) return LostStatus();
    uint64_t req = Stamp(request);
    Status s = Send(wire::Encode(request), &payload, options.call_timeout);
    if (!s.ok()) return s;
    async_tickets.insert(req);
    return req;
  }

  // Sends a request that is answered only if it fails (with req 0, as an
  // Outcome with ticket 0).
  Status Cast(const wire::ClientRequest& request, std::string_view payload) {
    return CastEncoded(wire::Encode(request), payload);
  }
  Status CastEncoded(const std::string& body, std::string_view payload) {
    if (closed) return Status::Unavailable("the client is closed");
    if (session_lost) return LostStatus();
    return Send(body, &payload, options.call_timeout);
  }
  // Casts many payloads in as few ZeroMQ messages as the broker's limits
  // allow (kMaxCastPayloads and kMaxCastBytes each): each a request for n
  // payloads, made by body_for(n), and one frame that packs them.
  Status CastMany(const std::function<std::string(uint32_t)>& body_for,
                  std::span<const std::string_view> payloads) {
    if (closed) return Status::Unavailable("the client is closed");
    if (session_lost) return LostStatus();
    size_t sent = 0;
    std::string packed;
    while (sent < payloads.size()) {
      size_t n = NextChunk(payloads, sent);
      Pack(payloads.subspan(sent, n), &packed);
      std::string_view frame = packed;
      if (Status s = Send(body_for(uint32_t(n)), &frame, options.call_timeout); !s.ok()) {
        if (sent == 0) return s;
        return Status(s.code(), s.message() + " (the first " + std::to_string(sent) + " of " +
                                    std::to_string(payloads.size()) + " were sent)");
      }
      sent += n;
    }
    return Status::Ok();
  }
  // What one message of a PublishMany, BroadcastMany or DispatchMany
  // carries at most, so that a batch stays one modest ZeroMQ message (as the
  // broker's own do).
  static constexpr size_t kMaxCastBytes = 256 << 10;
  // How many payloads from `from` on go in one request: at most
  // kMaxCastPayloads and kMaxCastBytes, and at least one.
  static size_t NextChunk(std::span<const std::string_view> payloads, size_t from) {
    size_t n = 0, bytes = 0;
    while (from + n < payloads.size() && n < wire::kMaxCastPayloads &&
           (n == 0 || bytes + payloads[from + n].size() <= kMaxCastBytes)) {
      bytes += payloads[from + n].size();
      ++n;
    }
    return n;
  }
  static void Pack(std::span<const std::string_view> payloads, std::string* packed) {
    packed->clear();
    for (std::string_view p : payloads) wire::AppendSized(packed, p);
  }

  // A DispatchMany's requests, at most kDispatchWindow in flight, and the
  // outcome of each payload. Only what was sent can have been delivered:
  // what was not is failed with the reason sending stopped.
  static constexpr size_t kDispatchWindow = 8;
  std::vector<Result<MemberId>> DispatchMany(const std::string& scope, const std::string& group,
                                             std::span<const std::string_view> payloads) {
    std::vector<Result<MemberId>> out(payloads.size(), Result<MemberId>(Status::Internal("")));
    struct Chunk {
      size_t first = 0, n = 0;
      Clock::time_point deadline;
    };
    std::map<uint64_t, Chunk> waiting;  // by req
    auto fail = [&](const Chunk& c, const Status& why) {
      for (size_t i = 0; i < c.n; ++i) out[c.first + i] = why;
    };
    // The broker answers within its own bound on the members' confirmations.
    const auto bound = options.call_timeout + std::chrono::seconds(6);
    size_t next = 0;
    Status stopped;  // why the rest was not sent
    std::string packed;
    std::vector<Result<MemberId>> results;  // of one reply
    while (true) {
      while (stopped.ok() && next < payloads.size() && waiting.size() < kDispatchWindow) {
        if (closed || session_lost) {
          stopped = closed ? Status::Unavailable("the client is closed") : LostStatus();
          break;
        }
        size_t n = NextChunk(payloads, next);
        Pack(payloads.subspan(next, n), &packed);
        wire::ClientRequest request = wire::Dispatch{0, scope, group, static_cast<uint32_t>(n)};
        uint64_t req = Stamp(request);
        std::string_view frame = packed;
        if (Status s = Send(wire::Encode(request), &frame, options.call_timeout); !s.ok()) {
          stopped = s;
          break;
        }
        waiting.emplace(req, Chunk{next, n, Clock::now() + bound});
        next += n;
      }
      if (waiting.empty()) break;
      Clock::time_point deadline = waiting.begin()->second.deadline;
      for (const auto& [req, c] : waiting) deadline = std::min(deadline, c.deadline);
      Result<std::optional<Inbound>> in = Read(deadline);
      if (!in.ok()) {
        // What is in flight may have been dispatched: its outcome is unknown,
        // which the caller knows as kTimeout.
        const Status unknown =
            Status::Timeout("no answer from the broker (" + in.status().ToString() +
                            "): the members may or may not have them");
        for (const auto& [req, c] : waiting) fail(c, unknown);
        if (stopped.ok()) stopped = in.status();
        break;
      }
      if (!in->has_value()) {
        const Status late = Status::Timeout("no answer from the broker at " + options.endpoint +
                                            " within " + std::to_string(bound.count()) +
                                            " ms: the members may or may not have them");
        for (auto it = waiting.begin(); it != waiting.end();) {
          if (it->second.deadline > Clock::now()) {
            ++it;
            continue;
          }
          fail(it->second, late);
          it = waiting.erase(it);
        }
        continue;
      }
      Inbound& m = **in;
      auto* reply = std::get_if<wire::Reply>(&m.message);
      auto w = reply != nullptr ? waiting.find(reply->req) : waiting.end();
      if (w == waiting.end()) {
        if (std::optional<Delivery> d = ToDelivery(m)) pending.push_back(std::move(*d));
        continue;
      }
      Chunk c = w->second;
      waiting.erase(w);
      (void)DispatchResults(*reply, c.n, &results);
      std::move(results.begin(), results.end(), out.begin() + c.first);
    }
    if (!stopped.ok()) {
      const Status unsent(stopped.code(), "not sent: " + stopped.message());
      for (size_t i = next; i < payloads.size(); ++i) out[i] = unsent;
    }
    return out;
  }
  // The results of a DispatchMany request of `count` payloads, in order;
  // returns the reply's status. A refusal (none was dispatched) and an
  // answer of the wrong shape are every payload's.
  // Takes the members out of `reply`.
  static Status DispatchResults(wire::Reply& reply, size_t count,
                                std::vector<Result<MemberId>>* results) {
    results->clear();
    Status whole = reply.status;
    auto* body = std::get_if<wire::DispatchedBody>(&reply.body);
    if (whole.ok() && (body == nullptr || body->outcomes.size() != count)) {
      whole = Status::BadMessage("the broker answered a DispatchMany of " + std::to_string(count) +
                                 " with something else");
    }
    if (!whole.ok()) {
      results->assign(count, whole);
      return whole;
    }
    results->reserve(count);
    for (wire::DispatchOutcome& o : body->outcomes) {
      if (o.status.ok()) {
        results->emplace_back(std::move(o.member));
      } else {
        results->emplace_back(std::move(o.status));
      }
    }
    return whole;
  }
  // The number of payloads of each DispatchManyAsync awaiting its outcome.
  std::map<uint64_t, size_t> dispatch_many_sizes;

  // The encoded casts of the last publish topic and broadcast group: a
  // stream of casts to one of them is encoded and validated once.
  struct CastCache {
    std::string topic_or_scope, group, body;
  };
  CastCache publish_cache, broadcast_cache;
  Status CachePublish(const std::string& topic) {
    CastCache& cache = publish_cache;
    if (!cache.body.empty() && cache.topic_or_scope == topic) return Status::Ok();
    if (Status s = ValidateTopic(topic); !s.ok()) return s;
    cache.body = wire::Encode(wire::ClientRequest(wire::Publish{0, topic}));
    cache.topic_or_scope = topic;
    return Status::Ok();
  }
  Status CacheBroadcast(const std::string& scope, const std::string& group) {
    CastCache& cache = broadcast_cache;
    if (!cache.body.empty() && cache.topic_or_scope == scope && cache.group == group) {
      return Status::Ok();
    }
    if (Status s = CheckGroup(scope, group); !s.ok()) return s;
    cache.body = wire::Encode(wire::ClientRequest(wire::Broadcast{0, scope, group}));
    cache.topic_or_scope = scope;
    cache.group = group;
    return Status::Ok();
  }

  template <typename Body>
  Result<Body> CallFor(wire::ClientRequest request) {
    Result<Inbound> r = Call(std::move(request), options.call_timeout);
    if (!r.ok()) return r.status();
    auto& reply = std::get<wire::Reply>(r->message);
    if (Body* b = std::get_if<Body>(&reply.body)) return std::move(*b);
    return Status::BadMessage("the broker answered with an unexpected body");
  }

  // A registry write: its status, and who holds the name when that is why
  // it was refused (taken, not_holder). Registry writes may wait for an
  // election and a majority's fsync; the broker answers within its own bound.
  Status NameWrite(wire::ClientRequest request, MemberId* holder) {
    Result<Inbound> r = Call(std::move(request), options.call_timeout + std::chrono::seconds(6),
                             nullptr, /*keep_errors=*/true);
    if (!r.ok()) return r.status();
    auto& reply = std::get<wire::Reply>(r->message);
    if (auto* info = std::get_if<wire::NameInfo>(&reply.body); info && holder) {
      *holder = info->holder;
    }
    return reply.status;
  }

  // The heartbeat thread's loop. It owns `hb` (made by Connect), sends a
  // heartbeat every interval, and reads what the broker answers on it: only
  // an error, when the broker no longer has this session.
  void RunHeartbeats(zmq::socket_t hb, std::chrono::milliseconds interval, uint64_t session,
                     uint64_t token_value) {
    std::string body =
        wire::Encode(wire::ClientRequest(wire::SessionHeartbeat{session, token_value}));
    std::unique_lock<std::mutex> lock(mu);
    while (!stop_heartbeats) {
      try {
        (void)hb.send(zmq::buffer(body), zmq::send_flags::dontwait);
        zmq::message_t answer;
        while (hb.recv(answer, zmq::recv_flags::dontwait)) {
          Result<wire::ClientInbound> in = wire::DecodeClientInbound(answer.to_string_view());
          const auto* reply = in.ok() ? std::get_if<wire::Reply>(&in.value()) : nullptr;
          if (reply != nullptr && !reply->status.ok() && lost.empty()) {
            lost = "the broker ended this session: " + reply->status.message();
            session_lost = true;
          }
        }
      } catch (const zmq::error_t&) {
        // The context is going away; the loop ends with stop_heartbeats.
      }
      cv.wait_for(lock, interval, [&] { return stop_heartbeats; });
    }
    hb.close();
  }

  // Set by the heartbeat thread when the broker says the session is gone.
  std::atomic<bool> session_lost{false};
  std::string lost;  // guarded by mu
  Status LostStatus() {
    std::lock_guard<std::mutex> lock(mu);
    return Status::Unavailable(lost);
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (impl_) (void)Close();  // the session this Client held ends, as the header promises
    impl_ = std::move(other.impl_);
  }
  return *this;
}
Client::~Client() {
  if (impl_) (void)Close();
}

Result<Client> Client::Connect(ClientOptions options) {
  if (options.endpoint.empty()) options.endpoint = DefaultBrokerEndpoint();
  if (Status s = ValidateEndpoint(options.endpoint); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  zmq::socket_t hb;
  try {
    impl->dealer = zmq::socket_t(impl->context, zmq::socket_type::dealer);
    impl->dealer.set(zmq::sockopt::linger, 0);
    // Never queue a request for a broker that is not there: fail it instead.
    impl->dealer.set(zmq::sockopt::immediate, 1);
    // A routing id of our own, so that if the connection drops and comes back
    // the broker (ROUTER_HANDOVER) still knows it as this session.
    impl->dealer.set(zmq::sockopt::routing_id, RandomRoutingId());
    impl->dealer.connect(options.endpoint);
    impl->dealer_fd = static_cast<int>(impl->dealer.get(zmq::sockopt::fd));
    hb = zmq::socket_t(impl->context, zmq::socket_type::dealer);
    hb.set(zmq::sockopt::linger, 0);
    hb.set(zmq::sockopt::immediate, 1);
    hb.connect(options.endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unreachable("cannot connect to " + options.endpoint + ": " + e.what());
  }
  Result<Impl::Inbound> r =
      impl->Call(wire::Hello{0, wire::kProtocolVersion, options.name}, options.connect_timeout);
  if (!r.ok()) return r.status();
  auto* welcome = std::get_if<wire::WelcomeBody>(&std::get<wire::Reply>(r->message).body);
  if (welcome == nullptr) {
    return Status::BadMessage("the broker did not answer hello with a welcome");
  }
  impl->self = MemberId{welcome->node, welcome->incarnation, welcome->session};
  impl->token = welcome->token;
  if (welcome->max_message_bytes > 0) impl->max_message_bytes = welcome->max_message_bytes;
  if (welcome->client_queue_bytes > 0) {
    impl->credit_every = std::max<size_t>(1, welcome->client_queue_bytes / 4);
  }
  impl->heartbeat_interval =
      std::chrono::milliseconds(std::max<uint32_t>(welcome->heartbeat_ms, 10));
  Impl* raw = impl.get();
  try {
    impl->heartbeat_thread =
        std::thread([raw, hb = std::move(hb), interval = impl->heartbeat_interval,
                     session = welcome->session, token = welcome->token]() mutable {
          raw->RunHeartbeats(std::move(hb), interval, session, token);
        });
  } catch (const std::system_error& e) {
    return Status::Unavailable(std::string("cannot start the heartbeat thread: ") + e.what());
  }
  return Client(std::move(impl));
}

Status Client::Close() {
  if (!impl_ || impl_->closed) return Status::Ok();
  Result<Impl::Inbound> r = impl_->Call(
      wire::Bye{}, std::min(impl_->options.call_timeout, std::chrono::milliseconds(1000)));
  impl_->closed = true;
  impl_->Shutdown();
  return r.status();
}

const MemberId& Client::self() const {
  return impl_->self;
}

namespace {
std::vector<std::string> GroupNames(const std::vector<GroupCount>& groups) {
  std::vector<std::string> out;
  for (const GroupCount& g : groups) out.push_back(g.group);
  return out;
}
}  // namespace

Status Client::Join(const std::string& scope, const std::string& group) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  return impl_->Call(wire::Join{0, scope, group}, impl_->options.call_timeout).status();
}

Status Client::JoinMany(const std::string& scope, const std::vector<std::string>& groups) {
  if (Status s = ValidateScope(scope); !s.ok()) return s;
  if (groups.empty()) return Status::InvalidArgument("no groups to join");
  if (groups.size() > wire::kMaxJoinManyGroups) {
    return Status::InvalidArgument("at most " + std::to_string(wire::kMaxJoinManyGroups) +
                                   " groups per JoinMany");
  }
  for (const std::string& g : groups) {
    if (Status s = ValidateGroup(g); !s.ok()) return s;
  }
  return impl_->Call(wire::JoinMany{0, scope, groups}, impl_->options.call_timeout).status();
}

Status Client::Leave(const std::string& scope, const std::string& group) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  return impl_->Call(wire::Leave{0, scope, group}, impl_->options.call_timeout).status();
}

Result<std::vector<MemberId>> Client::Members(const std::string& scope, const std::string& group) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  Result<wire::MembersBody> b =
      impl_->CallFor<wire::MembersBody>(wire::Members{0, scope, group, false});
  if (!b.ok()) return b.status();
  return std::move(b->members);
}

Result<std::vector<MemberId>> Client::LocalMembers(const std::string& scope,
                                                   const std::string& group) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  Result<wire::MembersBody> b =
      impl_->CallFor<wire::MembersBody>(wire::Members{0, scope, group, true});
  if (!b.ok()) return b.status();
  return std::move(b->members);
}

Result<std::vector<GroupCount>> Client::Groups(const std::string& scope) {
  if (!scope.empty()) {
    if (Status s = ValidateScope(scope); !s.ok()) return s;
  }
  Result<wire::GroupsBody> b = impl_->CallFor<wire::GroupsBody>(wire::WhichGroups{0, scope, false});
  if (!b.ok()) return b.status();
  return std::move(b->groups);
}

Result<std::vector<std::string>> Client::WhichGroups(const std::string& scope) {
  if (Status s = ValidateScope(scope); !s.ok()) return s;
  Result<wire::GroupsBody> b = impl_->CallFor<wire::GroupsBody>(wire::WhichGroups{0, scope, false});
  if (!b.ok()) return b.status();
  return GroupNames(b->groups);
}

Result<std::vector<std::string>> Client::WhichLocalGroups(const std::string& scope) {
  if (Status s = ValidateScope(scope); !s.ok()) return s;
  Result<wire::GroupsBody> b = impl_->CallFor<wire::GroupsBody>(wire::WhichGroups{0, scope, true});
  if (!b.ok()) return b.status();
  return GroupNames(b->groups);
}

Result<MonitorStart> Client::MonitorScope(const std::string& scope) {
  if (Status s = ValidateScope(scope); !s.ok()) return s;
  Result<wire::MonitorBody> b =
      impl_->CallFor<wire::MonitorBody>(wire::Monitor{0, scope, std::nullopt});
  if (!b.ok()) return b.status();
  return MonitorStart{b->ref, std::move(b->groups)};
}

Result<MonitorStart> Client::Monitor(const std::string& scope, const std::string& group) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  Result<wire::MonitorBody> b = impl_->CallFor<wire::MonitorBody>(wire::Monitor{0, scope, group});
  if (!b.ok()) return b.status();
  return MonitorStart{b->ref, std::move(b->groups)};
}

Status Client::Demonitor(uint64_t ref) {
  return impl_->Call(wire::Demonitor{0, ref}, impl_->options.call_timeout).status();
}

// ---- messaging ----

namespace {
Status CheckPayload(std::string_view payload, uint64_t max) {
  if (payload.size() <= max) return Status::Ok();
  return Status::TooLarge("a payload of " + std::to_string(payload.size()) +
                          " bytes is over the broker's maximum of " + std::to_string(max));
}
// All or none: a batch with one payload too large is not sent at all.
Status CheckPayloads(std::span<const std::string_view> payloads, uint64_t max) {
  for (size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i].size() <= max) continue;
    return Status::TooLarge(
        "payload " + std::to_string(i + 1) + " of " + std::to_string(payloads.size()) + " has " +
        std::to_string(payloads[i].size()) + " bytes, over the broker's maximum of " +
        std::to_string(max) + "; none was sent");
  }
  return Status::Ok();
}
}  // namespace

uint64_t Client::max_message_bytes() const {
  return impl_->max_message_bytes;
}

bool Client::session_lost() const {
  return impl_->session_lost || impl_->closed;
}

Status Client::Subscribe(const std::string& prefix) {
  if (Status s = ValidateTopicPrefix(prefix); !s.ok()) return s;
  return impl_->Call(wire::Subscribe{0, prefix, false}, impl_->options.call_timeout).status();
}

Status Client::Unsubscribe(const std::string& prefix) {
  if (Status s = ValidateTopicPrefix(prefix); !s.ok()) return s;
  return impl_->Call(wire::Subscribe{0, prefix, true}, impl_->options.call_timeout).status();
}

Status Client::Publish(const std::string& topic, std::string_view payload) {
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = impl_->CachePublish(topic); !s.ok()) return s;
  return impl_->CastEncoded(impl_->publish_cache.body, payload);
}

Status Client::Broadcast(const std::string& scope, const std::string& group,
                         std::string_view payload) {
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = impl_->CacheBroadcast(scope, group); !s.ok()) return s;
  return impl_->CastEncoded(impl_->broadcast_cache.body, payload);
}

Status Client::PublishMany(const std::string& topic, std::span<const std::string_view> payloads) {
  if (Status s = CheckPayloads(payloads, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = ValidateTopic(topic); !s.ok()) return s;
  return impl_->CastMany(
      [&](uint32_t n) {
        return wire::Encode(wire::ClientRequest(wire::Publish{0, topic, n}));
      },
      payloads);
}

Status Client::PublishMany(const std::string& topic, std::span<const std::string> payloads) {
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  return PublishMany(topic, std::span<const std::string_view>(views));
}

Status Client::BroadcastMany(const std::string& scope, const std::string& group,
                             std::span<const std::string_view> payloads) {
  if (Status s = CheckPayloads(payloads, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  return impl_->CastMany(
      [&](uint32_t n) {
        return wire::Encode(wire::ClientRequest(wire::Broadcast{0, scope, group, n}));
      },
      payloads);
}

Status Client::BroadcastMany(const std::string& scope, const std::string& group,
                             std::span<const std::string> payloads) {
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  return BroadcastMany(scope, group, std::span<const std::string_view>(views));
}

Result<uint64_t> Client::DispatchAsync(const std::string& scope, const std::string& group,
                                       std::string_view payload) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  return impl_->CallAsync(wire::Dispatch{0, scope, group}, payload);
}

Result<std::vector<Result<MemberId>>> Client::DispatchMany(
    const std::string& scope, const std::string& group,
    std::span<const std::string_view> payloads) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayloads(payloads, impl_->max_message_bytes); !s.ok()) return s;
  return impl_->DispatchMany(scope, group, payloads);
}

Result<std::vector<Result<MemberId>>> Client::DispatchMany(const std::string& scope,
                                                           const std::string& group,
                                                           std::span<const std::string> payloads) {
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  return DispatchMany(scope, group, std::span<const std::string_view>(views));
}

Result<uint64_t> Client::DispatchManyAsync(const std::string& scope, const std::string& group,
                                           std::span<const std::string_view> payloads) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayloads(payloads, impl_->max_message_bytes); !s.ok()) return s;
  if (payloads.empty() || Impl::NextChunk(payloads, 0) != payloads.size()) {
    return Status::InvalidArgument(
        "a DispatchManyAsync takes 1 to " + std::to_string(wire::kMaxCastPayloads) +
        " payloads of at most " + std::to_string(Impl::kMaxCastBytes >> 10) +
        " KiB in all (DispatchMany takes any number)");
  }
  std::string packed;
  Impl::Pack(payloads, &packed);
  Result<uint64_t> ticket = impl_->CallAsync(
      wire::Dispatch{0, scope, group, static_cast<uint32_t>(payloads.size())}, packed);
  if (ticket.ok()) impl_->dispatch_many_sizes[*ticket] = payloads.size();
  return ticket;
}

Result<MemberId> Client::Dispatch(const std::string& scope, const std::string& group,
                                  std::string_view payload) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  // The broker answers within its own bound on a member's confirmation.
  Result<Impl::Inbound> r =
      impl_->Call(wire::Dispatch{0, scope, group},
                  impl_->options.call_timeout + std::chrono::seconds(6), &payload);
  if (!r.ok()) return r.status();
  auto* body = std::get_if<wire::DeliveredBody>(&std::get<wire::Reply>(r->message).body);
  if (body == nullptr) return Status::BadMessage("the broker answered with an unexpected body");
  return body->member;
}

namespace {
Status CheckTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() >= 1 && timeout.count() <= UINT32_MAX) return Status::Ok();
  return Status::InvalidArgument("a request timeout must be 1 ms to 49 days");
}
}  // namespace

Result<uint64_t> Client::RequestAsync(const std::string& scope, const std::string& group,
                                      std::string_view payload, std::chrono::milliseconds timeout) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = CheckTimeout(timeout); !s.ok()) return s;
  return impl_->CallAsync(wire::Request{0, scope, group, static_cast<uint32_t>(timeout.count())},
                          payload);
}

Result<Message> Client::Request(const std::string& scope, const std::string& group,
                                std::string_view payload, std::chrono::milliseconds timeout) {
  if (Status s = CheckGroup(scope, group); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  if (Status s = CheckTimeout(timeout); !s.ok()) return s;
  // The broker times the request out itself; the margin is for the answer
  // saying so to reach us.
  Result<Impl::Inbound> r =
      impl_->Call(wire::Request{0, scope, group, static_cast<uint32_t>(timeout.count())},
                  timeout + impl_->options.call_timeout, &payload);
  if (!r.ok()) return r.status();
  auto* body = std::get_if<wire::ResponseBody>(&std::get<wire::Reply>(r->message).body);
  if (body == nullptr) return Status::BadMessage("the broker answered with an unexpected body");
  Message m;
  m.kind = MessageKind::kRequest;
  m.from = body->member;
  m.scope = scope;
  m.group = group;
  m.payload = std::move(r->payload);
  return m;
}

Status Client::Reply(const Message& request, std::string_view payload) {
  if (request.kind != MessageKind::kRequest || request.reply_to.empty()) {
    return Status::InvalidArgument("only a request can be replied to");
  }
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  return impl_->Call(wire::Respond{0, request.reply_to}, impl_->options.call_timeout, &payload)
      .status();
}

Status Client::ReplyAsync(const Message& request, std::string_view payload) {
  if (request.kind != MessageKind::kRequest || request.reply_to.empty()) {
    return Status::InvalidArgument("only a request can be replied to");
  }
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  return impl_->Cast(wire::Respond{0, request.reply_to}, payload);
}

Result<uint64_t> Client::SendAsync(const MemberId& member, std::string_view payload) {
  if (Status s = ValidateNodeName(member.node); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  return impl_->CallAsync(wire::Send{0, member}, payload);
}

Status Client::Send(const MemberId& member, std::string_view payload) {
  if (Status s = ValidateNodeName(member.node); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  return impl_
      ->Call(wire::Send{0, member}, impl_->options.call_timeout + std::chrono::seconds(6), &payload)
      .status();
}

Result<std::vector<NodeInfo>> Client::Nodes() {
  Result<wire::NodesBody> b = impl_->CallFor<wire::NodesBody>(wire::Nodes{});
  if (!b.ok()) return b.status();
  return std::move(b->nodes);
}

Result<std::map<std::string, uint64_t>> Client::Stats() {
  Result<wire::StatsBody> b = impl_->CallFor<wire::StatsBody>(wire::Stats{});
  if (!b.ok()) return b.status();
  return std::map<std::string, uint64_t>(b->counters.begin(), b->counters.end());
}

Result<Delivery> Client::Receive(std::chrono::milliseconds timeout) {
  if (impl_->session_lost && impl_->pending.empty()) return impl_->LostStatus();
  if (!impl_->pending.empty()) {
    Delivery d = std::move(impl_->pending.front());
    impl_->pending.pop_front();
    return d;
  }
  if (impl_->closed) return Status::Unavailable("the client is closed");
  // The rest of a batch needs no clock, and is a message each (checked).
  if (!impl_->unread.empty()) return impl_->TakeUnread();
  auto deadline = Impl::Clock::now() + timeout;
  while (true) {
    Result<std::optional<Impl::Inbound>> in = impl_->Read(deadline);
    if (!in.ok()) return in.status();
    if (!in->has_value())
      return Status::Timeout("no delivery within " + std::to_string(timeout.count()) + " ms");
    if (std::optional<Delivery> d = impl_->ToDelivery(**in)) return std::move(*d);
  }
}

Result<size_t> Client::Consume(const std::function<void(const Delivery&)>& handler,
                               std::chrono::milliseconds timeout) {
  auto deadline = Impl::Clock::now() + timeout;
  size_t handled = 0;
  while (true) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Impl::Clock::now());
    Result<Delivery> d = Receive(std::max(left, std::chrono::milliseconds(0)));
    if (!d.ok()) {
      if (d.status().code() == Code::kTimeout) return handled;
      return d.status();
    }
    handler(*d);
    ++handled;
  }
}

// ---- the name registry ----

namespace {
// Registry writes wait for a leader (an election takes about a second) and
// for a majority's fsync; the broker answers within its own bound.
constexpr std::chrono::seconds kRegistryCallSlack{6};
constexpr std::chrono::seconds kNoSlack{0};
}  // namespace

Status Client::Register(const std::string& name, std::string_view metadata, MemberId* holder) {
  if (Status s = ValidateRegistryName(name); !s.ok()) return s;
  if (Status s = ValidateNameMetadata(metadata); !s.ok()) return s;
  return impl_->NameWrite(wire::Register{0, name, std::string(metadata)}, holder);
}

Status Client::Unregister(const std::string& name, MemberId* holder) {
  if (Status s = ValidateRegistryName(name); !s.ok()) return s;
  return impl_->NameWrite(wire::Unregister{0, name}, holder);
}

Result<NameInfo> Client::Whereis(const std::string& name) {
  if (Status s = ValidateRegistryName(name); !s.ok()) return s;
  return impl_->CallFor<wire::NameInfo>(wire::Whereis{0, name, false});
}

Result<NameInfo> Client::WhereisConsistent(const std::string& name) {
  if (Status s = ValidateRegistryName(name); !s.ok()) return s;
  Result<Impl::Inbound> r =
      impl_->Call(wire::Whereis{0, name, true}, impl_->options.call_timeout + kRegistryCallSlack);
  if (!r.ok()) return r.status();
  auto* info = std::get_if<wire::NameInfo>(&std::get<wire::Reply>(r->message).body);
  if (info == nullptr) return Status::BadMessage("the broker answered with an unexpected body");
  return std::move(*info);
}

Result<std::vector<NameInfo>> Client::Names(const std::string& prefix) {
  if (Status s = ValidateNamePrefix(prefix); !s.ok()) return s;
  Result<wire::NamesBody> b = impl_->CallFor<wire::NamesBody>(wire::ListNames{0, prefix});
  if (!b.ok()) return b.status();
  return std::move(b->names);
}

Result<NamesMonitorStart> Client::MonitorNames(const std::string& prefix) {
  if (Status s = ValidateNamePrefix(prefix); !s.ok()) return s;
  Result<wire::NamesBody> b = impl_->CallFor<wire::NamesBody>(wire::MonitorNames{0, prefix});
  if (!b.ok()) return b.status();
  return NamesMonitorStart{b->ref, std::move(b->names)};
}

Result<LeaderInfo> Client::Leader() {
  return impl_->CallFor<wire::LeaderBody>(wire::Leader{0});
}

Status Client::PutRecord(const std::string& key, std::string_view value) {
  if (Status s = ValidateRecordKey(key); !s.ok()) return s;
  if (Status s = ValidateRecordValue(value); !s.ok()) return s;
  return impl_->NameWrite(wire::PutRecord{0, key, std::string(value), wire::RecordMode::kPut},
                          nullptr);
}

Status Client::CreateRecord(const std::string& key, std::string_view value) {
  if (Status s = ValidateRecordKey(key); !s.ok()) return s;
  if (Status s = ValidateRecordValue(value); !s.ok()) return s;
  return impl_->NameWrite(wire::PutRecord{0, key, std::string(value), wire::RecordMode::kCreate},
                          nullptr);
}

Status Client::DeleteRecord(const std::string& key) {
  if (Status s = ValidateRecordKey(key); !s.ok()) return s;
  return impl_->NameWrite(wire::DeleteRecord{0, key}, nullptr);
}

Result<std::string> Client::GetRecord(const std::string& key, bool consistent) {
  if (Status s = ValidateRecordKey(key); !s.ok()) return s;
  Result<Impl::Inbound> r =
      impl_->Call(wire::ListRecords{0, key, consistent, /*exact=*/true},
                  impl_->options.call_timeout + (consistent ? kRegistryCallSlack : kNoSlack));
  if (!r.ok()) return r.status();
  auto* body = std::get_if<wire::RecordsBody>(&std::get<wire::Reply>(r->message).body);
  if (body == nullptr || body->records.size() != 1 || body->records[0].key != key) {
    return Status::BadMessage("the broker answered with an unexpected body");
  }
  return std::move(body->records[0].value);
}

Result<std::vector<Record>> Client::Records(const std::string& prefix, bool consistent) {
  if (Status s = ValidateRecordKeyPrefix(prefix); !s.ok()) return s;
  Result<Impl::Inbound> r =
      impl_->Call(wire::ListRecords{0, prefix, consistent, /*exact=*/false},
                  impl_->options.call_timeout + (consistent ? kRegistryCallSlack : kNoSlack));
  if (!r.ok()) return r.status();
  auto* body = std::get_if<wire::RecordsBody>(&std::get<wire::Reply>(r->message).body);
  if (body == nullptr) return Status::BadMessage("the broker answered with an unexpected body");
  return std::move(body->records);
}

Result<MemberId> Client::SendByName(const std::string& name, std::string_view payload) {
  if (Status s = ValidateRegistryName(name); !s.ok()) return s;
  if (Status s = CheckPayload(payload, impl_->max_message_bytes); !s.ok()) return s;
  Result<Impl::Inbound> r = impl_->Call(
      wire::SendName{0, name}, impl_->options.call_timeout + std::chrono::seconds(6), &payload);
  if (!r.ok()) return r.status();
  auto* body = std::get_if<wire::DeliveredBody>(&std::get<wire::Reply>(r->message).body);
  if (body == nullptr) return Status::BadMessage("the broker answered with an unexpected body");
  return body->member;
}

}  // namespace meshbus
