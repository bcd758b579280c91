#include "bin/compare_zmq.h"

#include "bin/bench_messaging.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace meshbus::compare {
namespace {

using bench::Percentile;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kRoundTrips = 2000;
constexpr int kStreamMessages = 200000;

std::string Bind(zmq::socket_t& s) {
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

// zmq_proxy between two sockets on a thread of its own, stopped through
// its control socket.
class Proxy {
 public:
  Proxy(zmq::context_t& ctx, zmq::socket_type front_type, zmq::socket_type back_type)
      : front_(ctx, front_type),
        back_(ctx, back_type),
        control_(ctx, zmq::socket_type::pair),
        command_(ctx, zmq::socket_type::pair) {
    for (zmq::socket_t* s : {&front_, &back_}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
    }
    const std::string ep =
        "inproc://proxy-control-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    control_.bind(ep);
    command_.connect(ep);
    front_ep_ = Bind(front_);
  }
  ~Proxy() {
    command_.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
    if (thread_.joinable()) thread_.join();
  }
  const std::string& front() const { return front_ep_; }
  void ConnectBack(const std::string& ep) { back_.connect(ep); }
  std::string BindBack() { return Bind(back_); }
  void Start() {
    thread_ = std::thread([this] {
      try {
        zmq::proxy_steerable(front_, back_, zmq::socket_ref(), control_);
      } catch (const zmq::error_t&) {
      }
    });
  }

 private:
  zmq::socket_t front_, back_, control_, command_;
  std::string front_ep_;
  std::thread thread_;
};

}  // namespace

ChainFigures MeasureChain(int hops, IoThreads io) {
  // Declared first, so that every socket below is closed before its context.
  std::vector<std::unique_ptr<zmq::context_t>> contexts;
  auto context = [&]() -> zmq::context_t& {
    if (io == IoThreads::kPerNode || contexts.empty()) {
      contexts.push_back(std::make_unique<zmq::context_t>(1));
    }
    return *contexts.back();
  };
  // The far end: a ROUTER that sends every message back where it came from.
  zmq::socket_t echo(context(), zmq::socket_type::router);
  echo.set(zmq::sockopt::linger, 0);
  const std::string echo_ep = Bind(echo);
  std::atomic<bool> stop{false};
  std::thread echo_thread([&] {
    zmq::pollitem_t item{echo.handle(), 0, ZMQ_POLLIN, 0};
    std::vector<zmq::message_t> f;
    while (!stop) {
      zmq::poll(&item, 1, milliseconds(50));
      while (true) {
        f.clear();
        if (!zmq::recv_multipart(echo, std::back_inserter(f), zmq::recv_flags::dontwait)) break;
        zmq::send_multipart(echo, f);
      }
    }
  });
  // Client -> proxy ... proxy -> echo.
  std::vector<std::unique_ptr<Proxy>> proxies;
  std::string next = echo_ep;
  for (int i = 0; i < hops - 1; ++i) {
    auto p = std::make_unique<Proxy>(context(), zmq::socket_type::router, zmq::socket_type::dealer);
    p->ConnectBack(next);
    next = p->front();
    proxies.push_back(std::move(p));
  }
  for (auto& p : proxies) p->Start();
  zmq::socket_t client(context(), zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.set(zmq::sockopt::rcvtimeo, 2000);
  client.connect(next);
  const std::string payload(64, 'q');
  std::vector<double> us;
  for (int i = 0; i < kRoundTrips + 100; ++i) {  // the first 100 warm the connections
    Clock::time_point t = Clock::now();
    client.send(zmq::buffer(payload), zmq::send_flags::none);
    zmq::message_t answer;
    if (!client.recv(answer)) break;
    if (i >= 100) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
  }
  client.close();
  proxies.clear();
  stop = true;
  echo_thread.join();
  return {Percentile(us, 0.5), Percentile(us, 0.99)};
}

double MeasureForwarder(unsigned long long* lost) {
  zmq::context_t ctx(1);
  Proxy forwarder(ctx, zmq::socket_type::xsub, zmq::socket_type::xpub);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  for (zmq::socket_t* s : {&sub, &pub}) {
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::sndhwm, 0);
    s->set(zmq::sockopt::rcvhwm, 0);
  }
  sub.connect(forwarder.BindBack());
  sub.set(zmq::sockopt::subscribe, "");
  pub.connect(forwarder.front());
  forwarder.Start();
  // Until the subscription has reached the publisher: probes until one arrives.
  sub.set(zmq::sockopt::rcvtimeo, 10);
  zmq::message_t m;
  Clock::time_point ready_by = Clock::now() + std::chrono::seconds(10);
  bool ready = false;
  while (!ready && Clock::now() < ready_by) {
    pub.send(zmq::str_buffer("probe"), zmq::send_flags::none);
    while (sub.recv(m, zmq::recv_flags::dontwait)) ready = true;
    if (!ready) std::this_thread::sleep_for(milliseconds(10));  // poll interval, bounded
  }
  while (sub.recv(m, zmq::recv_flags::dontwait)) {
  }
  std::atomic<int> received{0};
  Clock::time_point last{};
  std::thread reader([&] {
    sub.set(zmq::sockopt::rcvtimeo, 1000);  // a second of silence: the stream is over
    zmq::message_t msg;
    while (received < kStreamMessages && sub.recv(msg)) {
      if (msg.size() == 64) {
        ++received;
        last = Clock::now();
      }
    }
  });
  const std::string payload(64, 'p');
  Clock::time_point start = Clock::now();
  for (int i = 0; i < kStreamMessages; ++i) pub.send(zmq::buffer(payload), zmq::send_flags::none);
  reader.join();
  *lost = static_cast<unsigned long long>(kStreamMessages - received);
  double secs = std::chrono::duration<double>(last - start).count();
  return secs > 0 ? received / secs : 0;
}

namespace {

// One node of MeasureJoinPath's mesh: a broker reduced to what a join needs.
// Clients send "watch" to be handed what the node hears, or a call, which
// is answered and published.
class RawNode {
 public:
  explicit RawNode(const std::string& client_ep) : client_ep_(client_ep) {
    for (zmq::socket_t* s : {&front_, &pub_, &sub_}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
    }
    front_.bind(client_ep_);
    pub_ep_ = Bind(pub_);
    sub_.set(zmq::sockopt::subscribe, "");
  }
  ~RawNode() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& client_ep() const { return client_ep_; }
  void Hear(const RawNode& other) { sub_.connect(other.pub_ep_); }
  // Sockets move to the node's thread here; starting a thread is the
  // barrier ZeroMQ asks for.
  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

