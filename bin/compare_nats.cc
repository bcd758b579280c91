// NATS protocol, the part this client speaks (one text line per command,
// CRLF-terminated; a payload follows its line, then CRLF):
//   server -> client: INFO {json}   MSG <subject> <sid> [reply-to] <bytes>
//                     PING  PONG  +OK  -ERR '<message>'
//   client -> server: CONNECT {json}  PUB <subject> [reply-to] <bytes>
//                     SUB <subject> [queue] <sid>  PING  PONG
#include "bin/compare_nats.h"

#include "bin/bench_messaging.h"
#include "bin/compare_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

namespace meshbus::compare {
namespace {

using bench::Percentile;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kStreamMessages = 200000;
constexpr size_t kRequests = 2000;
constexpr Clock::duration kRunLimit = std::chrono::seconds(30);
constexpr size_t kFlushBytes = 64 * 1024;  // the publisher's batch

// ---- the servers ------------------------------------------------------------

// One nats-server process, routed to the others' cluster ports.
std::unique_ptr<Child> StartServer(int client_port, int cluster_port,
                                   const std::vector<int>& route_ports) {
  std::vector<std::string> args = {"nats-server",
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(client_port),
                                   "--cluster",
                                   "nats://127.0.0.1:" + std::to_string(cluster_port),
                                   "--cluster_name",
                                   "meshbus-compare"};
  std::string routes;
  for (int p : route_ports) {
    routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(p);
  }
  if (!routes.empty()) {
    args.push_back("--routes");
    args.push_back(routes);
  }
  return std::make_unique<Child>(args, std::vector<std::string>{}, /*pipes=*/false);
}

// ---- the client -------------------------------------------------------------

struct NatsMsg {
  std::string_view subject, reply, payload;
};

class NatsConn {
 public:
  NatsConn() = default;
  NatsConn(const NatsConn&) = delete;
  NatsConn& operator=(const NatsConn&) = delete;
  NatsConn& operator=(NatsConn&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(out_, o.out_);
    std::swap(in_, o.in_);
    std::swap(pongs_, o.pongs_);
    return *this;
  }
  ~NatsConn() {
    if (fd_ >= 0) close(fd_);
  }

  // Connects and completes the handshake (CONNECT, then a PING answered by a
  // PONG); false when the server is not there yet.
  bool Connect(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
    Write(
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"protocol\":1}\r\nPING\r\n");
    if (!Flush()) return false;
    pongs_ = 0;
    Clock::time_point deadline = Clock::now() + milliseconds(3000);
    while (pongs_ == 0 && Clock::now() < deadline) {
      if (!Poll(milliseconds(100), nullptr)) return false;
    }
    return pongs_ > 0;
  }

  void Sub(std::string_view subject, std::string_view queue, int sid) {
    Write("SUB " + std::string(subject) + (queue.empty() ? "" : " " + std::string(queue)) + " " +
          std::to_string(sid) + "\r\n");
  }
  void Pub(std::string_view subject, std::string_view reply, std::string_view payload) {
    out_ += "PUB ";
    out_ += subject;
    if (!reply.empty()) {
      out_ += ' ';
      out_ += reply;
    }
    out_ += ' ';
    out_ += std::to_string(payload.size());
    out_ += "\r\n";
    out_ += payload;
    out_ += "\r\n";
    if (out_.size() >= kFlushBytes) Flush();
  }
  // A round trip to the server: everything sent before it has been processed.
  bool Ping(milliseconds timeout) {
    uint64_t before = pongs_;
    Write("PING\r\n");
    if (!Flush()) return false;
    Clock::time_point deadline = Clock::now() + timeout;
    while (pongs_ == before && Clock::now() < deadline) {
      if (!Poll(milliseconds(50), nullptr)) return false;
    }
    return pongs_ > before;
  }
  void Write(std::string_view s) { out_ += s; }
  bool Flush() {
    size_t off = 0;
    while (off < out_.size()) {
      ssize_t n = send(fd_, out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          pollfd p{fd_, POLLOUT, 0};
          poll(&p, 1, 100);
          continue;
        }
        return false;
      }
      off += static_cast<size_t>(n);
    }
    out_.clear();
    return true;
  }

