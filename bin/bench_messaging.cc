// The messaging figures of meshbus-bench, each beside the same measurement
// made with raw libzmq sockets on this machine, so that the overhead is a
// ratio:
//   - publish from n1 to a subscriber on n3, 64 B and 1 KiB: delivered/s, and
//     the highest rate with no loss (raw: a PUB/SUB pair over tcp loopback)
//   - broadcast from n1 to a group with one member per node: deliveries/s
//     (raw: one PUB, three SUBs)
//   - dispatch from n1 to 3 members on n2 and n3, 2048 in flight (as many as
//     the SDK's DispatchMany keeps): msgs/s; and as DispatchMany of 64, 32
//     requests in flight
//   - request/reply from n1 to a member on n3: sequential p50/p99, and
//     requests/s with 100 in flight
// The raw baseline of dispatch and request is a DEALER/ROUTER chain with the
// hops of the mesh: client -> broker A -> broker B -> member and back, each
// broker a thread with a ZeroMQ context of its own (as a process has).
// Receivers run on threads of their own, each with its own Client. Every run
// is bounded in count and in time.
#include "bin/bench_messaging.h"

#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <variant>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace meshbus::bench {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU time and context switches of this process (every thread, ended ones
// too) and of the brokers' threads: what a message costs, beside how fast it
// went on a shared 2-core machine. Set while the mesh is measured.
std::vector<pid_t> g_broker_pids;

struct Usage {
  uint64_t cpu_ns = 0, switches = 0;
  uint64_t self_ns = 0;             // this process's share of cpu_ns
  std::vector<uint64_t> broker_ns;  // and each broker's, as g_broker_pids
  Usage operator-(const Usage& o) const {
    Usage d{cpu_ns - o.cpu_ns, switches - o.switches, self_ns - o.self_ns, broker_ns};
    for (size_t i = 0; i < d.broker_ns.size() && i < o.broker_ns.size(); ++i) {
      d.broker_ns[i] -= o.broker_ns[i];
    }
    return d;
  }
};

Usage UsageNow() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  Usage out;
  out.cpu_ns = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * uint64_t{1'000'000'000} +
               (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * uint64_t{1000};
  out.switches = u.ru_nvcsw + u.ru_nivcsw;
  out.self_ns = out.cpu_ns;
  for (pid_t pid : g_broker_pids) {
    out.broker_ns.push_back(0);
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
      std::ifstream stat(task.path() / "schedstat");
      uint64_t run_ns = 0, wait_ns = 0, slices = 0;  // slices: times it was given a CPU
      if (stat >> run_ns >> wait_ns >> slices) {
        out.cpu_ns += run_ns;
        out.broker_ns.back() += run_ns;
        out.switches += slices;
      }
    }
  }
  return out;
}

std::string CpuText(double us) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f us", us);
  return buf;
}

// ---- payloads ---------------------------------------------------------------
// [kind][run: 4 bytes][seq: 8 bytes], padded to the payload size: enough for
// a receiver to tell warm-up from measurement, this run from stragglers of
// the last one, and to see order.
constexpr char kProbe = 'P';
constexpr char kBurst = 'B';
constexpr size_t kTagBytes = 13;

std::string Payload(size_t bytes, char kind, uint32_t run) {
  std::string p(std::max(bytes, kTagBytes), 'x');
  p[0] = kind;
  std::memcpy(&p[1], &run, sizeof run);
  std::memset(&p[5], 0, 8);
  return p;
}

void SetSeq(std::string& payload, uint64_t seq) {
  std::memcpy(&payload[5], &seq, sizeof seq);
}

struct Tag {
  char kind = 0;
  uint32_t run = 0;
  uint64_t seq = 0;
};

bool ReadTag(std::string_view p, Tag* t) {
  if (p.size() < kTagBytes) return false;
  t->kind = p[0];
  std::memcpy(&t->run, &p[1], sizeof t->run);
  std::memcpy(&t->seq, &p[5], sizeof t->seq);
  return true;
}

// Counts events from other threads; waited on with a deadline (no sleeping
// until a condition might hold).
class Signal {
 public:
  void Add() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++n_;
    }
    cv_.notify_all();
  }
  bool WaitFor(size_t want, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return n_ >= want; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

// A count kept by other threads, waited on until it reaches a target.
class Progress {
 public:
  void Add() {
    if (n_.fetch_add(1) + 1 >= target_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }
  uint64_t value() const { return n_.load(); }
  bool WaitFor(uint64_t want, Clock::time_point deadline) {
    target_ = want;
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return n_.load() >= want; });
  }

 private:
  std::atomic<uint64_t> n_{0}, target_{UINT64_MAX};
  std::mutex mu_;
  std::condition_variable cv_;
};

// ---- the table ----------------------------------------------------------------

std::string RateText(double per_s) {
  char buf[64];
  if (per_s >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M/s", per_s / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f k/s", per_s / 1e3);
  }
  return buf;
}

std::string MicrosText(double us) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f us", us);
  return buf;
}

class Table {
 public:
  enum Side { kMesh, kRaw };
  // `rate`: higher is better (overhead = raw / meshbus); else a latency
  // (overhead = meshbus / raw).
  void Set(const std::string& metric, bool rate, Side side, double value, std::string text) {
    Row* row = nullptr;
    for (Row& r : rows_) {
      if (r.metric == metric) row = &r;
    }
    if (row == nullptr) row = &rows_.emplace_back(Row{metric, rate, {}, {}});
    Cell& c = side == kMesh ? row->mesh : row->raw;
    c.value = value;
    c.text = std::move(text);
  }
  void Note(std::string line) { notes_.push_back(std::move(line)); }

  std::vector<MessagingFigure> Figures() const {
    std::vector<MessagingFigure> out;
    for (const Row& r : rows_) out.push_back({r.metric, r.rate, r.mesh.value, r.raw.value});
    return out;
  }

  void Print() const {
    std::printf("\n%-64s %-24s %-24s %s\n", "metric", "meshbus", "raw libzmq", "overhead");
    std::printf("%s\n", std::string(122, '-').c_str());
    for (const Row& r : rows_) {
      std::string ratio = "-";
      if (r.mesh.value > 0 && r.raw.value > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1fx",
                      r.rate ? r.raw.value / r.mesh.value : r.mesh.value / r.raw.value);
        ratio = buf;
      }
      std::printf("%-64s %-24s %-24s %s\n", r.metric.c_str(),
                  r.mesh.text.empty() ? "-" : r.mesh.text.c_str(),
                  r.raw.text.empty() ? "-" : r.raw.text.c_str(), ratio.c_str());
    }
    std::printf(
        "overhead: how many times slower meshbus is (raw/meshbus for rates, meshbus/raw for "
        "latencies)\n");
    for (const std::string& n : notes_) std::printf("%s\n", n.c_str());
  }

 private:
  struct Cell {
    double value = -1;
    std::string text;
  };
  struct Row {
    std::string metric;
    bool rate;
    Cell mesh, raw;
  };
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

// ---- streams: publish and broadcast, meshbus or raw -------------------------

// One receiver's end of a stream.
class Inlet {
 public:
  virtual ~Inlet() = default;
  // The next item within `timeout`: a gap notice (*lost > 0) or a message
  // (*payload, valid until the next call); kTimeout when nothing came.
  virtual Status Next(milliseconds timeout, std::string_view* payload, uint64_t* lost) = 0;
};