 private:
  void Run() {
    zmq::pollitem_t items[] = {{front_.handle(), 0, ZMQ_POLLIN, 0},
                               {sub_.handle(), 0, ZMQ_POLLIN, 0}};
    std::vector<zmq::message_t> frames;  // [routing id][body]
    zmq::message_t heard;
    while (!stop_) {
      zmq::poll(items, 2, milliseconds(50));
      while (true) {
        frames.clear();
        if (!zmq::recv_multipart(front_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
          break;
        }
        if (frames.size() != 2) continue;
        if (frames[1].to_string_view() == "watch") {
          watchers_.push_back(frames[0].to_string());
        } else {
          pub_.send(zmq::buffer(frames[1].to_string_view()), zmq::send_flags::none);
        }
        zmq::send_multipart(front_, frames);  // the answer: the call itself
      }
      while (sub_.recv(heard, zmq::recv_flags::dontwait)) {
        for (const std::string& w : watchers_) {
          front_.send(zmq::buffer(w), zmq::send_flags::sndmore);
          front_.send(zmq::buffer(heard.to_string_view()), zmq::send_flags::none);
        }
      }
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t front_{ctx_, zmq::socket_type::router};
  zmq::socket_t pub_{ctx_, zmq::socket_type::pub};
  zmq::socket_t sub_{ctx_, zmq::socket_type::sub};
  std::string client_ep_, pub_ep_;
  std::vector<std::string> watchers_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A client's call, answered: false if it could not be sent or no answer
// came within the socket's timeouts.
bool Call(zmq::socket_t& s, std::string_view body) {
  if (!s.send(zmq::buffer(body), zmq::send_flags::none)) return false;
  zmq::message_t answer;
  return s.recv(answer).has_value();
}

}  // namespace

JoinPathFigures MeasureJoinPath() {
  JoinPathFigures out;
  char dir[] = "/tmp/meshbus-compare-XXXXXX";
  if (mkdtemp(dir) == nullptr) return out;
  {
    std::vector<std::unique_ptr<RawNode>> nodes;
    for (int i = 1; i <= 3; ++i) {
      nodes.push_back(
          std::make_unique<RawNode>("ipc://" + std::string(dir) + "/n" + std::to_string(i)));
    }
    for (auto& n : nodes) {
      for (auto& other : nodes) {
        if (other != n) n->Hear(*other);
      }
    }
    for (auto& n : nodes) n->Start();
    // The clients of this process share one context, as the SDK's do.
    zmq::context_t ctx(1);
    auto client = [&](const RawNode& node) {
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::sndtimeo, 2000);
      s.set(zmq::sockopt::rcvtimeo, 2000);
      s.connect(node.client_ep());
      return s;
    };
    zmq::socket_t joiner = client(*nodes[0]);
    zmq::socket_t watcher = client(*nodes[1]);
    zmq::message_t m;
    // Until a call on node 1 reaches the watcher: the subscriptions are in place.
    bool ready = Call(watcher, "watch");
    watcher.set(zmq::sockopt::rcvtimeo, 10);
    const Clock::time_point ready_by = Clock::now() + std::chrono::seconds(10);
    for (bool seen = false; ready && !seen;) {
      if (Clock::now() > ready_by || !Call(joiner, "probe")) ready = false;
      while (watcher.recv(m)) seen = true;  // each wait bounded by the 10 ms timeout
    }
    watcher.set(zmq::sockopt::rcvtimeo, 2000);
    std::vector<double> us;
    for (int i = 0; ready && i < kRoundTrips + 100; ++i) {  // the first 100 warm up
      const std::string body = "j" + std::to_string(i);
      const Clock::time_point t = Clock::now();
      if (!Call(joiner, body)) break;
      bool seen = false;
      while (!seen && watcher.recv(m)) seen = m.to_string_view() == body;
      if (!seen) break;
      if (i >= 100)
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    if (us.size() == kRoundTrips) out.p50_us = Percentile(us, 0.5);
    // Throughput: 10 callers, 1,000 calls each, one at a time, until the
    // watcher has them all.
    constexpr int kCallers = 10, kCallsEach = 1000;
    std::vector<zmq::socket_t> callers;
    for (int c = 0; c < kCallers; ++c) callers.push_back(client(*nodes[c % 2 == 0 ? 0 : 2]));
    std::atomic<int> failed{0};
    const Clock::time_point t0 = Clock::now();
    std::vector<std::thread> threads;
    for (zmq::socket_t& s : callers) {
      threads.emplace_back([&s, &failed] {
        for (int i = 0; i < kCallsEach; ++i) {
          if (!Call(s, "t")) {
            ++failed;
            return;
          }
        }
      });
    }
    int seen = 0;
    Clock::time_point last = t0;
    while (ready && seen < kCallers * kCallsEach && watcher.recv(m)) {
      if (m.to_string_view() == "t") {
        ++seen;
        last = Clock::now();
      }
    }
    for (auto& t : threads) t.join();
    if (seen == kCallers * kCallsEach && failed == 0) {
      out.per_s = seen / std::chrono::duration<double>(last - t0).count();
    }
    // Sockets close here, before their contexts and the nodes go.
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return out;
}

}  // namespace meshbus::compare