  // Reads what has come within `timeout` and hands each MSG to `on_msg`;
  // false when the connection is gone.
  bool Poll(milliseconds timeout, const std::function<void(const NatsMsg&)>* on_msg) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0) return errno == EINTR;
    if (r == 0) return true;
    char buf[256 * 1024];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    size_t pos = 0;
    while (true) {
      size_t eol = in_.find("\r\n", pos);
      if (eol == std::string::npos) break;
      std::string_view line(in_.data() + pos, eol - pos);
      if (line.rfind("MSG ", 0) == 0) {
        // MSG <subject> <sid> [reply-to] <bytes>
        std::vector<std::string_view> f;
        size_t s = 4;
        while (s < line.size()) {
          size_t sp = line.find(' ', s);
          if (sp == std::string_view::npos) sp = line.size();
          f.push_back(line.substr(s, sp - s));
          s = sp + 1;
        }
        if (f.size() < 3) return false;
        size_t bytes = std::stoul(std::string(f.back()));
        if (in_.size() < eol + 2 + bytes + 2) break;  // the payload is not all here yet
        NatsMsg m{f[0], f.size() == 4 ? f[2] : std::string_view(),
                  std::string_view(in_.data() + eol + 2, bytes)};
        if (on_msg != nullptr) (*on_msg)(m);
        pos = eol + 2 + bytes + 2;
        continue;
      }
      if (line == "PING") {
        Write("PONG\r\n");
        Flush();
      } else if (line == "PONG") {
        ++pongs_;
      } else if (line.rfind("-ERR", 0) == 0) {
        return false;
      }
      pos = eol + 2;
    }
    in_.erase(0, pos);
    return true;
  }

 private:
  int fd_ = -1;
  std::string out_, in_;
  uint64_t pongs_ = 0;
};

struct Cluster {
  std::vector<std::unique_ptr<Child>> servers;
  std::vector<int> ports;
};

// Three servers, each routed to the others; ports chosen at random below
// the ephemeral range.
std::unique_ptr<Cluster> StartCluster() {
  auto c = std::make_unique<Cluster>();
  std::mt19937 rng(std::random_device{}());
  int base = 33000 + static_cast<int>(rng() % 20000);
  std::vector<int> cluster_ports = {base + 10, base + 11, base + 12};
  c->ports = {base, base + 1, base + 2};
  for (int i = 0; i < 3; ++i) {
    std::vector<int> routes;
    for (int j = 0; j < 3; ++j) {
      if (j != i) routes.push_back(cluster_ports[j]);
    }
    c->servers.push_back(StartServer(c->ports[i], cluster_ports[i], routes));
    if (!c->servers.back()->started()) return nullptr;
  }
  return c;
}

bool ConnectWithin(NatsConn& conn, int port, milliseconds limit) {
  Clock::time_point deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    NatsConn fresh;
    if (fresh.Connect(port)) {
      conn = std::move(fresh);
      return true;
    }
    std::this_thread::sleep_for(milliseconds(50));  // the server is starting: retry
  }
  return false;
}

// Until a probe published on `pub` reaches `sub` (the routes carry the
// subscription to the other servers some time after SUB).
bool AwaitRoute(NatsConn& pub, NatsConn& sub, const std::string& subject) {
  bool got = false;
  std::function<void(const NatsMsg&)> on = [&](const NatsMsg& m) {
    if (m.payload == "probe") got = true;
  };
  Clock::time_point deadline = Clock::now() + milliseconds(10000);
  while (!got && Clock::now() < deadline) {
    pub.Pub(subject, "", "probe");
    pub.Flush();
    sub.Poll(milliseconds(50), &on);
  }
  return got;
}

// Publishes `count` messages of `bytes` on A as fast as it can; the
// receivers on C count them. Rate: received over the time from the first
// send to the last receipt.
double Stream(int pub_port, const std::vector<NatsConn*>& receivers, const std::string& subject,
              size_t bytes, size_t count, uint64_t* lost) {
  NatsConn pub;
  if (!ConnectWithin(pub, pub_port, milliseconds(5000))) return 0;
  // Drain the probes the route check left.
  for (NatsConn* r : receivers) r->Ping(milliseconds(2000));
  std::atomic<uint64_t> received{0};
  std::atomic<bool> done{false};
  Clock::time_point last{};
  std::vector<std::thread> readers;
  std::mutex last_mu;
  for (NatsConn* r : receivers) {
    readers.emplace_back([&, r] {
      std::function<void(const NatsMsg&)> on = [&](const NatsMsg& m) {
        if (m.payload.size() == bytes) {
          ++received;
          std::lock_guard<std::mutex> lock(last_mu);
          last = Clock::now();
        }
      };
      while (!done) r->Poll(milliseconds(50), &on);
    });
  }
  const std::string payload(bytes, 'x');
  Clock::time_point start = Clock::now();
  for (size_t i = 0; i < count; ++i) pub.Pub(subject, "", payload);
  pub.Flush();
  pub.Ping(milliseconds(10000));
  Clock::time_point deadline = Clock::now() + kRunLimit;
  uint64_t seen = 0;
  Clock::time_point quiet_since = Clock::now();
  // Done when all came, or nothing more came for a second.
  while (received < count && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));  // the receivers count; this only watches
    if (received != seen) {
      seen = received;
      quiet_since = Clock::now();
    } else if (Clock::now() - quiet_since > milliseconds(1000)) {
      break;
    }
  }
  done = true;
  for (std::thread& t : readers) t.join();
  *lost = count - received;
  std::lock_guard<std::mutex> lock(last_mu);
  double secs = std::chrono::duration<double>(last - start).count();
  return secs > 0 ? received / secs : 0;
}

}  // namespace

