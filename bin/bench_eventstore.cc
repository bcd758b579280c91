// The event-store figures of meshbus-bench. Candidates, writers and the
// subscriber are clients in this process, each on a thread of its own, on
// the brokers of a 3-node mesh of meshbusd processes. Every run is bounded in
// count and in time, and every broker is stopped by its pid (ProcessMesh).
#include "bin/bench_eventstore.h"

#include <signal.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "bin/bench_messaging.h"
#include "sdk/eventstore.h"
#include "sdk/store_leader.h"

namespace meshbus::bench {
namespace {

using namespace std::chrono_literals;
using namespace meshbus::eventstore;
using std::chrono::milliseconds;
using testing::ProcessMesh;

constexpr int kSequentialEvents = 3000;
constexpr int kWriters = 8;
constexpr int kParallelEvents = 24000;  // in all, over kWriters
constexpr uint32_t kPoolSize = 4;
constexpr size_t kDataBytes = 256;
constexpr Clock::duration kRunLimit = 60s;
constexpr Clock::duration kSettleLimit = 20s;
const std::string kStore = "bench";
const std::string kSubscription = "all-orders";

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool WaitUntil(const std::function<bool()>& cond, Clock::duration limit) {
  Clock::time_point deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);  // poll interval, bounded by the deadline
  }
  return true;
}

std::unique_ptr<StoreLeader> MustCandidate(const ProcessMesh& mesh, int i) {
  StoreLeaderOptions o;
  o.client.endpoint = mesh.client_endpoint(i);
  o.client.call_timeout = milliseconds(1500);
  o.store = kStore;
  o.reconcile_interval = milliseconds(500);
  Result<std::unique_ptr<StoreLeader>> l = StoreLeader::Start(o);
  if (!l.ok()) Die("store leader candidate on n" + std::to_string(i + 1), l.status());
  return std::move(l.value());
}

Event MakeEvent(const std::string& writer, int i) {
  Event e;
  e.event_id = writer + "-" + std::to_string(i);
  e.event_type = "order_placed";
  e.stream_id = "order-" + std::to_string(i);
  e.data = std::string(kDataBytes, 'x');
  e.epoch_us = WallMicros();
  e.timestamp_ms = e.epoch_us / 1000;
  return e;
}

// The subscriber: counts distinct events and their latency from the
// append (same machine, same wall clock).
class Subscriber {
 public:
  explicit Subscriber(Client client) : client_(std::move(client)) {
    Status s = client_.Subscribe(SubscriptionTopic(kStore, kSubscription));
    if (!s.ok()) Die("subscribe", s);
    thread_ = std::thread([this] {
      while (!stop_) {
        Result<Delivery> d = client_.Receive(milliseconds(50));
        if (!d.ok()) continue;
        if (std::holds_alternative<GapNotice>(*d)) ++gaps_;
        const Message* m = std::get_if<Message>(&*d);
        if (m == nullptr) continue;
        Result<Event> e = AsSubscriptionEvent(*m, kStore, kSubscription);
        if (!e.ok()) continue;
        double us = static_cast<double>(WallMicros() - e->epoch_us);
        std::lock_guard<std::mutex> lock(mu_);
        if (seen_.insert(e->event_id).second) latencies_.push_back(us);
      }
    });
  }
  ~Subscriber() {
    stop_ = true;
    thread_.join();
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
  }
  std::vector<double> TakeLatencies() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(latencies_);
  }
  uint64_t gaps() const { return gaps_; }

 private:
  Client client_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> gaps_{0};
  std::mutex mu_;
  std::set<std::string> seen_;
  std::vector<double> latencies_;
  std::thread thread_;
};