class MeshInlet : public Inlet {
 public:
  explicit MeshInlet(Client& c) : c_(c) {}
  Status Next(milliseconds timeout, std::string_view* payload, uint64_t* lost) override {
    std::optional<Clock::time_point> deadline;  // read only when a turn is not the stream's
    // Bounded by the deadline: every turn either returns or consumes a
    // delivery that is not part of the stream.
    while (true) {
      milliseconds left = timeout;
      if (deadline) {
        left = std::max(milliseconds(0),
                        std::chrono::duration_cast<milliseconds>(*deadline - Clock::now()));
      }
      Result<Delivery> d = c_.Receive(left);
      if (!d.ok()) return d.status();
      last_ = std::move(d.value());
      *lost = 0;
      if (auto* g = std::get_if<GapNotice>(&last_)) {
        *lost = g->lost;
        return Status::Ok();
      }
      if (auto* m = std::get_if<Message>(&last_)) {
        *payload = m->payload;
        return Status::Ok();
      }
      if (auto* o = std::get_if<Outcome>(&last_); o && !o->status.ok()) return o->status;
      if (!deadline) deadline = Clock::now() + timeout;
      if (Clock::now() >= *deadline) return Status::Timeout("nothing came");
    }
  }

 private:
  Client& c_;
  Delivery last_;
};

class ZmqInlet : public Inlet {
 public:
  explicit ZmqInlet(zmq::socket_t& s) : s_(s) {}
  Status Next(milliseconds timeout, std::string_view* payload, uint64_t* lost) override {
    *lost = 0;
    try {
      if (!s_.recv(msg_, zmq::recv_flags::dontwait)) {
        zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, timeout);
        if (!s_.recv(msg_, zmq::recv_flags::dontwait)) return Status::Timeout("nothing came");
      }
    } catch (const zmq::error_t& e) {
      return Status::Internal(e.what());
    }
    *payload = msg_.to_string_view();
    return Status::Ok();
  }

 private:
  zmq::socket_t& s_;
  zmq::message_t msg_;
};

using SendFn = std::function<Status(std::string_view)>;
// Many at once (PublishMany, BroadcastMany): the batching an application
// that has many messages to send does, as NATS's client does in its writes.
using SendManyFn = std::function<Status(std::span<const std::string_view>)>;

struct StreamResult {
  uint64_t sent = 0;           // messages the sender had accepted
  uint64_t expected = 0;       // sent x receivers
  uint64_t delivered = 0;      // sum over receivers
  uint64_t reported_lost = 0;  // gap notices (raw has none)
  uint64_t disordered = 0;
  double seconds = 0;       // first to last delivery, over all receivers
  double send_seconds = 0;  // the sender's loop
  double cpu_us = 0;        // CPU per delivery, every thread of every process
  double switches = 0;      // context switches per delivery, likewise
  Status error;
  uint64_t missing() const { return expected > delivered ? expected - delivered : 0; }
  uint64_t silent() const { return missing() > reported_lost ? missing() - reported_lost : 0; }
  double rate() const { return seconds > 0 && delivered > 1 ? delivered / seconds : 0; }
};

// How long a receiver waits for more once the sender is done: more than the
// brokers' mark interval (one heartbeat, 100 ms), which reports a loss at the
// tail of a stream.
constexpr Clock::duration kQuiet = 500ms;

struct ReceiverStats {
  uint64_t got = 0, lost = 0, disordered = 0;
  Clock::time_point first{}, last{};
  bool warmed = false;
  Status error;
};

void ReceiveRun(Inlet& in, uint32_t run, const std::atomic<uint64_t>& sent,
                const std::atomic<bool>& done, Signal& warm, Clock::time_point deadline,
                ReceiverStats* st) {
  uint64_t next_seq = 0;
  Clock::time_point heard = Clock::now();
  bool saw_done = false;
  std::string_view p;
  uint64_t lost = 0;
  // Bounded by the deadline; and by count once the sender is done.
  // One clock reading per message: the receiver's own cost is in the figures.
  for (Clock::time_point now = Clock::now(); now < deadline;) {
    if (done.load(std::memory_order_acquire)) {
      if (!saw_done) heard = std::max(heard, now);
      saw_done = true;
      if (st->got + st->lost >= sent.load() || now - heard > kQuiet) break;
    }
    Status s = in.Next(50ms, &p, &lost);
    now = Clock::now();
    if (s.code() == Code::kTimeout) continue;
    if (!s.ok()) {
      st->error = s;
      break;
    }
    heard = now;
    if (lost > 0) {
      st->lost += lost;
      continue;
    }
    Tag t;
    if (!ReadTag(p, &t) || t.run != run) continue;  // a straggler of an earlier run
    if (t.kind == kProbe) {
      if (!st->warmed) warm.Add();
      st->warmed = true;
      continue;
    }
    if (t.seq < next_seq) ++st->disordered;
    next_seq = t.seq + 1;
    if (st->got == 0) st->first = now;
    st->last = now;
    ++st->got;
  }
}

struct StreamSpec {
  size_t bytes = 64;
  uint64_t count = 0;
  double rate = 0;   // messages/s the sender keeps to; 0: as fast as it can
  size_t batch = 1;  // > 1: that many per call of a SendManyFn
};

// The sender's loop on this thread, one receiver thread per inlet. First a
// warm-up: probes until every receiver has one, which proves the route
// (subscriptions, memberships) is in place end to end.
StreamResult RunStream(const SendFn& send, const SendManyFn* send_many,
                       const std::vector<Inlet*>& inlets, StreamSpec spec, uint32_t run) {
  const auto start = Clock::now();
  const auto warm_deadline = start + 10s;
  const auto send_limit = 15s;
  const auto deadline = start + 40s;
  Signal warm;
  std::atomic<bool> done{false};
  std::atomic<uint64_t> sent{0};
  std::vector<ReceiverStats> stats(inlets.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < inlets.size(); ++i) {
    threads.emplace_back(
        [&, i] { ReceiveRun(*inlets[i], run, sent, done, warm, deadline, &stats[i]); });
  }
  StreamResult out;
  std::string probe = Payload(spec.bytes, kProbe, run);
  bool warmed = false;
  for (int i = 0; i < 20000 && Clock::now() < warm_deadline; ++i) {
    if (Status s = send(probe); !s.ok()) {
      out.error = s;
      break;
    }
    if (warm.WaitFor(inlets.size(), std::min(warm_deadline, Clock::now() + 1ms))) {
      warmed = true;
      break;
    }
  }
  if (!warmed && out.error.ok()) out.error = Status::Timeout("warm-up: probes did not arrive");
  uint64_t i = 0;
  Usage usage0;
  if (warmed) {
    const size_t batch = send_many ? std::max<size_t>(1, spec.batch) : 1;
    std::vector<std::string> bufs(batch, Payload(spec.bytes, kBurst, run));
    std::vector<std::string_view> views(bufs.begin(), bufs.end());
    usage0 = UsageNow();
    const auto t0 = Clock::now();
    const auto send_deadline = t0 + send_limit;
    while (i < spec.count) {
      auto now = Clock::now();
      if (now >= send_deadline) break;
      if (spec.rate > 0 && static_cast<double>(i) >= Seconds(now - t0) * spec.rate + 1) {
        std::this_thread::sleep_for(20us);  // pacing, not waiting for a condition
        continue;
      }
      const size_t n = std::min<uint64_t>(batch, spec.count - i);
      for (size_t k = 0; k < n; ++k) SetSeq(bufs[k], i + k);
      Status s = send_many ? (*send_many)(std::span<const std::string_view>(views).first(n))
                           : send(bufs[0]);
      if (!s.ok()) {
        out.error = s;
        break;
      }
      i += n;
    }
    out.send_seconds = Seconds(Clock::now() - t0);
  }
  sent.store(i);
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  Usage used = warmed ? UsageNow() - usage0 : Usage{};
  out.sent = i;
  out.expected = i * inlets.size();
  Clock::time_point first = Clock::time_point::max(), last = Clock::time_point::min();
  for (const ReceiverStats& s : stats) {
    out.delivered += s.got;
    out.reported_lost += s.lost;
    out.disordered += s.disordered;
    if (s.got > 0) {
      first = std::min(first, s.first);
      last = std::max(last, s.last);
    }
    if (!s.error.ok() && out.error.ok()) out.error = s.error;
  }
  if (out.delivered > 0) {
    out.seconds = Seconds(last - first);
    out.cpu_us = used.cpu_ns / 1e3 / out.delivered;
    out.switches = static_cast<double>(used.switches) / out.delivered;
  }
  return out;
}

