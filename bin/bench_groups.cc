// The groups and failure figures of meshbus-bench: join-to-visible latency,
// join throughput, and purge after kill -9 / SIGSTOP of a node.
#include "bin/bench_groups.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace meshbus::bench {
namespace {

using std::chrono::milliseconds;
using testing::ProcessMesh;

// Waits for join events on `observer` until `want` members have been seen
// joining, or the deadline. Returns the count seen.
size_t AwaitJoins(Client& observer, size_t want, Clock::time_point deadline) {
  size_t seen = 0;
  while (seen < want && Clock::now() < deadline) {
    Result<Delivery> d = observer.Receive(milliseconds(100));
    if (!d.ok()) continue;
    if (auto* e = std::get_if<MonitorEvent>(&*d); e && e->kind == EventKind::kJoin)
      seen += e->members.size();
  }
  return seen;
}

// Time from a signal to node 3 until node 1 saw its member leave.
double PurgeAfter(int signal) {
  std::unique_ptr<ProcessMesh> mesh = MustUp(3);
  Client observer = MustConnect(*mesh, 0, "bench-observer");
  Client victim = MustConnect(*mesh, 2, "bench-victim");
  if (Status s = victim.Join("bench-fd", "g"); !s.ok()) Die("join", s);
  if (auto m = observer.Monitor("bench-fd", "g"); !m.ok()) Die("monitor", m.status());
  // Wait until the observer has the member (its join event or the start set).
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    auto members = observer.Members("bench-fd", "g");
    if (members.ok() && !members->empty()) break;
  }
  while (observer.Receive(milliseconds(0)).ok()) {
  }
  auto t0 = Clock::now();
  mesh->Signal(2, signal);
  double us = -1;
  deadline = t0 + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    Result<Delivery> d = observer.Receive(milliseconds(100));
    if (!d.ok()) continue;
    auto* e = std::get_if<MonitorEvent>(&*d);
    if (e && e->kind == EventKind::kLeave) {
      us = Micros(Clock::now() - t0);
      break;
    }
  }
  if (signal == SIGSTOP) mesh->Signal(2, SIGCONT);
  return us;
}

}  // namespace

JoinLatencyFigures JoinLatency(const ProcessMesh& mesh, int samples) {
  Client joiner = MustConnect(mesh, 0, "bench-joiner");
  Client observer = MustConnect(mesh, 1, "bench-observer");
  if (auto m = observer.MonitorScope("bench-latency"); !m.ok()) Die("monitor", m.status());
  std::vector<double> us, call_us;
  for (int i = 0; i < samples; ++i) {
    std::string group = "g" + std::to_string(i);
    auto t0 = Clock::now();
    if (Status s = joiner.Join("bench-latency", group); !s.ok()) Die("join", s);
    call_us.push_back(Micros(Clock::now() - t0));
    while (true) {
      Result<Delivery> d = observer.Receive(milliseconds(2000));
      if (!d.ok()) Die("waiting for a join event", d.status());
      auto* e = std::get_if<MonitorEvent>(&*d);
      if (e && e->group == group) break;
    }
    us.push_back(Micros(Clock::now() - t0));
  }
  std::printf(
      "%-52s p50 %7.0f us   p99 %7.0f us   (%d joins; the Join call itself p50 %.0f us)   "
      "[Erlang pg: p50 59 us]\n",
      "join on n1 visible on n2", Percentile(us, 0.5), Percentile(us, 0.99), samples,
      Percentile(call_us, 0.5));
  return {Percentile(us, 0.5), Percentile(us, 0.99)};
}

// `members` joins spread over `groups` groups, from members/groups sessions
// on n1 and n3, each joining every group; seen by a monitor on n2. With
// batch > 1 each session sends JoinMany requests of `batch` groups.
double JoinThroughput(const ProcessMesh& mesh, int members, int groups, int batch) {
  std::string scope = "bench-tp-" + std::to_string(batch);
  Client observer = MustConnect(mesh, 1, "bench-observer");
  if (auto m = observer.MonitorScope(scope); !m.ok()) Die("monitor", m.status());
  std::vector<Client> joiners;
  for (int i = 0; i < members / groups; ++i) {
    joiners.push_back(MustConnect(mesh, i % 2 == 0 ? 0 : 2, "bench-tp"));
  }
  std::atomic<int> failures{0};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (Client& c : joiners) {
    threads.emplace_back([&c, &scope, groups, batch, &failures] {
      std::vector<std::string> names;
      for (int g = 0; g < groups; ++g) {
        names.push_back("g" + std::to_string(g));
        if (static_cast<int>(names.size()) < batch && g + 1 < groups) continue;
        Status s = batch == 1 ? c.Join(scope, names[0]) : c.JoinMany(scope, names);
        if (!s.ok()) ++failures;
        names.clear();
      }
    });
  }
  size_t seen =
      AwaitJoins(observer, static_cast<size_t>(members), Clock::now() + std::chrono::seconds(60));
  auto took = Clock::now() - t0;
  for (auto& t : threads) t.join();
  if (failures > 0 || seen != static_cast<size_t>(members)) {
    std::fprintf(stderr, "meshbus-bench: throughput run saw %zu of %d joins, %d failed\n", seen,
                 members, failures.load());
    std::exit(1);
  }
  std::string what = batch == 1
                         ? "joins visible on n2 (one Join per call)"
                         : "joins visible on n2 (JoinMany, " + std::to_string(batch) + " per call)";
  std::printf(
      "%-52s %7.0f joins/s   (%d members from %zu sessions on n1 and n3, %d groups)   [Erlang pg: "
      "81 k/s]\n",
      what.c_str(), members / (Micros(took) / 1e6), members, joiners.size(), groups);
  return members / (Micros(took) / 1e6);
}

FailureFigures FailureDetection(int runs) {
  FailureFigures out;
  for (int signal : {SIGKILL, SIGSTOP}) {
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) {
      double us = PurgeAfter(signal);
      if (us < 0) {
        std::fprintf(stderr, "meshbus-bench: no purge within 10 s after signal %d\n", signal);
        std::exit(1);
      }
      ms.push_back(us / 1000);
    }
    std::printf("%-52s median %7.1f ms   min %7.1f   max %7.1f   (%d runs)   [Erlang pg: %s]\n",
                signal == SIGKILL ? "members purged on n1 after kill -9 of n3"
                                  : "members purged on n1 after SIGSTOP of n3",
                Percentile(ms, 0.5), *std::min_element(ms.begin(), ms.end()),
                *std::max_element(ms.begin(), ms.end()), runs,
                signal == SIGKILL ? "7 ms" : "2.1 s at net_ticktime 2");
    (signal == SIGKILL ? out.kill_ms : out.stop_ms) = Percentile(ms, 0.5);
  }
  return out;
}

}  // namespace meshbus::bench
