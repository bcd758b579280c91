#include "bin/compare_zmq.h"

#include "bin/bench_messaging.h"

#include <algorithm>
#include <atomic>
#include <chrono>
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

ChainFigures MeasureChain(int hops) {
  zmq::context_t ctx(1);
  // The far end: a ROUTER that sends every message back where it came from.
  zmq::socket_t echo(ctx, zmq::socket_type::router);
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
    auto p = std::make_unique<Proxy>(ctx, zmq::socket_type::router, zmq::socket_type::dealer);
    p->ConnectBack(next);
    next = p->front();
    proxies.push_back(std::move(p));
  }
  for (auto& p : proxies) p->Start();
  zmq::socket_t client(ctx, zmq::socket_type::dealer);
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

}  // namespace meshbus::compare