void PrintStream(const std::string& what, const StreamSpec& spec, const StreamResult& r) {
  std::string pace = spec.rate > 0 ? "paced " + RateText(spec.rate) : "full speed";
  std::printf(
      "  %-52s %-16s sent %6llu in %5.2f s, delivered %6llu in %5.2f s = %-10s lost %llu "
      "(gap notices %llu); per delivery: CPU %.2f us, %.2f switches%s%s\n",
      what.c_str(), pace.c_str(), static_cast<unsigned long long>(r.sent), r.send_seconds,
      static_cast<unsigned long long>(r.delivered), r.seconds, RateText(r.rate()).c_str(),
      static_cast<unsigned long long>(r.missing()),
      static_cast<unsigned long long>(r.reported_lost), r.cpu_us, r.switches,
      r.disordered ? (" OUT OF ORDER " + std::to_string(r.disordered)).c_str() : "",
      r.error.ok() ? "" : (" ERROR " + r.error.ToString()).c_str());
  std::fflush(stdout);
}

// Full speed first; if anything was lost, paced runs at fixed fractions of
// the rate delivered, highest first, until one loses nothing. Results go in
// the table as "<metric>, full speed" and "<metric>, no loss".
void MeasureStream(const std::string& metric, Table::Side side, const SendFn& send,
                   const std::vector<Inlet*>& inlets, size_t bytes, uint64_t count, uint32_t* run,
                   Table* table, const SendManyFn* send_many = nullptr, size_t batch = 1) {
  StreamSpec spec{bytes, count, 0, batch};
  StreamResult full = RunStream(send, send_many, inlets, spec, ++*run);
  PrintStream(metric + (side == Table::kMesh ? " [meshbus]" : " [raw]"), spec, full);
  if (!full.error.ok()) {
    table->Set(metric + ", full speed", true, side, -1, "error");
    table->Note("ERROR in " + metric + (side == Table::kMesh ? " [meshbus]: " : " [raw]: ") +
                full.error.ToString());
    return;
  }
  if (side == Table::kMesh && full.silent() > 0) {
    table->Note("SILENT LOSS in " + metric + " [meshbus]: " + std::to_string(full.silent()) +
                " messages neither delivered nor reported by a gap notice");
  }
  table->Set(metric + ", full speed", true, side, full.rate(),
             RateText(full.rate()) + ", " + std::to_string(full.missing()) + " lost");
  table->Set(metric + ", CPU per delivery", false, side, full.cpu_us, CpuText(full.cpu_us));
  if (full.missing() == 0 && full.disordered == 0) {
    table->Set(metric + ", no loss", true, side, full.rate(), RateText(full.rate()));
    return;
  }
  // Paced in messages sent: a broadcast's deliveries are that many per receiver.
  const double sent_rate = full.rate() / inlets.size();
  for (double f : {0.8, 0.6, 0.4, 0.2}) {
    spec.rate = f * sent_rate;
    if (spec.rate < 100) break;
    // As many as at full speed, or about two seconds of traffic if fewer:
    // long enough for any queue that grows at this rate to overflow.
    spec.count = std::min<uint64_t>(count, std::max<uint64_t>(2000, spec.rate * 2));
    StreamResult r = RunStream(send, send_many, inlets, spec, ++*run);
    PrintStream(metric + (side == Table::kMesh ? " [meshbus]" : " [raw]"), spec, r);
    if (side == Table::kMesh && r.silent() > 0) {
      table->Note("SILENT LOSS in " + metric + " [meshbus] paced: " + std::to_string(r.silent()) +
                  " messages neither delivered nor reported");
    }
    if (r.error.ok() && r.missing() == 0 && r.disordered == 0) {
      table->Set(metric + ", no loss", true, side, r.rate(), RateText(r.rate()) + " (paced)");
      return;
    }
  }
  table->Set(metric + ", no loss", true, side, -1, "none >= " + RateText(spec.rate));
}

// ---- calls: dispatch and request, meshbus or raw ------------------------------

class Caller {
 public:
  virtual ~Caller() = default;
  // Starts one call and returns without waiting for its end.
  virtual Status Start(std::string_view payload) = 0;
  // The status of one started call that ended within `timeout`; nullopt if
  // none did.
  virtual std::optional<Status> Finish(milliseconds timeout) = 0;
  // One call, start to end.
  virtual Status Call(std::string_view payload, milliseconds timeout) = 0;
};

// Waits for the Outcome of an *Async call; other deliveries are not ours.
std::optional<Status> AwaitOutcome(Client& c, milliseconds timeout, size_t want_payload) {
  auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 100000; ++i) {
    auto left = std::max(milliseconds(0),
                         std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    Result<Delivery> d = c.Receive(left);
    if (!d.ok()) {
      if (d.status().code() == Code::kTimeout) return std::nullopt;
      return d.status();
    }
    if (auto* o = std::get_if<Outcome>(&*d)) {
      if (o->status.ok() && want_payload > 0 && o->payload.size() != want_payload) {
        return Status::Internal("a response of " + std::to_string(o->payload.size()) + " bytes");
      }
      return o->status;
    }
  }
  return std::nullopt;
}

class MeshDispatch : public Caller {
 public:
  MeshDispatch(Client& c, std::string scope, std::string group)
      : c_(c), scope_(std::move(scope)), group_(std::move(group)) {}
  Status Start(std::string_view p) override { return c_.DispatchAsync(scope_, group_, p).status(); }
  std::optional<Status> Finish(milliseconds timeout) override {
    return AwaitOutcome(c_, timeout, 0);
  }
  Status Call(std::string_view p, milliseconds) override {
    return c_.Dispatch(scope_, group_, p).status();
  }

 private:
  Client& c_;
  std::string scope_, group_;
};

class MeshRequest : public Caller {
 public:
  MeshRequest(Client& c, std::string scope, std::string group, size_t bytes)
      : c_(c), scope_(std::move(scope)), group_(std::move(group)), bytes_(bytes) {}
  Status Start(std::string_view p) override {
    return c_.RequestAsync(scope_, group_, p, 5000ms).status();
  }
  std::optional<Status> Finish(milliseconds timeout) override {
    return AwaitOutcome(c_, timeout, bytes_);
  }
  Status Call(std::string_view p, milliseconds timeout) override {
    Result<Message> r = c_.Request(scope_, group_, p, timeout);
    if (r.ok() && r->payload != p) return Status::Internal("the response is not the echo");
    return r.status();
  }

 private:
  Client& c_;
  std::string scope_, group_;
  size_t bytes_;
};