// `writers` threads on n2, each appending `total / writers` events one at a
// time; prints the rate at which the subscriber on n3 got them.
void Throughput(const ProcessMesh& mesh, Subscriber& subscriber, int writers, int total,
                size_t already_seen) {
  static int run = 0;  // event ids differ between runs: the subscriber counts distinct ones
  ++run;
  std::atomic<int> failed{0};
  std::string first_error;
  std::mutex error_mu;
  const int each = total / writers;
  Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      Client c = MustConnect(mesh, 1, "writer");
      const std::string name = "r" + std::to_string(run) + ".w" + std::to_string(w);
      Clock::time_point limit = Clock::now() + kRunLimit;
      for (int i = 0; i < each && Clock::now() < limit; ++i) {
        Result<MemberId> r = BroadcastEvent(c, kStore, kSubscription, MakeEvent(name, i));
        if (!r.ok()) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (failed++ == 0) first_error = r.status().ToString();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const size_t want = already_seen + static_cast<size_t>(each * writers - failed);
  WaitUntil([&] { return subscriber.count() >= want; }, kSettleLimit);
  Clock::duration took = Clock::now() - start;
  size_t got = subscriber.count() - already_seen;
  std::vector<double> lat = subscriber.TakeLatencies();
  double secs = std::chrono::duration<double>(took).count();
  std::printf(
      "  %-44s %8.0f events/s   e2e p50 %s, p99 %s; %zu of %d delivered, %d refused%s%s; "
      "gaps %llu\n",
      (std::to_string(writers) + " writer" + (writers > 1 ? "s" : "") + " on n2 -> " +
       std::to_string(kPoolSize) + " emitters on n1 -> subscriber on n3")
          .c_str(),
      got / secs, TimeText(Percentile(lat, 0.5)).c_str(), TimeText(Percentile(lat, 0.99)).c_str(),
      got, each * writers, failed.load(), first_error.empty() ? "" : " (first: ",
      first_error.empty() ? "" : (first_error + ")").c_str(),
      static_cast<unsigned long long>(subscriber.gaps()));
  std::fflush(stdout);
}

void SteadyState() {
  std::unique_ptr<ProcessMesh> mesh = MustUp(3);
  std::unique_ptr<StoreLeader> leader = MustCandidate(*mesh, 0);
  if (!WaitUntil([&] { return leader->IsActive(); }, kSettleLimit)) {
    Die("store leader", Status::Timeout("never active"));
  }
  Client admin = MustConnect(*mesh, 0, "admin");
  Subscription sub;
  sub.id = kSubscription;
  sub.type = SubscriptionType::kEventType;
  sub.selector = "order_placed";
  sub.name = "every order";
  sub.pool_size = kPoolSize;
  if (Status s = CreateSubscription(admin, kStore, sub); !s.ok()) Die("create subscription", s);
  Client view = MustConnect(*mesh, 1, "view");
  if (!WaitUntil(
          [&] {
            auto m = EmitterMembers(view, kStore, kSubscription);
            return m.ok() && m->size() == kPoolSize;
          },
          kSettleLimit)) {
    Die("emitter pool", Status::Timeout("never seen on n2"));
  }
  Subscriber subscriber(MustConnect(*mesh, 2, "subscriber"));
  // Warm up the paths and the emitters' sessions.
  Throughput(*mesh, subscriber, 1, 200, 0);
  subscriber.TakeLatencies();
  std::printf("  (the line above is the warm-up)\n");
  size_t seen = subscriber.count();
  Throughput(*mesh, subscriber, 1, kSequentialEvents, seen);
  seen = subscriber.count();
  Throughput(*mesh, subscriber, kWriters, kParallelEvents, seen);
}

// One fresh mesh: candidates on every node, a writer on a node that
// survives, and kill -9 of the leader's node. Times to the next candidate
// active with its pools, and to the first event delivered after the kill.
void FailoverRound(int round, std::vector<double>* active_ms, std::vector<double>* event_ms) {
  std::unique_ptr<ProcessMesh> mesh = MustUp(3);
  std::vector<std::unique_ptr<StoreLeader>> candidates;
  for (int i = 0; i < 3; ++i) candidates.push_back(MustCandidate(*mesh, i));
  int leader = -1;
  if (!WaitUntil(
          [&] {
            for (int i = 0; i < 3; ++i) {
              if (candidates[i]->IsActive() && !candidates[i]->Pools().empty()) leader = i;
            }
            return leader >= 0;
          },
          kSettleLimit)) {
    Die("failover round " + std::to_string(round), Status::Timeout("no leader"));
  }
  const int writer_node = (leader + 1) % 3;
  Client writer = MustConnect(*mesh, writer_node, "writer");
  if (Result<MemberId> r = DeliverEvent(writer, kStore, "$all", MakeEvent("warm", 0)); !r.ok()) {
    Die("first event", r.status());
  }
  Clock::time_point killed = Clock::now();
  mesh->Signal(leader, SIGKILL);
  std::atomic<bool> active{false};
  std::thread watch([&] {
    WaitUntil(
        [&] {
          for (int i = 0; i < 3; ++i) {
            if (i != leader && candidates[i]->IsActive() && !candidates[i]->Pools().empty()) {
              return true;
            }
          }
          return false;
        },
        kSettleLimit);
    active_ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - killed).count());
    active = true;
  });
  Result<MemberId> r = DeliverEvent(writer, kStore, "$all", MakeEvent("after", round), 20000ms);
  double delivered = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
  watch.join();
  if (!r.ok()) Die("event after the kill", r.status());
  event_ms->push_back(delivered);
  std::printf(
      "  round %d: n%d killed; next leader active after %.0f ms, first event after %.0f ms\n",
      round + 1, leader + 1, active_ms->back(), delivered);
  std::fflush(stdout);
  candidates[leader].reset();  // its broker is gone: its calls time out
}

}  // namespace

void EventStoreBenchmarks(int failover_rounds) {
  std::printf(
      "eventstore: 3 meshbusd (the registry's voters); a store leader on n1 runs a pool of %u\n"
      "emitters; writers on n2 append %zu-byte events (BroadcastEvent: the emitter answers once "
      "it\n"
      "has published), a subscriber on n3 counts them. Latency: append to subscriber.\n",
      kPoolSize, kDataBytes);
  SteadyState();
  std::printf("store leader failover after kill -9 of its node (default failure detector):\n");
  std::vector<double> active_ms, event_ms;
  for (int r = 0; r < failover_rounds; ++r) FailoverRound(r, &active_ms, &event_ms);
  std::printf(
      "  next leader active: median %.0f ms (%.0f - %.0f); first event delivered: "
      "median %.0f ms (%.0f - %.0f), over %d rounds\n",
      Percentile(active_ms, 0.5), Percentile(active_ms, 0), Percentile(active_ms, 1),
      Percentile(event_ms, 0.5), Percentile(event_ms, 0), Percentile(event_ms, 1), failover_rounds);
}

}  // namespace meshbus::bench