std::optional<NatsFigures> MeasureNats(std::string* error) {
  std::unique_ptr<Cluster> cluster = StartCluster();
  if (!cluster) {
    *error = "cannot start nats-server (is it installed? make compare installs it)";
    return std::nullopt;
  }
  NatsFigures f;
  // Publish/subscribe, A -> C.
  for (size_t bytes : {size_t(64), size_t(1024)}) {
    NatsConn sub, probe;
    if (!ConnectWithin(sub, cluster->ports[2], milliseconds(5000)) ||
        !ConnectWithin(probe, cluster->ports[0], milliseconds(5000))) {
      *error = "cannot connect to the cluster";
      return std::nullopt;
    }
    const std::string subject = "bench.pub." + std::to_string(bytes);
    sub.Sub(subject, "", 1);
    sub.Flush();
    if (!AwaitRoute(probe, sub, subject)) {
      *error = "the cluster's routes never carried a subscription from C to A";
      return std::nullopt;
    }
    uint64_t lost = 0;
    double rate = Stream(cluster->ports[0], {&sub}, subject, bytes, kStreamMessages, &lost);
    (bytes == 64 ? f.pub_64 : f.pub_1k) = rate;
    (bytes == 64 ? f.pub_64_lost : f.pub_1k_lost) = lost;
  }
  // A queue group of 3 on C.
  {
    std::vector<std::unique_ptr<NatsConn>> subs;
    std::vector<NatsConn*> raw;
    for (int i = 0; i < 3; ++i) {
      subs.push_back(std::make_unique<NatsConn>());
      if (!ConnectWithin(*subs.back(), cluster->ports[2], milliseconds(5000))) {
        *error = "cannot connect to C";
        return std::nullopt;
      }
      subs.back()->Sub("bench.queue", "workers", 1);
      subs.back()->Flush();
      raw.push_back(subs.back().get());
    }
    NatsConn probe;
    ConnectWithin(probe, cluster->ports[0], milliseconds(5000));
    // Every member must be known on A: probe until each got one.
    bool all = false;
    std::vector<bool> got(3, false);
    Clock::time_point deadline = Clock::now() + milliseconds(10000);
    while (!all && Clock::now() < deadline) {
      probe.Pub("bench.queue", "", "probe");
      probe.Flush();
      for (int i = 0; i < 3; ++i) {
        std::function<void(const NatsMsg&)> on = [&, i](const NatsMsg&) { got[i] = true; };
        raw[i]->Poll(milliseconds(10), &on);
      }
      all = got[0] && got[1] && got[2];
    }
    f.queue = Stream(cluster->ports[0], raw, "bench.queue", 64, kStreamMessages, &f.queue_lost);
  }
  // Request/reply, A -> responder on C.
  {
    NatsConn responder, requester;
    if (!ConnectWithin(responder, cluster->ports[2], milliseconds(5000)) ||
        !ConnectWithin(requester, cluster->ports[0], milliseconds(5000))) {
      *error = "cannot connect for request/reply";
      return std::nullopt;
    }
    responder.Sub("bench.req", "", 1);
    responder.Flush();
    requester.Sub("_INBOX.bench", "", 2);
    requester.Flush();
    std::atomic<bool> done{false};
    std::thread serve([&] {
      std::function<void(const NatsMsg&)> on = [&](const NatsMsg& m) {
        if (!m.reply.empty()) {
          responder.Pub(m.reply, "", m.payload);
          responder.Flush();
        }
      };
      while (!done) responder.Poll(milliseconds(20), &on);
    });
    std::vector<double> us;
    const std::string payload(64, 'r');
    bool answered = false;
    std::function<void(const NatsMsg&)> on = [&](const NatsMsg& m) {
      if (m.payload == payload) answered = true;
    };
    // Until the routes carry the responder's subscription, requests go nowhere.
    Clock::time_point warm_deadline = Clock::now() + milliseconds(10000);
    while (!answered && Clock::now() < warm_deadline) {
      requester.Pub("bench.req", "_INBOX.bench", payload);
      requester.Flush();
      requester.Poll(milliseconds(50), &on);
    }
    requester.Ping(milliseconds(2000));  // and drain the warm-up's answers
    for (size_t i = 0; i < kRequests && answered; ++i) {
      answered = false;
      Clock::time_point t = Clock::now();
      requester.Pub("bench.req", "_INBOX.bench", payload);
      requester.Flush();
      Clock::time_point deadline = t + milliseconds(2000);
      while (!answered && Clock::now() < deadline) requester.Poll(milliseconds(100), &on);
      if (answered)
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    done = true;
    serve.join();
    f.request_p50_us = Percentile(us, 0.5);
    f.request_p99_us = Percentile(us, 0.99);
  }
  return f;
}

}  // namespace meshbus::compare
