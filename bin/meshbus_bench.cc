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
#include "bin/bench_groups.h"
#include "bin/bench_messaging.h"
#include "bin/bench_registry.h"
#include "test/process_mesh.h"

namespace {

using namespace meshbus;
using namespace meshbus::bench;
using namespace meshbus::testing;
using std::chrono::milliseconds;

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
