// meshbus-bench: the figures of the README, measured on a 3-node mesh of
// real meshbusd processes on this machine (started with scripts/mesh-up.sh).
//   groups:    join-to-visible latency on another node (p50, p99); joins per
//              second visible on another node (10,000 members in 1,000 groups)
//   failure:   time from kill -9, and from SIGSTOP, of a node to its members
//              being purged on the others
//   messaging: publish/subscribe, broadcast, dispatch and request/reply, each
//              beside raw libzmq (bench_messaging.cc)
//   registry:  registrations per second through the leader, whereis and
//              whereis_consistent latency, and the time from kill -9 of the
//              leader to the first ok registration, on 3 voters with their
//              data directories on disk (bench_registry.cc)
//   eventstore: events per second through random emitters to a subscriber on
//              another node, end-to-end latency, and store leader failover
//              (bench_eventstore.cc)
// Every run is bounded in count and time, and every process it starts is
// stopped by its pid.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "bin/bench_eventstore.h"
#include "bin/bench_messaging.h"
#include "bin/bench_registry.h"
#include "test/process_mesh.h"

namespace {

using namespace meshbus;
using namespace meshbus::bench;
using namespace meshbus::testing;
using std::chrono::milliseconds;

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

void JoinLatency(const ProcessMesh& mesh, int samples) {
  Client joiner = MustConnect(mesh, 0, "bench-joiner");
  Client observer = MustConnect(mesh, 1, "bench-observer");
  if (auto m = observer.MonitorScope("bench-latency"); !m.ok()) Die("monitor", m.status());
  std::vector<double> us;
  for (int i = 0; i < samples; ++i) {
    std::string group = "g" + std::to_string(i);
    auto t0 = Clock::now();
    if (Status s = joiner.Join("bench-latency", group); !s.ok()) Die("join", s);
    while (true) {
      Result<Delivery> d = observer.Receive(milliseconds(2000));
      if (!d.ok()) Die("waiting for a join event", d.status());
      auto* e = std::get_if<MonitorEvent>(&*d);
      if (e && e->group == group) break;
    }
    us.push_back(Micros(Clock::now() - t0));
  }
  std::printf("%-52s p50 %7.0f us   p99 %7.0f us   (%d joins)   [Erlang pg: p50 59 us]\n",
              "join on n1 visible on n2", Percentile(us, 0.5), Percentile(us, 0.99), samples);
}

// `members` joins spread over `groups` groups, from members/groups sessions
// on n1 and n3, each joining every group; seen by a monitor on n2. With
// batch > 1 each session sends JoinMany requests of `batch` groups.
void JoinThroughput(const ProcessMesh& mesh, int members, int groups, int batch) {
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

void FailureDetection(int runs) {
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
  }
}

constexpr const char* kUsage =
    "usage: meshbus-bench [SECTION...]   (no SECTION: all of them)\n"
    "  groups     join latency and join throughput\n"
    "  failure    members purged after kill -9 and SIGSTOP of their node\n"
    "  messaging  pubsub, broadcast, dispatch and request below, each beside raw libzmq\n"
    "  pubsub | broadcast | dispatch | request   one part of messaging\n"
    "  registry   registrations/s, whereis latency, failover after kill -9 of the leader\n"
    "  eventstore events/s through random emitters, end-to-end latency, store leader failover\n";

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  bool groups = argc == 1, failure = argc == 1, registry = argc == 1, eventstore = argc == 1;
  std::vector<MessagingPart> messaging;
  auto add = [&](MessagingPart p) {
    if (std::find(messaging.begin(), messaging.end(), p) == messaging.end()) messaging.push_back(p);
  };
  if (argc == 1) {
    for (auto p : {MessagingPart::kPubSub, MessagingPart::kBroadcast, MessagingPart::kDispatch,
                   MessagingPart::kRequest}) {
      add(p);
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "groups") {
      groups = true;
    } else if (a == "failure") {
      failure = true;
    } else if (a == "messaging") {
      for (auto p : {MessagingPart::kPubSub, MessagingPart::kBroadcast, MessagingPart::kDispatch,
                     MessagingPart::kRequest}) {
        add(p);
      }
    } else if (a == "pubsub") {
      add(MessagingPart::kPubSub);
    } else if (a == "broadcast") {
      add(MessagingPart::kBroadcast);
    } else if (a == "dispatch") {
      add(MessagingPart::kDispatch);
    } else if (a == "request") {
      add(MessagingPart::kRequest);
    } else if (a == "registry") {
      registry = true;
    } else if (a == "eventstore") {
      eventstore = true;
    } else {
      std::fprintf(a == "-h" || a == "--help" ? stdout : stderr, "%s", kUsage);
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  std::printf(
      "meshbus-bench: 3 meshbusd processes on this machine, default settings (heartbeat 100 ms,\n"
      "suspicion 500 ms, probe 400 ms); clients in this process over ipc.\n\n");
  if (groups) {
    std::unique_ptr<ProcessMesh> mesh = MustUp(3);
    JoinLatency(*mesh, 2000);
    JoinThroughput(*mesh, 10000, 1000, 1);
    JoinThroughput(*mesh, 10000, 1000, 100);
  }
  if (failure) FailureDetection(5);
  if (!messaging.empty()) {
    if (groups || failure) std::printf("\n");
    MessagingBenchmarks(messaging);
  }
  if (registry) {
    if (groups || failure || !messaging.empty()) std::printf("\n");
    RegistryBenchmarks(5);
  }
  if (eventstore) {
    if (groups || failure || !messaging.empty() || registry) std::printf("\n");
    EventStoreBenchmarks(5);
  }
  return 0;
}