struct WindowResult {
  uint64_t ok = 0, failed = 0;
  double seconds = 0;
  double cpu_us = 0;    // per call, every thread of every process
  double switches = 0;  // context switches per call, likewise
  // Where cpu_us went: this process (the clients), then each broker.
  double self_cpu_us = 0;
  std::vector<double> broker_cpu_us;
  Status first_error;
  double rate() const { return seconds > 0 ? ok / seconds : 0; }
};

// A windowed run's clock and CPU meter: from its start to the last call
// that ended, and the CPU of every thread charged to the calls that did.
struct WindowMeter {
  Usage usage0 = UsageNow();
  Clock::time_point t0 = Clock::now();
  Clock::time_point last_end = t0;
  void Ended() { last_end = Clock::now(); }
  void Close(uint64_t ended, WindowResult* out) const {
    out->seconds = Seconds(last_end - t0);
    if (ended == 0) return;
    Usage used = UsageNow() - usage0;
    out->cpu_us = used.cpu_ns / 1e3 / ended;
    out->switches = static_cast<double>(used.switches) / ended;
    out->self_cpu_us = used.self_ns / 1e3 / ended;
    for (uint64_t ns : used.broker_ns) out->broker_cpu_us.push_back(ns / 1e3 / ended);
  }
};

// `count` calls with up to `window` in flight, started as others end.
// Warm-up calls are sent as probes, which members do not count.
WindowResult RunWindow(Caller& c, size_t bytes, uint64_t count, int window, uint32_t run,
                       Clock::duration limit, char kind = kBurst) {
  WindowResult out;
  std::string buf = Payload(bytes, kind, run);
  WindowMeter meter;
  const auto deadline = meter.t0 + limit;
  uint64_t started = 0, ended = 0;
  int in_flight = 0;
  bool cannot_start = false;
  while (ended < count && Clock::now() < deadline) {
    while (in_flight < window && started < count && !cannot_start) {
      SetSeq(buf, started);
      if (Status s = c.Start(buf); !s.ok()) {
        if (out.first_error.ok()) out.first_error = s;
        cannot_start = true;
        break;
      }
      ++started;
      ++in_flight;
    }
    if (in_flight == 0) break;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    std::optional<Status> e = c.Finish(std::clamp(left, 0ms, 1000ms));
    if (!e) continue;  // nothing ended in this slice; the deadline bounds the wait
    --in_flight;
    ++ended;
    meter.Ended();
    if (e->ok()) {
      ++out.ok;
    } else {
      ++out.failed;
      if (out.first_error.ok()) out.first_error = *e;
    }
  }
  meter.Close(ended, &out);
  // What is still in flight after a deadline or an error: collected, so the
  // next measurement starts clean.
  for (int i = 0; in_flight > 0 && i < window; ++i) {
    if (!c.Finish(1000ms)) break;
    --in_flight;
  }
  return out;
}

// `count` dispatches as DispatchManyAsync requests of `batch` payloads, up to
// `window` requests in flight: what an application that dispatches fast
// does. ok and failed count payloads, as each one's outcome says.
WindowResult RunDispatchMany(Client& c, const std::string& scope, const std::string& group,
                             size_t bytes, uint64_t count, size_t batch, int window, uint32_t run,
                             Clock::duration limit) {
  WindowResult out;
  std::vector<std::string> bufs(batch, Payload(bytes, kBurst, run));
  std::vector<std::string_view> views(bufs.begin(), bufs.end());
  WindowMeter meter;
  const auto deadline = meter.t0 + limit;
  uint64_t started = 0, ended = 0;
  int in_flight = 0;
  auto fail = [&](const Status& s, uint64_t n) {
    out.failed += n;
    if (out.first_error.ok()) out.first_error = s;
  };
  while (ended < count && Clock::now() < deadline) {
    while (in_flight < window && started < count) {
      const size_t n = std::min<uint64_t>(batch, count - started);
      for (size_t i = 0; i < n; ++i) SetSeq(bufs[i], started + i);
      Result<uint64_t> t = c.DispatchManyAsync(scope, group, std::span(views).first(n));
      if (!t.ok()) {
        fail(t.status(), count - started);
        ended += count - started;
        started = count;
        break;
      }
      started += n;
      ++in_flight;
    }
    if (in_flight == 0) break;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    Result<Delivery> d = c.Receive(std::clamp(left, 0ms, 1000ms));
    if (!d.ok()) {
      if (d.status().code() == Code::kTimeout) continue;
      fail(d.status(), 0);
      break;
    }
    auto* o = std::get_if<Outcome>(&*d);
    if (o == nullptr) continue;
    --in_flight;
    meter.Ended();
    if (o->dispatched.empty()) {  // not one of ours, or refused without a count
      fail(o->status.ok() ? Status::Internal("an outcome without payloads") : o->status, 0);
      continue;
    }
    for (const Result<MemberId>& r : o->dispatched) {
      ++ended;
      if (r.ok()) {
        ++out.ok;
      } else {
        fail(r.status(), 1);
      }
    }
  }
  meter.Close(ended, &out);
  // What is still in flight after a deadline or an error: collected, so the
  // next measurement starts clean.
  for (int i = 0; in_flight > 0 && i < 10 * window; ++i) {
    Result<Delivery> d = c.Receive(1000ms);
    if (!d.ok()) break;
    if (std::holds_alternative<Outcome>(*d)) --in_flight;
  }
  return out;
}

// `count` calls one after another; their latencies in microseconds.
struct Sequential {
  std::vector<double> us;           // each call's latency
  double cpu_us = 0, switches = 0;  // per call, every thread of every process
  Status error;
};

Sequential RunSequential(Caller& c, size_t bytes, int count, uint32_t run, Clock::duration limit) {
  Sequential out;
  std::string buf = Payload(bytes, kBurst, run);
  const auto deadline = Clock::now() + limit;
  const Usage usage0 = UsageNow();
  for (int i = 0; i < count && Clock::now() < deadline; ++i) {
    SetSeq(buf, i);
    auto t0 = Clock::now();
    if (Status s = c.Call(buf, 2000ms); !s.ok()) {
      out.error = s;
      break;
    }
    out.us.push_back(Micros(Clock::now() - t0));
  }
  if (!out.us.empty()) {
    Usage used = UsageNow() - usage0;
    out.cpu_us = used.cpu_ns / 1e3 / out.us.size();
    out.switches = static_cast<double>(used.switches) / out.us.size();
  }
  return out;
}

// ---- meshbus members ----------------------------------------------------------

// Member threads, each with its own Client: they count the messages they are
// given and answer requests with their payload, until stopped.
class Members {
 public:
  explicit Members(std::vector<Client>& clients) : errors_(clients.size()) {
    for (size_t i = 0; i < clients.size(); ++i) {
      threads_.emplace_back([this, &c = clients[i], i] { Serve(c, &errors_[i]); });
    }
  }
  ~Members() { Stop(); }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  uint64_t handled() const { return handled_.value(); }
  bool AwaitHandled(uint64_t n, Clock::time_point deadline) {
    return handled_.WaitFor(n, deadline);
  }
  uint64_t gaps() const { return gaps_.load(); }
  // ReplyAsync() does not wait for its broker: its mean time is the cost of a send.
  double mean_reply_us() const { return replies_ ? reply_ns_ / 1e3 / replies_ : 0; }
  uint64_t replies() const { return replies_.load(); }
  Status error() const {
    for (const Status& s : errors_) {
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

 private:
  void Serve(Client& c, Status* error) {
    for (uint64_t n = 0; n < 100'000'000 && !stop_ && Clock::now() < deadline_;) {
      Result<Delivery> d = c.Receive(50ms);
      if (!d.ok()) {
        if (d.status().code() == Code::kTimeout) continue;
        *error = d.status();
        return;
      }
      if (auto* g = std::get_if<GapNotice>(&*d)) gaps_ += g->lost;
      if (auto* o = std::get_if<Outcome>(&*d); o && !o->status.ok()) {
        *error = o->status;  // a reply the broker refused
        return;
      }
      auto* m = std::get_if<Message>(&*d);
      if (m == nullptr) continue;
      if (m->kind == MessageKind::kRequest) {
        auto t0 = Clock::now();
        if (Status s = c.ReplyAsync(*m, m->payload); !s.ok()) {
          *error = s;
          return;
        }
        reply_ns_ +=
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        ++replies_;
      }
      Tag t;
      if (ReadTag(m->payload, &t) && t.kind == kBurst) handled_.Add();
      ++n;
    }
  }
  const Clock::time_point deadline_ = Clock::now() + 300s;  // a bound, should Stop never come
  std::atomic<bool> stop_{false};
  Progress handled_;
  std::atomic<uint64_t> gaps_{0}, reply_ns_{0}, replies_{0};
  std::vector<Status> errors_;
  std::vector<std::thread> threads_;
};

// Waits until `observer`'s broker knows `want` members of the group: the
// monitor's start set, then join events.
void AwaitMembers(Client& observer, const std::string& scope, const std::string& group,
                  size_t want) {
  Result<MonitorStart> m = observer.Monitor(scope, group);
  if (!m.ok()) Die("monitor", m.status());
  size_t have = 0;
  for (const GroupMembers& g : m->groups) have += g.members.size();
  auto deadline = Clock::now() + 10s;
  while (have < want && Clock::now() < deadline) {
    Result<Delivery> d = observer.Receive(100ms);
    if (!d.ok()) continue;
    if (auto* e = std::get_if<MonitorEvent>(&*d); e && e->kind == EventKind::kJoin) {
      have += e->members.size();
    }
  }
  (void)observer.Demonitor(m->ref);
  if (have < want) {
    Die("waiting for members of " + group,
        Status::Timeout(std::to_string(have) + " of " + std::to_string(want) + " within 10 s"));
  }
}

// ---- raw libzmq -------------------------------------------------------------------

std::string BindLoopback(zmq::socket_t& s) {
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

// One PUB and `n` SUBs over tcp loopback in one context, the high-water marks
// those of the brokers' data sockets.
struct RawFanout {
  zmq::context_t ctx{1};
  zmq::socket_t pub{ctx, zmq::socket_type::pub};
  std::vector<zmq::socket_t> subs;
  std::vector<std::unique_ptr<ZmqInlet>> inlets;

  explicit RawFanout(int n) {
    pub.set(zmq::sockopt::linger, 0);
    pub.set(zmq::sockopt::sndhwm, 100000);
    std::string ep = BindLoopback(pub);
    for (int i = 0; i < n; ++i) {
      zmq::socket_t& s = subs.emplace_back(ctx, zmq::socket_type::sub);
      s.set(zmq::sockopt::linger, 0);
      s.set(zmq::sockopt::rcvhwm, 100000);
      s.set(zmq::sockopt::subscribe, "");
      s.connect(ep);
    }
    for (auto& s : subs) inlets.push_back(std::make_unique<ZmqInlet>(s));
  }
  std::vector<Inlet*> Inlets() {
    std::vector<Inlet*> v;
    for (auto& i : inlets) v.push_back(i.get());
    return v;
  }
  SendFn Sender() {
    return [this](std::string_view p) {
      try {
        pub.send(zmq::buffer(p.data(), p.size()), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        return Status::Internal(e.what());
      }
      return Status::Ok();
    };
  }
};

// client DEALER -> ROUTER [broker A] DEALER -> ROUTER [broker B] ROUTER ->
// DEALER member, and back the same way. members[b] members hang off
// downstream broker b; A spreads calls over all members evenly. With `echo`
// members answer (request/reply); without, broker B acknowledges once it
// has handed the message to the member (dispatch).
class RawChain {
 public:
  RawChain(std::vector<int> members, bool echo) : echo_(echo) {
    // Every hop queues what is in flight: at ZeroMQ's default bound of 1,000
    // a ROUTER would drop what does not fit, and a DEALER refuse it.
    auto bound = [](zmq::socket_t& s) {
      s.set(zmq::sockopt::sndhwm, 100000);
      s.set(zmq::sockopt::rcvhwm, 100000);
    };
    a_.front.set(zmq::sockopt::linger, 0);
    bound(a_.front);
    std::string a_ep = BindLoopback(a_.front);
    for (size_t b = 0; b < members.size(); ++b) {
      auto& down = bs_.emplace_back(std::make_unique<Downstream>());
      for (auto* s : {&down->front, &down->back}) {
        s->set(zmq::sockopt::linger, 0);
        bound(*s);
      }
      down->back.set(zmq::sockopt::router_mandatory, 1);
      std::string front = BindLoopback(down->front);
      std::string back = BindLoopback(down->back);
      zmq::socket_t& dealer = a_.backs.emplace_back(a_.ctx, zmq::socket_type::dealer);
      dealer.set(zmq::sockopt::linger, 0);
      bound(dealer);
      dealer.connect(front);
      for (int m = 0; m < members[b]; ++m) {
        auto& mem = members_.emplace_back(std::make_unique<Member>(ctx_));
        mem->id = "m" + std::to_string(b) + "." + std::to_string(m);
        mem->s.set(zmq::sockopt::linger, 0);
        bound(mem->s);
        mem->s.set(zmq::sockopt::routing_id, mem->id);
        mem->s.connect(back);
        owner_.push_back(b);
      }
    }
    client_.set(zmq::sockopt::linger, 0);
    client_.set(zmq::sockopt::sndtimeo, 1000);
    bound(client_);
    client_.connect(a_ep);
    // Sockets move to their threads here; starting a thread is the barrier
    // ZeroMQ asks for.
    threads_.emplace_back([this] { RunA(); });
    for (auto& b : bs_) threads_.emplace_back([this, d = b.get()] { RunB(*d); });
    for (auto& m : members_) threads_.emplace_back([this, m = m.get()] { RunMember(*m); });
  }
  ~RawChain() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  // Until every member has said hello to its broker.
  bool AwaitReady() { return ready_.WaitFor(members_.size(), Clock::now() + 10s); }
  zmq::socket_t& client() { return client_; }
  uint64_t member_deliveries() const { return delivered_.value(); }
  bool AwaitDeliveries(uint64_t n) { return delivered_.WaitFor(n, Clock::now() + 5s); }

 private:
  using Frames = std::vector<zmq::message_t>;
  static constexpr int kBudget = 1000;  // messages per socket per turn

  struct Upstream {
    zmq::context_t ctx{1};
    zmq::socket_t front{ctx, zmq::socket_type::router};
    std::vector<zmq::socket_t> backs;
  };
  struct Downstream {
    zmq::context_t ctx{1};
    zmq::socket_t front{ctx, zmq::socket_type::router};
    zmq::socket_t back{ctx, zmq::socket_type::router};
    std::vector<std::string> members;  // routing ids, as they said hello
    size_t next = 0;
  };
  struct Member {
    explicit Member(zmq::context_t& ctx) : s(ctx, zmq::socket_type::dealer) {}
    zmq::socket_t s;
    std::string id;
  };

  static bool Recv(zmq::socket_t& s, Frames* f) {
    f->clear();
    return zmq::recv_multipart(s, std::back_inserter(*f), zmq::recv_flags::dontwait).has_value();
  }
  static void Send(zmq::socket_t& s, Frames& f) {
    (void)zmq::send_multipart(s, f, zmq::send_flags::dontwait);
  }

  void RunA() {
    std::vector<zmq::pollitem_t> items{{a_.front.handle(), 0, ZMQ_POLLIN, 0}};
    for (auto& b : a_.backs) items.push_back({b.handle(), 0, ZMQ_POLLIN, 0});
    Frames f;
    size_t next = 0;
    try {
      while (!stop_ && Clock::now() < deadline_) {
        zmq::poll(items.data(), items.size(), 50ms);
        // [client][body] -> to the broker of the next member.
        for (int i = 0; i < kBudget && Recv(a_.front, &f); ++i) {
          Send(a_.backs[owner_[next++ % owner_.size()]], f);
        }
        // [client][answer] -> back to the client.
        for (auto& b : a_.backs) {
          for (int i = 0; i < kBudget && Recv(b, &f); ++i) Send(a_.front, f);
        }
      }
    } catch (const zmq::error_t&) {
    }
  }

  void RunB(Downstream& d) {
    zmq::pollitem_t items[] = {{d.front.handle(), 0, ZMQ_POLLIN, 0},
                               {d.back.handle(), 0, ZMQ_POLLIN, 0}};
    Frames f, ack;
    try {
      while (!stop_ && Clock::now() < deadline_) {
        zmq::poll(items, 2, 50ms);
        // [A][client][body] -> [member][A][client][body]
        for (int i = 0; i < kBudget && !d.members.empty() && Recv(d.front, &f); ++i) {
          if (!echo_) {
            ack.clear();
            ack.emplace_back(f[0].data(), f[0].size());
            ack.emplace_back(f[1].data(), f[1].size());
            ack.emplace_back(f[2].data(), std::min(f[2].size(), kTagBytes));
          }
          f.insert(f.begin(), zmq::message_t(d.members[d.next++ % d.members.size()]));
          Send(d.back, f);
          if (!echo_) Send(d.front, ack);
        }
        // [member][A][client][answer] -> [A][client][answer]; or a hello.
        for (int i = 0; i < kBudget && Recv(d.back, &f); ++i) {
          if (f.size() == 2) {
            d.members.push_back(f[0].to_string());
            ready_.Add();
            continue;
          }
          f.erase(f.begin());
          Send(d.front, f);
        }
      }
    } catch (const zmq::error_t&) {
    }
  }

  void RunMember(Member& m) {
    zmq::pollitem_t item{m.s.handle(), 0, ZMQ_POLLIN, 0};
    Frames f;
    try {
      m.s.send(zmq::str_buffer("hello"), zmq::send_flags::none);
      while (!stop_ && Clock::now() < deadline_) {
        zmq::poll(&item, 1, 50ms);
        for (int i = 0; i < kBudget && Recv(m.s, &f); ++i) {
          if (echo_) Send(m.s, f);  // [A][client][body] back as it came
          delivered_.Add();
        }
      }
    } catch (const zmq::error_t&) {
    }
  }

  const bool echo_;
  const Clock::time_point deadline_ = Clock::now() + 300s;  // a bound, should Stop never come
  std::atomic<bool> stop_{false};
  Progress delivered_;
  Signal ready_;
  zmq::context_t ctx_{1};  // the client's and the members', as one process
  zmq::socket_t client_{ctx_, zmq::socket_type::dealer};
  Upstream a_;
  std::vector<std::unique_ptr<Downstream>> bs_;
  std::vector<std::unique_ptr<Member>> members_;
  std::vector<size_t> owner_;  // member -> its downstream broker
  std::vector<std::thread> threads_;
};

class RawCaller : public Caller {
 public:
  explicit RawCaller(zmq::socket_t& s) : s_(s) {}
  Status Start(std::string_view p) override {
    try {
      if (!s_.send(zmq::buffer(p.data(), p.size()), zmq::send_flags::none)) {
        return Status::Timeout("send");
      }
    } catch (const zmq::error_t& e) {
      return Status::Internal(e.what());
    }
    return Status::Ok();
  }
  std::optional<Status> Finish(milliseconds timeout) override {
    try {
      if (!s_.recv(msg_, zmq::recv_flags::dontwait)) {
        zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, timeout);
        if (!s_.recv(msg_, zmq::recv_flags::dontwait)) return std::nullopt;
      }
    } catch (const zmq::error_t& e) {
      return Status::Internal(e.what());
    }
    return Status::Ok();
  }
  Status Call(std::string_view p, milliseconds timeout) override {
    if (Status s = Start(p); !s.ok()) return s;
    std::optional<Status> e = Finish(timeout);
    return e ? *e : Status::Timeout("no answer");
  }

 private:
  zmq::socket_t& s_;
  zmq::message_t msg_;
};

// ---- the parts ---------------------------------------------------------------------

constexpr uint64_t kPubCount64 = 200000;
constexpr uint64_t kPubCount1K = 50000;
constexpr uint64_t kBroadcastCount = 100000;
constexpr uint64_t kWindowCount = 20000;
constexpr int kWindow = 100;
constexpr int kSequential = 2000;
constexpr size_t kCallBytes = 64;

struct Sizes {
  size_t bytes;
  uint64_t count;
  const char* name;
};
constexpr Sizes kPubSizes[] = {{64, kPubCount64, "64 B"}, {1024, kPubCount1K, "1 KiB"}};

std::string PubMetric(const Sizes& s) {
  return std::string("publish n1 -> n3, ") + s.name;
}
// Payloads per PublishMany or BroadcastMany call in the batched rows.
constexpr size_t kCastBatch = 64;
std::string PubManyMetric(const Sizes& s) {
  return PubMetric(s) + ", PublishMany of " + std::to_string(kCastBatch);
}
const std::string kBroadcastMetric = "broadcast n1 -> 3 members, 64 B (deliveries)";
const std::string kBroadcastManyMetric =
    kBroadcastMetric + ", BroadcastMany of " + std::to_string(kCastBatch);
// Acknowledged dispatches in flight: as many as the SDK's own DispatchMany
// keeps (8 requests of 256), since with fewer the rate is bound by the round
// trip, not by the mesh (in one mesh here, 8 requests of 64 in flight:
// 0.66-0.75 M/s; 32: 1.17-1.22 M/s; more: no faster).
constexpr int kDispatchInFlight = 2048;
constexpr uint64_t kDispatchCount = 200000;
// DispatchMany of kCastBatch, the same number of payloads in flight.
constexpr int kDispatchManyWindow = kDispatchInFlight / static_cast<int>(kCastBatch);
const std::string kDispatchMetric =
    "dispatch n1 -> 3 members (n2, n3), " + std::to_string(kDispatchInFlight) + " in flight";
const std::string kDispatchManyMetric = "dispatch n1 -> 3 members (n2, n3), DispatchMany of " +
                                        std::to_string(kCastBatch) + ", " +
                                        std::to_string(kDispatchManyWindow) + " in flight";
const std::string kRequestSeqMetric = "request/reply n1 -> n3, sequential";
const std::string kRequestWindowMetric = "request/reply n1 -> n3, 100 in flight";

uint32_t g_run = 0;

void RawPubSub(Table* t) {
  RawFanout f(1);
  for (const Sizes& s : kPubSizes) {
    MeasureStream(PubMetric(s), Table::kRaw, f.Sender(), f.Inlets(), s.bytes, s.count, &g_run, t);
  }
}

void RawBroadcast(Table* t) {
  RawFanout f(3);
  MeasureStream(kBroadcastMetric, Table::kRaw, f.Sender(), f.Inlets(), 64, kBroadcastCount, &g_run,
                t);
}

void PrintWindow(const std::string& what, const WindowResult& w) {
  std::string where;  // the clients' process, then n1, n2, ...
  if (!w.broker_cpu_us.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " (clients %.2f", w.self_cpu_us);
    where = buf;
    for (size_t i = 0; i < w.broker_cpu_us.size(); ++i) {
      std::snprintf(buf, sizeof buf, ", n%zu %.2f", i + 1, w.broker_cpu_us[i]);
      where += buf;
    }
    where += ")";
  }
  std::printf(
      "  %-52s %llu ok, %llu failed in %.2f s = %s; per call: CPU %.2f us%s, %.1f switches%s\n",
      what.c_str(), static_cast<unsigned long long>(w.ok),
      static_cast<unsigned long long>(w.failed), w.seconds, RateText(w.rate()).c_str(), w.cpu_us,
      where.c_str(), w.switches,
      w.first_error.ok() ? "" : (" first error: " + w.first_error.ToString()).c_str());
  std::fflush(stdout);
}

void SetWindow(Table* t, const std::string& metric, Table::Side side, const WindowResult& w) {
  if (w.ok == 0) {
    t->Set(metric, true, side, -1, "error");
  } else {
    t->Set(metric, true, side, w.rate(),
           RateText(w.rate()) + (w.failed ? ", " + std::to_string(w.failed) + " failed" : ""));
    t->Set(metric + ", CPU per call", false, side, w.cpu_us, CpuText(w.cpu_us));
  }
  if (!w.first_error.ok()) {
    t->Note(std::string("ERROR in ") + metric + (side == Table::kMesh ? " [meshbus]" : " [raw]") +
            ": " + w.first_error.ToString());
  }
}

void RawDispatch(Table* t) {
  // n2 holds two of the three members, n3 one.
  RawChain chain({2, 1}, /*echo=*/false);
  if (!chain.AwaitReady()) Die("raw chain", Status::Timeout("members did not say hello"));
  RawCaller c(chain.client());
  (void)RunWindow(c, kCallBytes, 10000, kDispatchInFlight, ++g_run, 10s, kProbe);  // warm-up
  uint64_t before = chain.member_deliveries();
  WindowResult w = RunWindow(c, kCallBytes, kDispatchCount, kDispatchInFlight, ++g_run, 20s);
  PrintWindow(kDispatchMetric + " [raw]", w);
  SetWindow(t, kDispatchMetric, Table::kRaw, w);
  // Acknowledged means handed on: the members have them, or soon will.
  if (!chain.AwaitDeliveries(before + w.ok)) {
    t->Note("dispatch [raw]: members got " + std::to_string(chain.member_deliveries() - before) +
            " of " + std::to_string(w.ok) + " acknowledged");
  }
}

void SetLatency(Table* t, const std::string& metric, Table::Side side, const Sequential& r) {
  const std::string who = metric + (side == Table::kMesh ? " [meshbus]" : " [raw]");
  if (!r.error.ok()) t->Note("ERROR in " + who + ": " + r.error.ToString());
  if (r.us.empty()) return;
  double p50 = Percentile(r.us, 0.5), p99 = Percentile(r.us, 0.99);
  std::printf("  %-52s p50 %s, p99 %s (%zu calls); per call: CPU %.2f us, %.1f switches\n",
              who.c_str(), MicrosText(p50).c_str(), MicrosText(p99).c_str(), r.us.size(), r.cpu_us,
              r.switches);
  std::fflush(stdout);
  t->Set(metric + ", p50", false, side, p50, MicrosText(p50));
  t->Set(metric + ", p99", false, side, p99, MicrosText(p99));
}

void RawRequest(Table* t) {
  RawChain chain({1}, /*echo=*/true);
  if (!chain.AwaitReady()) Die("raw chain", Status::Timeout("the responder did not say hello"));
  RawCaller c(chain.client());
  (void)RunSequential(c, kCallBytes, 200, ++g_run, 10s);  // warm-up
  SetLatency(t, kRequestSeqMetric, Table::kRaw,
             RunSequential(c, kCallBytes, kSequential, ++g_run, 30s));
  WindowResult w = RunWindow(c, kCallBytes, kWindowCount, kWindow, ++g_run, 20s);
  PrintWindow(kRequestWindowMetric + " [raw]", w);
  SetWindow(t, kRequestWindowMetric, Table::kRaw, w);
}

// Errors the broker reports after the fact to a sender of publishes and
// broadcasts (as Outcomes with ticket 0).
void CheckSenderErrors(Client& c, const std::string& what, Table* t) {
  for (int i = 0; i < 100000; ++i) {
    Result<Delivery> d = c.Receive(0ms);
    if (!d.ok()) return;
    if (auto* o = std::get_if<Outcome>(&*d); o && !o->status.ok()) {
      t->Note("ERROR reported to the sender of " + what + ": " + o->status.ToString());
      return;
    }
  }
}

// Where a stream's losses happened, from the brokers' counters (one client
// per node to ask): between brokers (the data PUB/SUB), or at clients' full
// queues.
struct LossCounters {
  uint64_t data = 0, client = 0;
};
LossCounters Losses(const std::vector<Client*>& one_per_node) {
  LossCounters l;
  for (Client* c : one_per_node) {
    Result<std::map<std::string, uint64_t>> s = c->Stats();
    if (!s.ok()) Die("stats", s.status());
    l.data += (*s)["data_messages_lost"];
    l.client += (*s)["client_deliveries_lost"];
  }
  return l;
}
void PrintLosses(const LossCounters& before, const LossCounters& after) {
  if (after.data == before.data && after.client == before.client) return;
  std::printf("  %-52s lost between brokers %llu, at full client queues %llu\n",
              "(broker counters)", static_cast<unsigned long long>(after.data - before.data),
              static_cast<unsigned long long>(after.client - before.client));
}

void MeshPubSub(const testing::ProcessMesh& mesh, Table* t) {
  Client pub = MustConnect(mesh, 0, "bench-publisher");
  Client sub = MustConnect(mesh, 2, "bench-subscriber");
  if (Status s = sub.Subscribe("bench.ps."); !s.ok()) Die("subscribe", s);
  MeshInlet inlet(sub);
  for (const Sizes& s : kPubSizes) {
    const std::string topic = "bench.ps." + std::to_string(s.bytes);
    SendFn send = [&](std::string_view p) { return pub.Publish(topic, p); };
    LossCounters before = Losses({&pub, &sub});
    MeasureStream(PubMetric(s), Table::kMesh, send, {&inlet}, s.bytes, s.count, &g_run, t);
    PrintLosses(before, Losses({&pub, &sub}));
    CheckSenderErrors(pub, "publish", t);
  }
  for (const Sizes& s : kPubSizes) {
    const std::string topic = "bench.ps.many." + std::to_string(s.bytes);
    SendFn send = [&](std::string_view p) { return pub.Publish(topic, p); };
    SendManyFn many = [&](std::span<const std::string_view> p) {
      return pub.PublishMany(topic, p);
    };
    LossCounters before = Losses({&pub, &sub});
    MeasureStream(PubManyMetric(s), Table::kMesh, send, {&inlet}, s.bytes, s.count, &g_run, t,
                  &many, kCastBatch);
    PrintLosses(before, Losses({&pub, &sub}));
    CheckSenderErrors(pub, "publish", t);
  }
}

void MeshBroadcast(const testing::ProcessMesh& mesh, Table* t) {
  const std::string scope = "bench-bc", group = "all";
  Client sender = MustConnect(mesh, 0, "bench-broadcaster");
  std::vector<Client> members;
  for (int node = 0; node < 3; ++node) {
    members.push_back(MustConnect(mesh, node, "bench-member"));
    if (Status s = members.back().Join(scope, group); !s.ok()) Die("join", s);
  }
  AwaitMembers(sender, scope, group, 3);
  std::vector<std::unique_ptr<MeshInlet>> inlets;
  std::vector<Inlet*> raw_inlets;
  for (Client& c : members) {
    inlets.push_back(std::make_unique<MeshInlet>(c));
    raw_inlets.push_back(inlets.back().get());
  }
  SendFn send = [&](std::string_view p) { return sender.Broadcast(scope, group, p); };
  std::vector<Client*> nodes{&members[0], &members[1], &members[2]};
  LossCounters before = Losses(nodes);
  MeasureStream(kBroadcastMetric, Table::kMesh, send, raw_inlets, 64, kBroadcastCount, &g_run, t);
  PrintLosses(before, Losses(nodes));
  CheckSenderErrors(sender, "broadcast", t);
  SendManyFn many = [&](std::span<const std::string_view> p) {
    return sender.BroadcastMany(scope, group, p);
  };
  before = Losses(nodes);
  MeasureStream(kBroadcastManyMetric, Table::kMesh, send, raw_inlets, 64, kBroadcastCount, &g_run,
                t, &many, kCastBatch);
  PrintLosses(before, Losses(nodes));
  CheckSenderErrors(sender, "broadcast", t);
}

void MeshDispatchPart(const testing::ProcessMesh& mesh, Table* t) {
  const std::string scope = "bench-dp", group = "workers";
  Client sender = MustConnect(mesh, 0, "bench-dispatcher");
  std::vector<Client> clients;
  for (int node : {1, 2, 1}) {  // two members on n2, one on n3
    clients.push_back(MustConnect(mesh, node, "bench-member"));
    if (Status s = clients.back().Join(scope, group); !s.ok()) Die("join", s);
  }
  AwaitMembers(sender, scope, group, 3);
  Members members(clients);
  MeshDispatch c(sender, scope, group);
  (void)RunWindow(c, kCallBytes, 10000, kDispatchInFlight, ++g_run, 10s, kProbe);  // warm-up
  uint64_t before = members.handled();
  WindowResult w = RunWindow(c, kCallBytes, kDispatchCount, kDispatchInFlight, ++g_run, 20s);
  PrintWindow(kDispatchMetric + " [meshbus]", w);
  SetWindow(t, kDispatchMetric, Table::kMesh, w);
  // A dispatch that succeeded is in its member's queue: the members get
  // every one (bounded wait; they read as fast as they can).
  members.AwaitHandled(before + w.ok, Clock::now() + 5s);
  uint64_t got = members.handled() - before;
  // Then as DispatchMany, many payloads per request (more of them: it is faster).
  before = members.handled();
  WindowResult many = RunDispatchMany(sender, scope, group, kCallBytes, 5 * kDispatchCount,
                                      kCastBatch, kDispatchManyWindow, ++g_run, 20s);
  PrintWindow(kDispatchManyMetric + " [meshbus]", many);
  SetWindow(t, kDispatchManyMetric, Table::kMesh, many);
  members.AwaitHandled(before + many.ok, Clock::now() + 5s);
  uint64_t got_many = members.handled() - before;
  members.Stop();
  if (got != w.ok || got_many != many.ok || members.gaps() > 0 || !members.error().ok()) {
    t->Note("dispatch [meshbus]: members got " + std::to_string(got) + " of " +
            std::to_string(w.ok) + " confirmed, and " + std::to_string(got_many) + " of " +
            std::to_string(many.ok) + " of DispatchMany; gap notices " +
            std::to_string(members.gaps()) + "; " + members.error().ToString());
  }
}

void MeshRequestPart(const testing::ProcessMesh& mesh, Table* t) {
  const std::string scope = "bench-rr", group = "echo";
  Client requester = MustConnect(mesh, 0, "bench-requester");
  std::vector<Client> clients;
  clients.push_back(MustConnect(mesh, 2, "bench-responder"));
  if (Status s = clients.back().Join(scope, group); !s.ok()) Die("join", s);
  AwaitMembers(requester, scope, group, 1);
  Members responder(clients);
  MeshRequest c(requester, scope, group, kCallBytes);
  (void)RunSequential(c, kCallBytes, 200, ++g_run, 10s);  // warm-up
  SetLatency(t, kRequestSeqMetric, Table::kMesh,
             RunSequential(c, kCallBytes, kSequential, ++g_run, 30s));
  WindowResult w = RunWindow(c, kCallBytes, kWindowCount, kWindow, ++g_run, 20s);
  PrintWindow(kRequestWindowMetric + " [meshbus]", w);
  SetWindow(t, kRequestWindowMetric, Table::kMesh, w);
  responder.Stop();
  std::printf("  %-52s %llu ReplyAsync() calls, %.0f us each on average\n", "(responder on n3)",
              static_cast<unsigned long long>(responder.replies()), responder.mean_reply_us());
  if (!responder.error().ok()) t->Note("responder [meshbus]: " + responder.error().ToString());
}

bool Has(const std::vector<MessagingPart>& parts, MessagingPart p) {
  return std::find(parts.begin(), parts.end(), p) != parts.end();
}

}  // namespace

const std::string& DispatchMetric() {
  return kDispatchMetric;
}
const std::string& DispatchManyMetric() {
  return kDispatchManyMetric;
}

std::vector<MessagingFigure> MessagingBenchmarks(const std::vector<MessagingPart>& parts) {
  Table table;
  std::printf(
      "messaging: a 3-node mesh of meshbusd, clients on threads of their own in this process "
      "(over ipc);\neach part first with raw libzmq (tcp loopback, this process), then "
      "meshbus.\nCPU and switches: every thread of this process and of the brokers, per "
      "message.\n");
  std::unique_ptr<testing::ProcessMesh> mesh = MustUp(3);
  std::vector<pid_t> brokers;
  for (int i = 0; i < mesh->size(); ++i) brokers.push_back(mesh->pid(i));
  // Raw and meshbus side by side in time, so both see the same machine.
  auto both = [&](MessagingPart part, void (*raw)(Table*),
                  void (*meshbus)(const testing::ProcessMesh&, Table*)) {
    if (!Has(parts, part)) return;
    raw(&table);
    g_broker_pids = brokers;
    meshbus(*mesh, &table);
    g_broker_pids.clear();
  };
  both(MessagingPart::kPubSub, RawPubSub, MeshPubSub);
  both(MessagingPart::kBroadcast, RawBroadcast, MeshBroadcast);
  both(MessagingPart::kDispatch, RawDispatch, MeshDispatchPart);
  both(MessagingPart::kRequest, RawRequest, MeshRequestPart);
  mesh.reset();
  table.Print();
  std::printf(
      "\nreferences given for this machine: NATS 3-server cluster, publish A -> C, 64 B: 1.67 M "
      "msgs/s;\nNATS cluster request/reply p50 155 us; raw libzmq PUB/SUB tcp, 64 B: 4.6 M "
      "msgs/s;\n3-hop DEALER/ROUTER round trip p50 199 us.\n");
  return table.Figures();
}

}  // namespace meshbus::bench
